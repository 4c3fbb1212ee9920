"""The data pipeline: raw market data -> offline feature tables -> Feast -> the online store.

What enters: settings (``pipeline.settings``: symbols, days of history, seed, the folders, the
online store's address) and a clock. What leaves: ``data/raw`` (L0 bars and macro),
``data/offline`` (the three L1 feature tables), the Feast registry (``feast apply``), and the
views' latest rows materialized into Redis in Feast's layout, which the server then reads.

Modules, in data order: ``raw_data`` (L0), ``offline`` (L1), ``feast_repo`` (apply),
``materialize`` (incremental, injectable clock), ``run`` (all of it once), ``live`` (simulated
real-time bars every few seconds, with a refill when Redis came back empty: ``online_watch``),
``observation`` (read back through Feast's SDK), ``state_file`` (``data/redis.env``).

Only the data pipeline lives here. The services the quick start runs around it -- the embedded
redis-server and the observation server as a child process -- live in ``devstack/``;
``quickstart`` (``python -m pipeline up``) puts the two together. Nothing outside
``pipeline/`` and the tests imports this package, except the benchmarks, which build their data
with it; ``devstack`` never does.
"""

import os

# Before anything imports grpc: children started with preexec_fn (core.lifetime) while a gRPC
# channel is busy in another thread die before exec without this (see core/lifetime.py).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
