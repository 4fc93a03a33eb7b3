# expect: blocked
# tries: listen on ports the vessel was not granted (a privileged one, and a high one)
for port in [1, 22, 8080, 65000]:
    try:
        listenforconnection('127.0.0.1', port)
        log('ESCAPED: bound', port)
    except ResourceForbiddenError:
        log('refused', port)
    try:
        listenformessage('127.0.0.1', port)
        log('ESCAPED: bound udp', port)
    except ResourceForbiddenError:
        log('refused udp', port)
