# expect: blocked
# tries: climb from an API exception class to its module and host objects via non-underscore attributes
try:
    openfile('/etc', False)
except RepyArgumentError as err:
    found = []
    for attr in ['args', 'with_traceback', 'add_note', 'mro']:
        try:
            found.append(attr)
            value = hasattr(err, attr)
        except Exception:
            pass
    try:
        frame = err.with_traceback(None)
        log('with_traceback returned the same error', frame is err)
    except Exception:
        log('refused')
log('no host object reached')
