"""The fault suite: hostile input and unlucky operations against real processes, one table
(``make faults``; a test suite run by CI, not collected by pytest).

What enters: nothing (``python -m tests.faults [--soak-s N]``). It starts its own
redis-server, runs the pipeline at the wall clock (fresh data), and starts ``python -m server``
processes. What leaves: a table of figures printed (and ``results.json`` / ``results.md`` under
``benchmarks/results/faults-<UTC>/`` with the servers' logs), and exit code 1 when an invariant
breaks: an INTERNAL or UNKNOWN status anywhere, a CANCELLED the client did not ask for, a failed
call while Redis is stopped or killed (the fallback must answer), a failed in-flight call at
SIGTERM, an error in the soak.

Scenarios (``scenarios.py``), all in one run:

- fuzz: random and mutated bytes to every RPC (GetObservation, DescribeObservation,
  PushState, GetObservations, WatchObservations) -> count by status code;
- Redis SIGSTOP 4 s, then SIGKILL + restart (re-materialized), under a 200 calls/s open loop ->
  failed calls, p99 during the fault, time until answers come from the store again;
- corrupt fields written into Feast's hash -> the view's fallback reason;
- 5,000 concurrent calls on one channel and on ten -> OK / RESOURCE_EXHAUSTED / other;
- SIGTERM under load -> calls failed while in flight, calls refused after the drain;
- soak -> RSS drift, open fds, errors.
"""

import os

# Before anything imports grpc (as ``benchmarks`` and ``devstack`` do): children started with
# preexec_fn (core.lifetime) while a gRPC channel is busy in another thread die before exec
# without this (see core/lifetime.py).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
