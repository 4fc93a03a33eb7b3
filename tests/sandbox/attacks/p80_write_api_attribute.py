# expect: blocked
# tries: plant attributes on API functions and objects shared with the host (setattr and assignment)
lock = createlock()
for target in [log, openfile, lock, getresources]:
    try:
        target.planted = 1
        log('ESCAPED: planted an attribute on', target)
    except Exception:
        log('refused')
