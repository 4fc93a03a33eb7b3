# expect: blocked
# tries: create files outside the vessel via the file API, with names that look like paths
for path in ['/tmp/vessel_escape_marker.txt', '..', '.', '..%2fx', 'a/../../b']:
    try:
        openfile(path, True).writeat('x', 0)
        log('ESCAPED: created', path)
    except RepyArgumentError:
        log('refused', path)
