# expect: limited
# tries: write 1 GiB through the vessel file API as fast as possible (must be throttled by filewrite)
sink = openfile('flood.bin', True)
block = 'w' * 65536
for i in range(16384):
    sink.writeat(block, 0)
log('SURVIVED: wrote 1 GiB')
