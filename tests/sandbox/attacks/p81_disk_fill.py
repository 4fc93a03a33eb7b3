# expect: limited
# tries: fill the disk through many files and one growing file, past diskused
for i in range(1000):
    openfile('fill' + str(i), True).writeat('d' * 65536, 0)
log('SURVIVED: wrote 64 MiB')
