"""The embedded services the quick start, the tests and the benchmarks start for themselves.

What enters: nothing but settings (a port, a password, a data folder). What leaves: real
servers on 127.0.0.1 — ``redis-server`` (``devstack.embedded_redis``), a 3-master Redis Cluster
(``devstack.embedded_cluster``, for the cluster tests) and the observation
server as a child process (``devstack.server_process``) — each a context manager that stops
what it started.

The data pipeline (``pipeline/``) never starts a service itself; it is handed addresses.
"""
