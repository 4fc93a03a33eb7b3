"""The Repy V2 API inside a vessel process: files, network, dylink, namespaces and the nanny's
per-resource accounting.
"""
