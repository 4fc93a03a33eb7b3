# Two threads talk over loopback TCP on the vessel's granted ports, then over UDP.
server = listenforconnection('127.0.0.1', 63100)
replies = []

def echo_server():
    conn = None
    while conn is None:
        try:
            ip, port, conn = server.getconnection()
        except SocketWouldBlockError:
            sleep(0.01)
    while True:
        try:
            data = conn.recv(1024)
        except SocketWouldBlockError:
            sleep(0.01)
            continue
        except SocketClosedRemote:
            break
        conn.send(b'pong:' + data)
    conn.close()

createthread(echo_server)
client = openconnection('127.0.0.1', 63100, '127.0.0.1', 63101, 5)
for word in ['one', 'two', 'three']:
    client.send(word)
    answer = None
    while answer is None:
        try:
            answer = client.recv(1024)
        except SocketWouldBlockError:
            sleep(0.01)
    log('tcp reply:', answer.decode())
client.close()

inbox = listenformessage('127.0.0.1', 63101)
sendmessage('127.0.0.1', 63101, 'hello over udp', '127.0.0.1', 63102)
message = None
while message is None:
    try:
        message = inbox.getmessage()
    except SocketWouldBlockError:
        sleep(0.01)
log('udp message from port', message[1], ':', message[2].decode())
inbox.close()
server.close()
