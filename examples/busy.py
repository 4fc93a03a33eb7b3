# A CPU-bound program: under `resource cpu 0.1` it gets about 10 % of one core.
limits, usage, stops = getresources()
start = getruntime()
spins = 0
while getruntime() - start < 3:
    spins = spins + 1
limits, usage, stops = getresources()
log('cpu limit', limits['cpu'], '; used', round(usage['cpu'], 2), 'cpu-seconds in',
    round(getruntime() - start, 2), 's; stopped', len(stops), 'times')
