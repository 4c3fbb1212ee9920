"""The Feast online store (Redis) as one capability: its address, layout, reads, writes, health.

What enters: a :class:`~online_store.address.RedisAddress` and the served symbols. What leaves:
the reads and writes every caller of Redis uses, in Feast's exact key/field/value layout.

Modules: ``address`` (where Redis listens, its connection options and clients; the password is
never printed), ``feast_layout`` (Feast's key, field and value bytes, golden-tested),
``read_plan`` (a symbol's key and 18 fields, computed once), ``cluster`` (the cluster's slot
router and per-master connections), ``reader`` (one pipelined HMGET, decoded, TTLs and
plausibility enforced), ``guarded_read`` (the one guarded read: breaker, bound, metrics, log),
``breaker`` (the circuit breaker), ``health`` (a missed bound confirmed apart from the request
path), ``writer`` (PushState's transaction with Feast's newer-only rule and the state_events
stream), ``tracking`` (client-side-caching invalidations), ``memory`` (``INFO memory``
sampling), ``startup_check`` (fatal misconfiguration versus a store merely down), ``errors``;
``store`` (``OnlineStore``: all of them for one server process, with its tasks and one
``aclose()``).

Nothing here imports ``server``: the server, the pipeline, devstack and the benchmarks all
reach Redis through this package.
"""
