"""What one Prometheus scrape of a benchmarked server costs, measured after the load phases.

What enters: the metrics port of a running observation server. What leaves: a one-line note
for the run's record (scrape time p50/max over ``SCRAPES`` sequential GETs, and the size).
A scrape runs on a thread of the server's process, so its time is also how long it competes
with the event loop for the GIL, once per scrape interval (15 s by default in Prometheus).
"""

from __future__ import annotations

import http.client
import statistics
import time

SCRAPES = 20


def scrape_once(port: int) -> tuple[float, int]:
    """(seconds, body bytes) of one ``GET /metrics``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        started = time.perf_counter()
        connection.request("GET", "/metrics")
        answer = connection.getresponse()
        body = answer.read()
        elapsed = time.perf_counter() - started
    finally:
        connection.close()
    if answer.status != 200:
        raise RuntimeError(f"/metrics on port {port} answered {answer.status}")
    return elapsed, len(body)


def scrape_note(port: int) -> str:
    """The note: scrape time of the cached server's /metrics."""
    times, size = [], 0
    for _ in range(SCRAPES):
        elapsed, size = scrape_once(port)
        times.append(elapsed * 1000)
    return (
        f"/metrics of observation_cached: {size} bytes, scrape p50 "
        f"{statistics.median(times):.2f} ms, max {max(times):.2f} ms ({SCRAPES} sequential GETs)"
    )
