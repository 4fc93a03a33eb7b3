"""Hostile peers written from the docs alone, for tests and benchmarks: ``dht`` speaks the DHT
wire format directly and misbehaves on demand.
"""
