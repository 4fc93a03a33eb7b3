"""The donor's install: the plan (pure) and its application, boot entries, managed versions and
the launcher, machine measurement, node manager processes and ``status``.
"""
