"""Vessel processes: the runner (child side), OS hardening, the supervisor (host side), spawning,
uid leases, the status channel and the monitor's pure limits.
"""
