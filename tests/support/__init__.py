"""Shared test support: daemons and worlds, polling with a deadline (``eventually``), requirement
marks, per-worker loopback addresses (``net``), the network lab, relays, seash runs, attackers.

Test modules import helpers from here, never from each other (fixtures live in conftest.py).
"""
