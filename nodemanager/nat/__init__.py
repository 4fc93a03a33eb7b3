"""Donors behind NAT (docs/nat.md): reachability (``autonat`` pure, ``dialback``, ``prober``,
``observe``), relays (``relaywire``, ``relaycore`` pure, ``relay``, ``relayclient``, ``relaydir``),
hole punching (``punchcore`` pure, ``punch``, ``punchdial``) and ``dial``, the one way a client
reaches a node (``open_route_client``). Client-side modules are usable without the daemon; nothing
here imports ``nodemanager.node`` (tests/test_layering.py).
"""
