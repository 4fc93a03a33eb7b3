"""Software updates (docs/updates.md): TUF verification over peer mirrors (``updatecore`` pure,
``tufclient``, ``mirror``) and the node manager's ``updater`` task.
"""
