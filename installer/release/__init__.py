"""The release manager's side of updates: the TUF repository and the ``release`` commands.
"""
