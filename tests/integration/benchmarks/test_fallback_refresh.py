"""`python -m benchmarks.fallback_refresh` runs end to end on a real Redis and server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_fallback_refresh_prints_both_phases_and_the_ratio() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.fallback_refresh", "--rounds", "6", "--calls", "30"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.splitlines()
    for phase in ("quiet", "refreshing"):
        (line,) = [x for x in lines if x.startswith(phase + " ")]
        assert "calls=180 " in line, line
    (ratio,) = [x for x in lines if x.startswith("p99 refreshing / quiet")]
    # Six rounds: a median and a 95% interval (the smallest to the largest ratio).
    match = re.search(r"(\d+\.\d+) \[(\d+\.\d+), (\d+\.\d+)\]", ratio)
    assert match, ratio
    median, low, high = (float(g) for g in match.groups())
    assert 0 < low <= median <= high
