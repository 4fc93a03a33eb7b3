"""Shared test support: real daemons, polling with a deadline, requirement marks, tmpfs.

Test modules import helpers from here, never from each other.
"""
