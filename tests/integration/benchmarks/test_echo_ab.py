"""``make bench-echo-ab`` in small: an echo variant and an observation-server variant, each its
own real process, measured in interleaved rounds; the table has a row per variant."""

from __future__ import annotations

import pytest

from benchmarks.echo_ab import run_ab

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_an_echo_and_a_server_variant_each_get_a_row() -> None:
    emitted: list[str] = []
    run_ab(["base", "cached_log_off"], rounds=6, calls=30, emit=emitted.append)
    lines = emitted[0].splitlines()
    assert lines[0].startswith("| variant | calls | p50 ms | p99 ms | p99.9 ms | p99 / base p99")
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:]}
    assert set(rows) == {"base", "cached_log_off"}
    assert "| 1.000 [1.000, 1.000] |" in rows["base"]
    assert all(f"| {6 * 30} |" in row for row in rows.values())
