"""Self-contained installers: the ``.pyz`` zipapp, its first stage and the wheels it carries.
"""
