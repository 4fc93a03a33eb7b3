"""The vessel language: the RestrictedPython policy and compiler, ``SafeDict`` and the porting tool.
"""
