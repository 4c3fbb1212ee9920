"""``python -m benchmarks training-set``: training-set wall time and peak memory, ours vs Feast's.

What enters: sizes (symbols x years at 5 minutes), the offline stores to measure, and a bound on
Feast's own run. What leaves: a table (printed, and JSON under ``--results-dir``): per store and
size, the wall time of ``python -m pipeline training-set`` from the command's start and its peak
RSS (``wait4``), with the offline tables already built (a first, untimed run builds them); and,
on a range Feast finishes within ``--feast-bound-s``, the same command against Feast's own
``get_historical_features`` over that range, in the same run.

Each store gets its own folder (a copy of ``feature_repo/`` and its ``data/``); the PostgreSQL
store is an embedded server kept for the whole run (the command reads it through ``POSTGRES_*``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from offline_store.store import FEAST_KIND_VARIABLE

REPO_ROOT = Path(__file__).resolve().parents[1]
END = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
"""A Friday close: the generated history ends here, the grid too."""
SYMBOLS = ("USDCOP", "USDMXN", "USDBRL", "USDCLP", "USDPEN", "EURUSD", "GBPUSD", "USDJPY",
           "AUDUSD", "USDCAD")  # fmt: skip

_FEAST_CHILD = """
import sys, time
from pathlib import Path
import pandas as pd
from pipeline.feast_repo import apply_definitions, open_feature_store
from online_store.address import RedisAddress
from pipeline.training_set import build_training_set, grid, parse_every
from offline_store.connection import PostgresAddress
from offline_store.factory import open_store
import os
repo = Path(sys.argv[1]); symbols = sys.argv[2].split(","); start, end = sys.argv[3], sys.argv[4]
pg = PostgresAddress.from_env(os.environ)
offline = open_store(repo.parent / "data", pg)
store = open_feature_store(repo, RedisAddress(host="127.0.0.1", port=1), offline)
apply_definitions(store, repo)
times = grid(pd.Timestamp(start).to_pydatetime(), pd.Timestamp(end).to_pydatetime(),
             parse_every("5m"))
began = time.perf_counter()
training = build_training_set(store, symbols, times)
print(f"{time.perf_counter() - began:.3f} {len(training.values)}")
"""


@dataclass(frozen=True)
class Row:
    store: str
    engine: str
    symbols: int
    days: int
    grid_rows: int
    complete_rows: int | None
    wall_s: float
    peak_rss_mb: float
    note: str = ""


def _measure(
    argv: Sequence[str], env: dict[str, str], timeout_s: float
) -> tuple[float, float, str]:
    """Run ``argv`` under a fresh Python parent that reports the child's own wait4 rusage."""
    wrapper = (
        "import os, sys, time, json, subprocess\n"
        "t = time.perf_counter(); p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE,"
        " stderr=subprocess.PIPE, text=True)\n"
        "out, err = p.communicate(); wall = time.perf_counter() - t\n"
        "import resource; ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'rc': p.returncode, 'wall': wall, 'rss_kb': ru.ru_maxrss,"
        " 'out': out, 'err': err[-400:]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *argv],
        env=env, capture_output=True, text=True, timeout=timeout_s, cwd=REPO_ROOT, check=False,
    )  # fmt: skip
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"exit {result['rc']}: {result['err'].strip()}")
    return float(result["wall"]), result["rss_kb"] / 1024, str(result["out"])


@contextmanager
def _store_env(kind: str, root: Path) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES_", "FEAST_"))}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), str(REPO_ROOT / "proto"), env.get("PYTHONPATH", "")]
    )
    env[FEAST_KIND_VARIABLE] = kind
    if kind != "postgres":
        yield env
        return
    from devstack.embedded_postgres import EmbeddedPostgres

    with EmbeddedPostgres() as server:
        address = server.address
        env.update(address.feast_env())
        yield env


def _repo(root: Path, name: str) -> Path:
    repo = root / name / "feature_repo"
    shutil.copytree(
        REPO_ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("__pycache__", "data")
    )
    return repo


def _command(repo: Path, symbols: int, days: int, start: datetime, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "pipeline", "training-set", "--repo-dir", str(repo),
        "--days", str(days), "--symbols", ",".join(SYMBOLS[:symbols]),
        "--start", start.isoformat(), "--end", END.isoformat(), "--every", "5m",
        "--out", str(out),
    ]  # fmt: skip


def _grid_rows(symbols: int, start: datetime) -> int:
    return symbols * (int((END - start) / timedelta(minutes=5)) + 1)


def run(sizes: Sequence[tuple[int, int]], stores: Sequence[str], feast_days: dict[str, int],
        feast_bound_s: float, results_dir: Path) -> list[Row]:  # fmt: skip
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-training-set-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        for kind in stores:
            env = stack.enter_context(_store_env(kind, root))
            for symbols, years in sizes:
                days = 365 * years
                repo = _repo(root, f"{kind}-{symbols}x{years}")
                start = END - timedelta(days=days)
                out = root / f"{kind}-{symbols}x{years}.npz"
                print(
                    f"{kind} {symbols}x{years}y: building the offline tables (untimed)", flush=True
                )
                _measure(_command(repo, symbols, days, start, out), env, 3600)
                wall, rss, text = _measure(_command(repo, symbols, days, start, out), env, 3600)
                complete = int(text.split("training set: ")[1].split(" rows")[0])
                rows.append(
                    Row(
                        kind, "ours", symbols, days, _grid_rows(symbols, start), complete, wall, rss
                    )
                )
                print(f"  ours: {wall:.2f} s, {rss:.0f} MB, {complete} rows", flush=True)
                if (symbols, years) != tuple(sizes[0]):
                    continue
                small = END - timedelta(days=feast_days[kind])
                wall_small, rss_small, _ = _measure(
                    _command(repo, symbols, days, small, root / "small.npz"), env, 3600
                )
                rows.append(
                    Row(
                        kind,
                        "ours",
                        symbols,
                        feast_days[kind],
                        _grid_rows(symbols, small),
                        None,
                        wall_small,
                        rss_small,
                        "same range as Feast",
                    )
                )
                feast_argv = [
                    sys.executable,
                    "-c",
                    _FEAST_CHILD,
                    str(repo),
                    ",".join(SYMBOLS[:symbols]),
                    small.isoformat(),
                    END.isoformat(),
                ]
                try:
                    fwall, frss, ftext = _measure(feast_argv, env, feast_bound_s)
                    join_s = float(ftext.split()[0])
                    note = f"get_historical_features alone {join_s:.1f} s"
                except subprocess.TimeoutExpired:
                    fwall, frss, note = feast_bound_s, float("nan"), f"killed at {feast_bound_s} s"
                rows.append(
                    Row(
                        kind,
                        "feast",
                        symbols,
                        feast_days[kind],
                        _grid_rows(symbols, small),
                        None,
                        fwall,
                        frss,
                        note,
                    )
                )
                print(
                    f"  feast ({feast_days[kind]} days): {fwall:.1f} s ({note}); ours "
                    f"{wall_small:.2f} s -> ratio {wall_small / fwall:.3f}",
                    flush=True,
                )
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (results_dir / f"training-set-{stamp}.json").write_text(
        json.dumps([asdict(r) for r in rows], indent=2)
    )
    return rows


def render(rows: Sequence[Row]) -> str:
    lines = [
        "| store | engine | symbols x days | grid rows | complete rows | wall s | peak RSS MB "
        "| note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.store} | {r.engine} | {r.symbols} x {r.days} | {r.grid_rows:,} | "
            f"{'' if r.complete_rows is None else f'{r.complete_rows:,}'} | {r.wall_s:.2f} | "
            f"{r.peak_rss_mb:.0f} | {r.note} |"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sizes", default="1x1,10x3", help="symbols x years, comma-separated")
    parser.add_argument("--stores", default="file,postgres")
    parser.add_argument("--feast-days-file", type=int, default=2, help="Feast's range, file store")
    parser.add_argument("--feast-days-postgres", type=int, default=14)
    parser.add_argument("--feast-bound-s", type=float, default=300.0)
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "benchmarks" / "results")


def main(args: argparse.Namespace) -> int:
    sizes = [tuple(int(x) for x in size.split("x")) for size in args.sizes.split(",")]
    rows = run(
        [(s[0], s[1]) for s in sizes],
        args.stores.split(","),
        {"file": args.feast_days_file, "postgres": args.feast_days_postgres},
        args.feast_bound_s,
        args.results_dir,
    )
    print(render(rows))
    return 0
