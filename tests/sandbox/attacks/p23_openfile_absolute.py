# expect: blocked
# tries: the vessel file API with absolute, parent and /proc paths
for path in ['/etc/passwd', '../../../../etc/passwd', '/proc/self/environ', 'proc/self/environ']:
    try:
        handle = openfile(path, False)
        log('ESCAPED: opened', path, handle.readat(60, 0))
    except RepyArgumentError:
        log('refused', path)
