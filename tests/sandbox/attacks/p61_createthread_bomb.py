# expect: limited
# tries: createthread 5000 times, each thread parked for 5 s
def park():
    sleep(5)
started = 0
for i in range(5000):
    createthread(park)
    started = started + 1
log('SURVIVED: started', started, 'threads')
