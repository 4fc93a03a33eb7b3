"""Whole testbeds on one machine (``seattle-testbed``): ``local`` runs N node managers on
loopback; ``lab`` builds a small internet of network namespaces with NAT routers and runs nodes
in it; ``updates`` runs managed installs for update tests; ``attackers`` holds hostile peers
that tests and benchmarks drive.
"""
