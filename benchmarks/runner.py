"""One benchmark run: data, servers, load generators, every scenario in every load mode.

What enters: a profile. What leaves: ``benchmarks/results/<timestamp>/`` with results.json,
results.md, p99_vs_rate.png and the servers' logs; the markdown is also returned.

Order: materialize fresh data into one Redis -> start every server (separate processes) ->
start the load generators (separate processes) -> probe each scenario's answer (a wrong
answer fails the run, it is never measured) -> a first block of sequential rounds ->
closed-loop rounds (echo's throughput sets the capacity-relative rates) -> a second block of
sequential rounds -> open-loop rounds at each fixed rate, stepped up, each scenario stopping
at its saturation -> one pass at each capacity-relative rate -> the last sequential block.
Every round runs the scenarios of its mode (and rate) in a shuffled order; each keeps a
summary per round (``record["rounds"]``: the targets' per-round ratios) and the tables pool
the rounds' histograms.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis as redis_py

from benchmarks import footprint, servers
from benchmarks.conditions import conditions, read_cpu_times
from benchmarks.data import BenchData, prepare_data
from benchmarks.profiles import PROFILES, Profile
from benchmarks.report import (
    OPEN_LOOP_PAIR,
    evaluate_targets,
    metrics_cost_note,
    open_loop_percentile,
    write_outputs,
)
from benchmarks.scrape import scrape_note
from benchmarks.targets import (
    KIND_BATCH,
    KIND_FEAST_LISTEN,
    KIND_FEAST_SDK,
    KIND_FEAST_SERVE,
    KIND_OBSERVATION,
    KIND_REDIS_READ,
    ScenarioSpec,
)
from benchmarks.workers import WorkerPool
from benchmarks.writer import PeriodicWriter, copy_symbol
from client.load import histograms
from devstack.embedded_redis import EmbeddedRedis, free_port
from devstack.server_process import ServerProcess
from server.config import ServerConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
BATCH_SYMBOLS = ("USDCOP", "USDCOP_B", "USDCOP_C", "USDCOP_D")
"""observation_batch: USDCOP and three copies of its hash, one GetObservations call."""

SERVER_ECHO = "echo"
SERVER_OBSERVATION = "observation"
SERVER_FEAST_LISTEN = "feast_listen"
SERVER_FEAST_SERVE = "feast_serve"
METRICS_SCRAPED = "scraped"
"""Metrics on (as deployed), and the run reads the port's /metrics (``benchmarks.scrape``)."""
METRICS_ON = "on"
METRICS_OFF = "off"


@dataclass(frozen=True)
class BenchScenario:
    """One scenario of the run, as data: what serves it and how the load generators call it."""

    name: str
    kind: str
    """How the load generators call it (``benchmarks.targets`` ``KIND_*``)."""
    server: str | None = None
    """The process that serves it (``SERVER_*``); None: the load generators call Redis or the
    Feast SDK themselves."""
    options: tuple[tuple[str, Any], ...] = ()
    """An observation server's ``ServerConfig`` fields (``cache_ttl_ms`` and the like)."""
    metrics: str = METRICS_ON
    redis_down: bool = False
    """The observation server's Redis is a port where nothing listens (the fallback serves)."""


_CACHED = (("cache_ttl_ms", 1000), ("cache_tracking", False))  # the plain 1 s TTL cache
BENCH_SCENARIOS = (
    BenchScenario("echo", KIND_OBSERVATION, SERVER_ECHO),
    # The observation servers run as deployed: metrics on. One twin with metrics off prices
    # them (the metrics-cost target compares the two in this run).
    BenchScenario("observation_cached", KIND_OBSERVATION, SERVER_OBSERVATION, _CACHED,
                  metrics=METRICS_SCRAPED),
    BenchScenario("observation_invalidated", KIND_OBSERVATION, SERVER_OBSERVATION,
                  (("cache_ttl_ms", 1000), ("cache_tracking", True))),
    BenchScenario("observation_cached_metrics_off", KIND_OBSERVATION, SERVER_OBSERVATION,
                  _CACHED, metrics=METRICS_OFF),
    # The served log (the skew check's input) is on as deployed; a twin with it off, metrics
    # on like observation_cached, prices it (the served-log cost target).
    BenchScenario("observation_cached_log_off", KIND_OBSERVATION, SERVER_OBSERVATION,
                  (*_CACHED, ("served_log", False))),
    BenchScenario("observation_redis", KIND_OBSERVATION, SERVER_OBSERVATION,
                  (("cache_ttl_ms", 0),), metrics=METRICS_SCRAPED),
    BenchScenario("observation_batch", KIND_BATCH, SERVER_OBSERVATION,
                  (("cache_ttl_ms", 0), ("symbols", BATCH_SYMBOLS))),
    BenchScenario("observation_fallback", KIND_OBSERVATION, SERVER_OBSERVATION,
                  (("cache_ttl_ms", 0),), metrics=METRICS_SCRAPED, redis_down=True),
    BenchScenario("redis_read", KIND_REDIS_READ),
    BenchScenario("feast_sdk", KIND_FEAST_SDK),
    BenchScenario("feast_listen", KIND_FEAST_LISTEN, SERVER_FEAST_LISTEN),
    BenchScenario("feast_serve", KIND_FEAST_SERVE, SERVER_FEAST_SERVE),
)  # fmt: skip
"""Every scenario of a run: each is started, probed and measured as declared here."""
SCENARIOS = tuple(scenario.name for scenario in BENCH_SCENARIOS)
REWARM_CALLS = 10
"""Discarded sequential calls at the start of every round after the first."""
SEQUENTIAL_BLOCKS = 3
"""The sequential rounds run in three blocks spread over the run: before the closed loop,
before the open loop and after it. Rounds of one block share the machine's state of those
two or three minutes (another job's burst lasts that long); two quick runs whose rounds all
ran in one block gave intervals that did not cover each other's medians. Spread out, the
rounds sample more of the run's states, and the interval shows that variation too."""
INSTANCE_WARMUP_CALLS = 100
"""Discarded sequential calls to each server process before the first round."""
INSTANCE_WARMUP_OPEN = {"rate": 500.0, "duration_s": 0.3, "warmup_s": 0.0, "drain_timeout_s": 5.0}
"""Then a discarded open-loop burst: a process's first calls with several in flight stall
for ~10-30 ms once (measured: a fresh echo's first open-loop second at 1,000/s had a p99 of
7-22 ms, the next ones 1-4 ms; after a 0.1-0.3 s burst, 1-6 ms from the first)."""
PROBE_TIMEOUT_S = 20.0
"""How long a server may take to give a right first answer (the fallback's first rows)."""
SATURATION_ACHIEVED_FRACTION = 0.9
"""An open-loop step whose achieved rate is below this fraction of the offered one saturated."""
PACKAGES = (
    "grpcio",
    "protobuf",
    "feast",
    "redis",
    "hiredis",
    "numpy",
    "hdrhistogram",
    "uvicorn",
    "gunicorn",
)


class BenchmarkError(RuntimeError):
    """The run cannot produce honest figures (a server did not start, an answer was wrong)."""


@contextlib.contextmanager
def redis_client(server: EmbeddedRedis) -> Iterator[redis_py.Redis]:
    client: redis_py.Redis = server.address.connect(10.0)
    try:
        yield client
    finally:
        client.close()


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _row(scenario: ScenarioSpec, mode: str, rounds: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """Pool the results of one measurement into one row: ``rounds`` run one after another
    (their times add up), the results within a round ran at once in several processes (the
    round lasts as long as its longest)."""
    results = [r for round_results in rounds for r in round_results]
    pooled = histograms.merge(histograms.decode(r["histogram"]) for r in results)
    lag_parts = [r["send_lag"] for r in results if r.get("send_lag")]
    calls = sum(r["calls"] for r in results)
    errors = sum(r["errors"] for r in results)
    elapsed = sum(max(r["elapsed_s"] for r in round_results) for round_results in rounds)
    offered = [r["offered_rate"] for r in rounds[0] if r.get("offered_rate")]
    row: dict[str, Any] = {
        "scenario": scenario.name,
        "kind": scenario.kind,
        "mode": mode,
        "offered_rate": sum(offered) if offered and mode == "open" else None,
        "achieved_rate": (calls - errors) / elapsed if elapsed > 0 else 0.0,
        "calls": calls,
        "errors": errors,
        "elapsed_s": elapsed,
        "rounds": len(rounds),
        "error_samples": [s for r in results for s in r.get("error_samples", [])][:3],
        **histograms.summarize_ms(pooled),
        # A short open-loop round's ratio compares p95s (report.open_loop_percentile).
        "p95": histograms.percentile_ms(pooled, 95.0),
    }
    if lag_parts:
        lag = histograms.merge(histograms.decode(p) for p in lag_parts)
        row["send_lag_p99"] = histograms.summarize_ms(lag)["p99"]
    return row


ROUND_FIELDS = ("scenario", "mode", "offered_rate", "count", "errors", "achieved_rate",
                "p50", "p95", "p99")  # fmt: skip
"""What the record keeps of each scenario's round (the targets' per-round ratios use them)."""


def _round_summary(
    row: dict[str, Any], round_index: int, server: ServerProcess | None
) -> dict[str, Any]:
    """What the record keeps of one scenario's round, with the pid of the server process that
    served it (None: an in-process scenario)."""
    return {
        "round": round_index,
        **{key: row[key] for key in ROUND_FIELDS},
        "server_pid": None if server is None else server.pid,
    }


def _saturated(row: dict[str, Any], rate: float) -> bool:
    return bool(row["errors"]) or row["achieved_rate"] < SATURATION_ACHIEVED_FRACTION * rate


def _check_probe(name: str, probe: dict[str, Any]) -> list[str]:
    problems = []
    if probe.get("n_values") != 15:
        problems.append(f"{probe.get('n_values')} values instead of 15")
    if name in ("observation_cached", "observation_cached_metrics_off",
                "observation_cached_log_off",
                "observation_invalidated", "observation_redis",
                "observation_batch"):  # fmt: skip
        if set(probe["sources"]) != {"VALUE_SOURCE_ONLINE_STORE"}:
            problems.append(
                f"sources {probe['sources']} (reasons {probe['fallback_reasons']}), "
                "expected the online store"
            )
        if set(probe["freshness"]) != {"FRESHNESS_FRESH"}:
            problems.append(f"freshness {probe['freshness']}, expected fresh data")
        if probe.get("errors"):
            problems.append(f"per-symbol errors {probe['errors']}")
    if name == "observation_fallback" and set(probe["sources"]) != {
        "VALUE_SOURCE_COMPUTE_FALLBACK"
    }:
        problems.append(f"sources {probe['sources']}, expected the compute fallback")
    if name in ("feast_listen", "feast_serve") and not probe.get("all_present"):
        problems.append("Feast reported features that are not PRESENT")
    if name in ("redis_read", "feast_sdk") and not probe.get("all_finite"):
        problems.append("non-finite values")
    return problems


class _Run:
    def __init__(self, profile: Profile, out_dir: Path, stack: contextlib.ExitStack) -> None:
        self.profile = profile
        self.out_dir = out_dir
        self.stack = stack
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.probes: dict[str, dict[str, Any]] = {}
        self.metrics_ports: dict[str, int] = {}
        self.rounds: list[dict[str, Any]] = []
        """One summary per scenario, mode, rate and round (``_round_summary``)."""
        self.rng = random.Random(profile.seed)
        self.sequential_parts: dict[str, list[list[dict[str, Any]]]] = {}
        self.live: dict[str, list[ServerProcess]] = {}
        """Each scenario's server processes: ``profile.server_instances`` of ours and of the
        echo floor, one of each Feast server, none for an in-process scenario."""
        self.instances: dict[str, list[ScenarioSpec]] = {}
        """A spec per process (its port), or one spec without a server."""
        self.specs: dict[str, ScenarioSpec] = {}
        """Each scenario's spec in the current round (:meth:`pick_instances`)."""
        self.serving: dict[str, ServerProcess | None] = {}
        """The process serving each scenario in the current round."""
        self._instance_queues: dict[tuple[str, str], list[int]] = {}
        self._call_s: dict[str, float] = {}
        """Each scenario's seconds per sequential call in its last round (its next round's
        length: ``Profile.sequential_round_s_for``)."""
        self.ours: list[str] = []
        """The scenarios served by our servers or the echo floor (several processes each)."""

    # -- set-up -----------------------------------------------------------------------------
    def start(self) -> tuple[BenchData, WorkerPool]:
        """Data, servers and load generators: every scenario of ``BENCH_SCENARIOS`` started by
        one loop, then waited on together."""
        stack = self.stack
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="usdcop-bench-")))
        log_dir = self.out_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        _log(f"starting {self.profile.workers} load-generator processes")
        pool = WorkerPool(self.profile.workers)
        stack.callback(pool.close)
        _log("starting redis-server and materializing fresh data (pipeline + live catch-up)")
        redis = stack.enter_context(EmbeddedRedis())
        # Feast prints materialization progress: keep it in a log, not in the report.
        with (
            (log_dir / "pipeline.log").open("w") as pipeline_log,
            contextlib.redirect_stdout(pipeline_log),
            contextlib.redirect_stderr(pipeline_log),
        ):
            data = prepare_data(workdir, redis)
        with redis_client(redis) as client:
            for symbol in BATCH_SYMBOLS[1:]:
                copy_symbol(client, ServerConfig().project, BATCH_SYMBOLS[0], symbol)
        # The realistic write rate the invalidated cache serves under (benchmarks/writer.py).
        writer = PeriodicWriter(
            stack.enter_context(redis_client(redis)), ServerConfig().project, "USDCOP"
        ).start()
        stack.callback(writer.stop)
        _log("starting the echo floor, the observation servers, feast listen and feast serve")
        # Nothing listens on dead_port: Redis is down for the fallback server all run long.
        dead_port = free_port()
        redis_env = tuple(
            ServerConfig(redis_host=redis.host, redis_port=redis.port).to_env().items()
        )
        feast_env = tuple(data.feast_env.items())
        stack.callback(self._stop_servers)
        for scenario in BENCH_SCENARIOS:
            launch = self._launcher(scenario, redis, dead_port, data, log_dir)
            ours = scenario.server in (SERVER_ECHO, SERVER_OBSERVATION)
            if ours:
                self.ours.append(scenario.name)
            count = (
                0
                if launch is None
                else self.profile.server_instances
                if ours
                else self.profile.feast_instances
            )
            self.live[scenario.name] = [launch(i) for i in range(count)] if launch else []
            spec = ScenarioSpec(
                scenario.name,
                scenario.kind,
                symbols=dict(scenario.options).get("symbols", ()),
                repo_path=str(data.repo_dir) if scenario.kind == KIND_FEAST_SDK else "",
                env={KIND_REDIS_READ: redis_env, KIND_FEAST_SDK: feast_env}.get(scenario.kind, ()),
            )
            self.instances[scenario.name] = [
                dataclasses.replace(spec, port=server.port) for server in self.live[scenario.name]
            ] or [spec]
        for name, processes in self.live.items():
            for server in processes:
                if name == "feast_serve":
                    server.wait_http_ok(timeout_s=servers.READY_TIMEOUT_S)
                else:
                    server.wait_serving(timeout_s=servers.READY_TIMEOUT_S)
        self.specs = {name: specs[0] for name, specs in self.instances.items()}
        _log("all servers ready")
        return data, pool

    def _launcher(
        self,
        scenario: BenchScenario,
        redis: EmbeddedRedis,
        dead_port: int,
        data: BenchData,
        log_dir: Path,
    ) -> Callable[[int], ServerProcess] | None:
        """How to start process ``i`` of the scenario's server (its log: ``<name>.<i>.log``);
        None: no server."""
        name = scenario.name
        if scenario.server == SERVER_ECHO:
            return lambda i: servers.echo_server(free_port(), log_dir, f"{name}.{i}")
        if scenario.server == SERVER_FEAST_LISTEN:
            return lambda i: servers.feast_listen(
                free_port(), data.repo_dir, data.feast_env, log_dir, f"{name}.{i}"
            )
        if scenario.server == SERVER_FEAST_SERVE:
            return lambda i: servers.feast_serve(
                free_port(), data.repo_dir, data.feast_env, log_dir, f"{name}.{i}"
            )
        if scenario.server != SERVER_OBSERVATION:
            return None

        def observation(i: int) -> ServerProcess:
            metrics_port = free_port() if scenario.metrics != METRICS_OFF else 0
            if scenario.metrics == METRICS_SCRAPED:
                self.metrics_ports[name] = metrics_port
            return servers.observation_server(
                name,
                free_port(),
                log_name=f"{name}.{i}",
                redis_host="127.0.0.1" if scenario.redis_down else redis.host,
                redis_port=dead_port if scenario.redis_down else redis.port,
                data_dir=data.data_dir,
                log_dir=log_dir,
                metrics_port=metrics_port,
                **dict(scenario.options),
            )

        return observation

    def _stop_servers(self) -> None:
        everything = [server for processes in self.live.values() for server in processes]
        for server in everything:
            server.send_signal(signal.SIGTERM)
        for server in everything:
            server.stop()

    def pick_instances(self, names: Iterable[str], series: str) -> None:
        """This round's process for each of ``names``: in each series of rounds (a load mode,
        an open-loop rate), each scenario goes through its processes in a shuffled order, then
        another (seeded), so every process serves about as many rounds of the series, and a
        ratio pairs different processes of its two scenarios.

        Why several processes: a server process keeps for its whole life what its start dealt
        it (where its memory landed, its hash seed, its place on the cores), and that moves its
        latency by several percent for good: 4 processes each of observation_redis and echo in
        one run gave redis / echo from 1.39 to 1.53 between pairs. With one process per
        scenario, that is a constant of the run, which no interval computed from its rounds can
        see (two quick runs of one commit gave redis / echo 1.545 [1.444, 1.683] and 1.394
        [1.329, 1.432]). Rounds over several processes put it in the rounds' spread, which the
        interval covers, and the median rests on several processes instead of one. (Restarting
        the servers every round instead measured processes in their first seconds, whose
        tails are 30-40% longer and far noisier than a warmed-up server's.)"""
        for name in names:
            count = len(self.instances[name])
            queue = self._instance_queues.setdefault((series, name), [])
            if not queue:
                queue.extend(self.rng.sample(range(count), count))
            index = queue.pop()
            self.specs[name] = self.instances[name][index]
            self.serving[name] = self.live[name][index] if self.live[name] else None

    def _probe_until_right(
        self, pool: WorkerPool, name: str, spec: ScenarioSpec
    ) -> tuple[dict[str, Any], list[str]]:
        """The first call's answer and what is wrong with it (nothing: right), retried until
        right within ``PROBE_TIMEOUT_S`` (a fallback server answers UNAVAILABLE until its
        first rows are computed)."""
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while True:
            problems: list[str]
            try:
                probe = pool.run(0, "probe", spec, {})
                problems = _check_probe(name, probe)
            except RuntimeError as error:
                probe, problems = {}, [f"the first call failed: {error}"]
            if not problems or time.monotonic() > deadline:
                return probe, problems
            time.sleep(0.1)

    # -- phases -----------------------------------------------------------------------------
    def probe(self, pool: WorkerPool) -> None:
        """Every process's first answer is checked (a wrong one fails the run, nothing is
        measured), then each of ours is warmed up (``INSTANCE_WARMUP_*``)."""
        failures = []
        for name, specs in self.instances.items():
            for spec in specs:
                probe, problems = self._probe_until_right(pool, name, spec)
                if problems:
                    failures += [f"{name}: {problem}" for problem in problems]
                    continue
                self.probes.setdefault(name, probe)
        if failures:
            raise BenchmarkError("wrong answers, nothing measured:\n  " + "\n  ".join(failures))
        for name in self.ours:
            for spec in self.instances[name]:
                warm = {"calls": INSTANCE_WARMUP_CALLS, "warmup_calls": 0}
                pool.run(0, "sequential", spec, warm)
                pool.run(0, "open", spec, INSTANCE_WARMUP_OPEN)
        echo_bytes = self.probes["echo"].get("response_bytes")
        real_bytes = self.probes["observation_cached"].get("response_bytes")
        self.notes.append(
            f"echo answer {echo_bytes} bytes; real observation answer {real_bytes} bytes"
        )

    def _shuffled(self, specs: dict[str, ScenarioSpec], *, feast_last: bool = False) -> list[str]:
        """This round's order: shuffled, so no scenario always runs first or after another.

        ``feast_last``: Feast's servers saturate at the open loop's middle rates and keep
        working off their backlog after the generator gives up on it: they close the round
        (in a shuffled order of their own), so that backlog lands in no other figure.
        """
        names = list(specs)
        self.rng.shuffle(names)
        if feast_last:
            names.sort(key=lambda n: specs[n].kind in (KIND_FEAST_LISTEN, KIND_FEAST_SERVE))
        return names

    def sequential(self, pool: WorkerPool, round_indexes: range) -> None:
        """One block of sequential rounds (``sequential_blocks``), each on this round's
        process of each server (:meth:`pick_instances`); :meth:`finish_sequential` pools them
        all into the table's rows."""
        profile = self.profile
        # A block's first round warms connections and caches up (they idled through the other
        # modes); later rounds only re-warm after the switch from the previous scenario.
        rewarm = min(REWARM_CALLS, profile.sequential_warmup_calls)
        for round_index in round_indexes:
            _log(f"sequential round {round_index + 1}/{profile.sequential_rounds}")
            self.pick_instances(self.specs, "sequential")
            first = round_index == round_indexes.start
            for name in self._shuffled(self.specs):
                params = {
                    "calls": profile.sequential_round_calls,
                    "warmup_calls": profile.sequential_warmup_calls if first else rewarm,
                    "max_s": profile.sequential_round_s_for(self._call_s.get(name)),
                }
                spec = self.specs[name]
                result = [pool.run(0, "sequential", spec, params)]
                if result[0]["calls"]:
                    self._call_s[name] = result[0]["elapsed_s"] / result[0]["calls"]
                self.sequential_parts.setdefault(name, []).append(result)
                self.rounds.append(
                    _round_summary(
                        _row(spec, "sequential", [result]), round_index, self.serving[name]
                    )
                )

    def finish_sequential(self) -> None:
        for name, spec in self.specs.items():
            self.rows.append(_row(spec, "sequential", self.sequential_parts[name]))

    def _networked(self, names: Iterable[str] | None = None) -> dict[str, ScenarioSpec]:
        """The current specs of the scenarios served over the network (of ``names``)."""
        return {
            name: spec
            for name, spec in self.specs.items()
            if spec.networked and (names is None or name in names)
        }

    def closed(self, pool: WorkerPool) -> float:
        """Closed-loop rounds (:meth:`pick_instances` each); returns echo's throughput
        (pooled), calls/s."""
        profile = self.profile
        params = {
            "channels": profile.closed_channels_per_worker,
            "in_flight": profile.closed_in_flight,
            "duration_s": profile.closed_duration_s,
            "warmup_s": profile.closed_warmup_s,
        }
        parts: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in self._networked()}
        for round_index in range(profile.closed_rounds):
            _log(f"closed loop round {round_index + 1}/{profile.closed_rounds}")
            self.pick_instances(self.specs, "closed")
            networked = self._networked()
            for name in self._shuffled(networked):
                result = pool.run_all("closed", networked[name], params)
                parts[name].append(result)
                self.rounds.append(
                    _round_summary(
                        _row(networked[name], "closed", [result]), round_index, self.serving[name]
                    )
                )
        for name, spec in self._networked().items():
            self.rows.append(_row(spec, "closed", parts[name]))
        echo = next(r for r in self.rows if r["scenario"] == "echo" and r["mode"] == "closed")
        return float(echo["achieved_rate"])

    def _open_rate(  # noqa: PLR0913 - one open-loop rate's settings, keyword-only
        self,
        pool: WorkerPool,
        rate: float,
        *,
        rounds: int,
        table_rounds: int,
        rate_kind: str,
        saturated: set[str],
    ) -> None:
        """``rounds`` interleaved rounds at one rate: the target's pair (``OPEN_LOOP_PAIR``) in
        each, the other scenarios in the first
        ``table_rounds``. A scenario that saturates (achieved under 90 % of the rate, or
        errors) leaves this rate's later rounds and every higher rate; at a target rate, the
        pair runs every round all the same, even after saturating at a lower rate (a
        saturated round's p99 is what a caller would see: its ratio counts like any other,
        and the target keeps all its rounds)."""
        keep_pair = rate in profile_target_rates(self.profile) and rate_kind == "fixed"
        profile = self.profile
        params = {
            "rate": rate,
            "duration_s": profile.open_round_duration_s(rate),
            "warmup_s": profile.open_warmup_s,
            "drain_timeout_s": 10.0,
        }
        parts: dict[str, list[list[dict[str, Any]]]] = {name: [] for name in self._networked()}
        for round_index in range(rounds):
            active = self._networked(
                n
                for n in self.specs
                if (n in OPEN_LOOP_PAIR or round_index < table_rounds)
                and (n not in saturated or (keep_pair and n in OPEN_LOOP_PAIR))
            )
            if not active:
                break
            _log(f"open loop {rate:.0f}/s ({rate_kind}) round {round_index + 1}/{rounds}")
            self.pick_instances(active, f"open {rate_kind} {rate:g}")
            active = self._networked(active)
            for name in self._shuffled(active, feast_last=True):
                result = [pool.run(0, "open", active[name], params)]
                parts[name].append(result)
                summary = _round_summary(
                    _row(active[name], "open", [result]), round_index, self.serving[name]
                )
                summary["saturated"] = _saturated(summary, rate)
                if rate_kind == "fixed":
                    self.rounds.append(summary)
                if summary["saturated"]:
                    saturated.add(name)
        for name, spec in self._networked().items():
            if not parts[name]:
                continue
            row = _row(spec, "open", parts[name])
            row["rate_kind"] = rate_kind
            row["saturated"] = name in saturated
            self.rows.append(row)

    def open_loop(self, pool: WorkerPool, echo_saturation: float) -> list[float]:
        """The fixed rates in rounds, then the capacity-relative rates (one pass each);
        returns the capacity-relative rates."""
        saturated: set[str] = set()
        for rate in self.profile.open_rates_per_s:
            self._open_rate(
                pool,
                rate,
                rounds=self.profile.open_rounds,
                table_rounds=self.profile.open_table_rounds,
                rate_kind="fixed",
                saturated=saturated,
            )
        relative = relative_rates(self.profile, echo_saturation)
        saturated = set()
        for rate in relative:
            self._open_rate(
                pool,
                rate,
                rounds=1,
                table_rounds=1,
                rate_kind="relative",
                saturated=saturated,
            )
        return relative


def sequential_blocks(rounds: int, blocks: int) -> list[range]:
    """``rounds`` round indexes in ``blocks`` consecutive blocks, as even as possible (the
    first ones one round longer); a block may be empty when there are fewer rounds."""
    size, extra = divmod(rounds, blocks)
    out, start = [], 0
    for block in range(blocks):
        stop = start + size + (1 if block < extra else 0)
        out.append(range(start, stop))
        start = stop
    return out


def relative_rates(profile: Profile, echo_saturation: float) -> list[float]:
    """The capacity-relative open-loop rates: fractions of echo's closed-loop throughput,
    ascending, without repeats."""
    return sorted(
        {max(1.0, float(round(fraction * echo_saturation))) for fraction in profile.open_fractions}
    )


def profile_target_rates(profile: Profile) -> tuple[float, ...]:
    """The fixed open-loop rates with a target (a subset of the fixed rates)."""
    return tuple(r for r in profile.open_rates_per_s if r in profile.open_target_rates_per_s)


def open_percentiles(profile: Profile) -> dict[float, str]:
    """The percentile each target rate's per-round ratios compare."""
    return {
        rate: open_loop_percentile(profile.open_round_calls(rate))
        for rate in profile_target_rates(profile)
    }


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def run_benchmarks(
    profile_name: str, results_dir: Path = RESULTS_DIR, emit: Callable[[str], None] = print
) -> Path:
    """Run every scenario under ``profile_name``; returns the results folder."""
    profile = PROFILES[profile_name]
    timestamp = _timestamp()
    out_dir = results_dir / timestamp
    out_dir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    cpu_before = read_cpu_times()
    with contextlib.ExitStack() as stack:
        run = _Run(profile, out_dir, stack)
        data, pool = run.start()
        run.probe(pool)
        blocks = sequential_blocks(profile.sequential_rounds, SEQUENTIAL_BLOCKS)
        run.sequential(pool, blocks[0])
        echo_saturation = run.closed(pool)
        run.sequential(pool, blocks[1])
        relative = run.open_loop(pool, echo_saturation)
        run.sequential(pool, blocks[2])
        run.finish_sequential()
        run.notes.append(metrics_cost_note(run.rows))
        run.notes.append(scrape_note(run.metrics_ports["observation_cached"]))
    # After every latency server has stopped: a machine to itself, as a deployment starts one.
    footprints = (
        footprint.measure_all(profile.footprint_runs, profile.footprint_calls)
        if profile.footprint_runs
        else []
    )
    record = {
        "run": {
            "timestamp": timestamp,
            "profile": profile.name,
            "profile_settings": profile.__dict__,
            "git_sha": _git("rev-parse", "HEAD") or "unknown (no commit)",
            "git_dirty": bool(_git("status", "--porcelain")),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "packages": _versions(),
            "load_generator_processes": {"sequential": 1, "open": 1, "closed": profile.workers},
            "closed_loop_connections": profile.workers * profile.closed_channels_per_worker,
            "closed_loop_in_flight": profile.closed_in_flight,
            "echo_saturation_per_s": echo_saturation,
            "server_instances": {name: len(run.live[name]) for name in run.live},
            "open_fixed_rates_per_s": list(profile.open_rates_per_s),
            "open_relative_rates_per_s": relative,
            "duration_s": round(time.monotonic() - began, 1),
            "conditions": conditions(run.rounds, cpu_before, read_cpu_times()),
        },
        "data": data.detail,
        "probes": run.probes,
        "measurements": run.rows,
        "rounds": run.rounds,
        "targets": evaluate_targets(run.rounds, open_percentiles(profile))
        + (footprint.targets(footprints) if footprints else []),
        "footprint": [asdict(row) for row in footprints],
        "notes": run.notes,
    }
    markdown = write_outputs(record, out_dir)
    emit(markdown)
    emit(f"results: {out_dir}")
    return out_dir
