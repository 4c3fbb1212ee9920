"""``python -m benchmarks.cluster_client`` runs end to end on a real cluster and prints one row
per call shape with both clients' figures and the per-round ratios."""

from __future__ import annotations

import re

import pytest

from benchmarks import cluster_client


def test_prints_both_shapes_with_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert cluster_client.main(["--rounds", "6", "--calls", "100"]) == 0
    out = capsys.readouterr().out
    rows = [
        line
        for line in out.splitlines()
        if line.startswith("| one symbol") or line.startswith("| 8 symbols")
    ]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert all(float(c) > 0 for c in cells[1:5])  # four latencies, in microseconds
        for ratio in cells[5:]:
            assert re.fullmatch(r"\d+\.\d{3} \[\d+\.\d{3}, \d+\.\d{3}\]", ratio), ratio


def test_refuses_too_few_calls_for_a_p99() -> None:
    with pytest.raises(SystemExit) as exc:
        cluster_client.main(["--calls", "10"])
    assert exc.value.code == 2
