# expect: blocked
# tries: reach raw io internals of a vessel file object (fileno, buffer, raw, name, mode)
handle = openfile('internals.txt', True)
found = []
for attr in ['fileno', 'buffer', 'raw', 'name', 'mode', 'fd']:
    try:
        found.append(hasattr(handle, attr))
    except Exception:
        pass
if True in found:
    log('ESCAPED: file object exposes', found)
else:
    log('file object is opaque')
