# expect: blocked
# tries: unbounded recursion in user code and in repr of a self-nested structure; must raise cleanly, not crash
def down(n):
    return down(n + 1)
try:
    down(0)
except RecursionError:
    log('recursion stopped cleanly')
nest = []
nest.append(nest)
log('self-nested repr', repr(nest))
