"""Where does a cache-off GetObservation spend its time in the server? A sampling profile.

What enters: nothing (it starts its own Redis, data and a cache-off server). What leaves: the
share of samples in the server's main thread by function (self and inclusive), taken with
py-spy in non-blocking mode (the server is never paused) while one client sends calls back to
back.

    python -m benchmarks.profile_server [--seconds 12] [--rate-hz 250]
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.one_server import one_server

_TOP = 15


def summarize(collapsed: Path) -> str:
    """Self and inclusive shares per function from py-spy's raw (collapsed-stack) output."""
    self_samples: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        total += count
        names = [frame.split(" (")[0] for frame in stack.split(";")]
        self_samples[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
    lines = [f"samples: {total}", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in self_samples.most_common(_TOP)]
    lines.append("inclusive:")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(3 * _TOP)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--rate-hz", type=int, default=250, help="py-spy sampling rate")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("error: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    with one_server(cache_ttl_ms=0.0) as server:
        collapsed = server.scratch / "profile.txt"
        spy = subprocess.Popen(
            [py_spy, "record", "--nonblocking", "-r", str(args.rate_hz),
             "-d", str(args.seconds), "--format", "raw", "-o", str(collapsed),
             "-p", str(server.pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        calls = 0
        began = time.perf_counter()
        while spy.poll() is None:
            server.call()
            calls += 1
        elapsed = time.perf_counter() - began
        profile = summarize(collapsed)
    print(f"calls: {calls} in {elapsed:.1f} s ({calls / elapsed:.0f}/s, one in flight)")
    print(profile)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
