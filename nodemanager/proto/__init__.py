"""The signed request protocol (docs/protocol.md): messages, framing, request checks, the
listener and the client.

Both sides use it: the daemon in ``nodemanager.node`` and researchers' tools (seash) through ``client``.
"""
