"""The donor's side of the daemon: when vessels may run (``policy``, pure; ``control``),
resharing in place (``reshare``), and the local page with its guard and metrics (``webui``,
``webguard``, ``metrics``). See docs/donor.md.
"""
