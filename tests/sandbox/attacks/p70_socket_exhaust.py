# expect: limited
# tries: open outgoing connections to our own listener until something gives
server = listenforconnection('127.0.0.1', 63100)
held = []
for i in range(20000):
    held.append(openconnection('127.0.0.1', 63100, '127.0.0.1', 63101, 5))
log('SURVIVED: holding', len(held), 'sockets')
