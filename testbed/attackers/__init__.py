"""Hostile peers written from the docs alone, for tests and benchmarks: ``dht`` speaks the DHT
wire format directly and misbehaves on demand; ``mirror`` is an update holder that lies,
drips or stalls per kind of file (docs/updates.md's mirror protocol).
"""
