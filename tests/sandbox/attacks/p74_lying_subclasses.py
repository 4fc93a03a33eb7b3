# expect: blocked
# tries: str and int subclasses with lying methods passed to the file and network API
class LyingPath(str):
    def __eq__(self, other):
        return True
    def __contains__(self, item):
        return False
class LyingPort(int):
    def __eq__(self, other):
        return True
    def __lt__(self, other):
        return False
for call in [lambda: openfile(LyingPath('../../etc/passwd'), False),
             lambda: listenforconnection('127.0.0.1', LyingPort(1)),
             lambda: listenforconnection(LyingPath('0.0.0.0'), 63100)]:
    try:
        call()
        log('ESCAPED: lying subclass accepted')
    except RepyArgumentError:
        log('refused')
