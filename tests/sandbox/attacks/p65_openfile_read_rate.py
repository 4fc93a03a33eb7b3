# expect: limited
# tries: read a 64 KiB file 16384 times (1 GiB of reads) through the vessel file API
source = openfile('readme.bin', True)
source.writeat('r' * 65536, 0)
total = 0
for i in range(16384):
    total = total + len(source.readat(None, 0))
log('SURVIVED: read', total, 'bytes')
