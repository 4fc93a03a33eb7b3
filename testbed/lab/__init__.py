"""The network lab (docs/lab.md): ``plan`` (pure), ``net`` (builds it with netlink and nftables),
``nodes`` (node managers on lab hosts) and ``punch`` (hole-punching trials).
"""
