"""The donor daemon: the server, its API handlers, the vessel model and SQLite state, connection
admission, vessel files and programs, the initial spec, the status sources the daemon plugs in
(``sources``) and DHT discovery.
"""
