# expect: blocked
# tries: open a symlink that someone placed in the vessel directory (the test plants escape_link -> /etc/passwd)
try:
    handle = openfile('escape_link', False)
    log('ESCAPED: read through symlink', handle.readat(60, 0))
except RepyArgumentError:
    log('refused symlink')
