# expect: limited
# tries: 200 MiB of UDP datagrams to the loopback discard port through sendmessage
sent = 0
for i in range(25600):
    sent = sent + sendmessage('127.0.0.1', 9, 'u' * 8192, '127.0.0.1', 63100)
log('SURVIVED: sent', sent, 'bytes')
