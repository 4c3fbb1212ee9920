"""The quick start (``python -m pipeline up``): from nothing to a served, fresh observation.

What enters: ``PipelineSettings`` and a clock. What leaves, in order:

1. Redis: the configured one (FEAST_REDIS_HOST), else an embedded ``redis-server``
   (devstack.embedded_redis) on 127.0.0.1, a free port and a generated password; with
   ``FEAST_OFFLINE_STORE_TYPE=postgres``, likewise the configured PostgreSQL (POSTGRES_HOST) or
   an embedded one (devstack.embedded_postgres), which holds L0 and L1;
2. the pipeline (L0 -> L1 -> apply -> materialize), then the live catch-up, so every view holds
   a row younger than its TTL whatever the hour or weekday (see pipeline.live);
3. ``data/redis.env`` (mode 0600, with the password), so ``python -m pipeline feast ...`` reaches
   this Redis;
4. the observation server (``python -m server``, devstack.server_process) on USDCOP_PORT for
   exactly the pipeline's symbols, once *its* health is SERVING and one real GetObservation per
   symbol answered; otherwise exit 1 with one line (e.g. another server holds the port);
5. one observation printed through the client (``python -m client``), and how to call it;
6. the live loop, until Ctrl-C or SIGTERM: new bars every tick, and a refill of every view when
   Redis comes back empty (pipeline.online_watch); if the server dies, exit 1 with one line.
   Then the server, the state file and the embedded Redis are stopped, in that order. If ``up``
   itself is killed (SIGKILL), the kernel ends the server and redis-server (core.lifetime).

``python -m pipeline live`` (:func:`run_live`) is steps 1, 2 and 6 without the server: the
pipeline's container in ``deploy/compose.yaml``, next to a server that runs on its own.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType

from offline_store.factory import open_store
from offline_store.store import OfflineStore
from online_store.address import RedisAddress
from pipeline.live import Clock, LiveFeed, LiveStep, wall_clock
from pipeline.metrics import write_pipeline_metrics
from pipeline.online_watch import OnlineStoreWatch
from pipeline.run import run_configured_pipeline
from pipeline.settings import PipelineSettings
from pipeline.state_file import remove_redis_state, write_redis_state
from server.config import ServerConfig

Printer = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


@contextmanager
def online_store(settings: PipelineSettings, out: Printer = _print) -> Iterator[RedisAddress]:
    """The configured Redis, or an embedded redis-server for the duration of the block."""
    if settings.redis is not None:
        out(f"redis: using {settings.redis.host}:{settings.redis.port} (FEAST_REDIS_HOST)")
        yield settings.redis
        return
    # devstack/ stays in the repository (an installed package does not ship it): imported only
    # where an embedded process starts, so `run` against configured stores works without it.
    from devstack.embedded_redis import EmbeddedRedis

    # A generated password: any local user could otherwise reach (and rewrite) the store.
    # URL-safe characters only: Feast's connection string splits on ','.
    with EmbeddedRedis(password=secrets.token_urlsafe(24)) as embedded:
        out(
            f"redis: started an embedded redis-server on {embedded.host}:{embedded.port} "
            "(requirepass: a generated password)"
        )
        yield RedisAddress(host=embedded.host, port=embedded.port, password=embedded.password)


@contextmanager
def open_offline_store(settings: PipelineSettings, out: Printer = _print) -> Iterator[OfflineStore]:
    """The offline store ``settings`` name (``offline_store.store.open_store``); PostgreSQL
    without POSTGRES_HOST is an embedded one (started here, stopped at the end of the block)."""
    if settings.offline_store == "postgres" and settings.postgres is None:
        from devstack.embedded_postgres import EmbeddedPostgres

        with EmbeddedPostgres() as embedded:
            out(
                f"postgres: started an embedded PostgreSQL on {embedded.host}:{embedded.port} "
                f"in {embedded.start_seconds:.1f} s"
            )
            yield open_store(settings.data_dir, embedded.address)
        return
    store = open_store(settings.data_dir, settings.postgres, settings.offline_store)
    if store.database is not None:
        out(f"postgres: using {store.describe()} (POSTGRES_HOST)")
    yield store


def how_to_call(target: str, symbol: str) -> str:
    """What to paste to call the running server (Python client and grpcurl)."""
    return "\n".join(
        [
            f"ObservationService is serving on {target}. Call it from Python:",
            "",
            "    from client import ObservationClient",
            f'    with ObservationClient("{target}") as observations:',
            f'        result = observations.get("{symbol}")',
            "        print(result.values)  # numpy float32, shape (15,), contract order",
            "",
            "or with grpcurl (server reflection; the binary is in .venv/bin):",
            "",
            f'    grpcurl -plaintext -d \'{{"symbol": "{symbol}"}}\' {target} '
            "usdcop.observation.v1.ObservationService/GetObservation",
            "",
            f"or: python -m client {symbol} --target {target}",
            "Feast diagnostics against this Redis: python -m pipeline feast feature-views list",
            "Ctrl-C stops the live feed, the server and the embedded Redis.",
        ]
    )


def describe_step(step: LiveStep) -> str:
    """One console line for a live step."""
    if step.refilled and not step.bar_opens:
        return (
            f"live {step.now:%H:%M:%S}: the online store had lost its rows: re-materialized "
            f"every view's last TTL up to {step.now:%H:%M:%S}"
        )
    if not step.bar_opens:
        return f"live {step.now:%H:%M:%S}: no new slot completed"
    first, last = step.bar_opens[0], step.bar_opens[-1]
    span = f"{first:%H:%M}" if first == last else f"{first:%H:%M}..{last:%H:%M}"
    views = sum(m.ran for m in step.materialized)
    return (
        f"live {step.now:%H:%M:%S}: +{len(step.bar_opens)} bar(s) opening {span} UTC, "
        f"materialized {views} views up to {step.now:%H:%M:%S}"
        + (" (the online store had lost its rows: refilled)" if step.refilled else "")
    )


def print_client_observation(target: str, symbol: str, out: Printer = _print) -> bool:
    """Run ``python -m client SYMBOL --target TARGET`` and print its table; True on success."""
    done = subprocess.run(
        [sys.executable, "-m", "client", symbol, "--target", target],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    out(done.stdout.rstrip() if done.returncode == 0 else done.stderr.rstrip())
    return done.returncode == 0


@dataclass(frozen=True)
class _Fed:
    """What :func:`_pipeline_then_catch_up` leaves running."""

    redis: RedisAddress
    offline: OfflineStore
    feed: LiveFeed
    textfile: Path


def _pipeline_then_catch_up(
    settings: PipelineSettings, stack: ExitStack, clock: Clock, out: Printer
) -> _Fed:
    """Steps 1-2 of the module docstring: the stores (closed by ``stack``), the pipeline, the
    pipeline metrics textfile, and the live feed caught up to now."""
    redis = stack.enter_context(online_store(settings, out))
    offline = stack.enter_context(open_offline_store(settings, out))
    now: datetime = clock()
    result = run_configured_pipeline(settings, redis, now, offline)
    out(result.summary())
    textfile = write_pipeline_metrics(
        settings.metrics_folder,
        finished_at=clock(),
        materialized=result.materialized,
        l1_rows=result.offline.rows,
    )
    assert result.store is not None
    watch = OnlineStoreWatch(
        redis,
        result.store.project,
        settings.symbols,
        result.store.config.entity_key_serialization_version,
    )
    stack.callback(watch.close)
    feed = LiveFeed(
        settings.data_dir,
        result.store,
        seed=settings.seed,
        catchup_bars=settings.live_catchup_bars,
        clock=clock,
        store_lost=watch.lost,
        offline=offline,
        redis=redis,
    )
    catch_up = feed.step()
    out(describe_step(catch_up))
    record_live_step(settings, catch_up, clock)
    return _Fed(redis, offline, feed, textfile)


def _stop_after(stop: threading.Event, exit_after_s: float | None) -> threading.Timer:
    timer = threading.Timer(exit_after_s or 0.0, stop.set)
    timer.daemon = True
    if exit_after_s is not None:
        timer.start()
    return timer


def run_up(
    settings: PipelineSettings,
    *,
    clock: Clock = wall_clock,
    exit_after_s: float | None = None,
    out: Printer = _print,
    server_defaults: ServerConfig | None = None,
) -> int:
    """The quick start (module docstring). Returns the process exit code."""
    server_defaults = ServerConfig() if server_defaults is None else server_defaults
    stop = threading.Event()
    with _signals_stop(stop) as in_live_loop, ExitStack() as stack:
        fed = _pipeline_then_catch_up(settings, stack, clock, out)
        write_redis_state(settings.data_dir, fed.redis)
        stack.callback(remove_redis_state, settings.data_dir)

        from devstack.server_process import ServerProcess

        config = server_config(server_defaults, settings, fed.redis, fed.offline)
        server = stack.enter_context(ServerProcess(config))
        server.wait_serving()
        server.probe()  # every symbol the pipeline built answers, or the start-up failed
        died: list[int] = []

        def server_died(code: int) -> None:
            died.append(code)
            stop.set()

        server.watch(server_died)
        for symbol in settings.symbols:
            print_client_observation(server.target, symbol, out)
        out(how_to_call(server.target, settings.symbols[0]))
        out(f"Prometheus metrics of the server: {server.metrics_url}")
        out(f"pipeline metrics (node-exporter textfile): {fed.textfile}")
        if settings.agent_policy is not None:
            start_agent(server.target, settings, stop, out)

        _run_feed(
            fed, settings, stop, in_live_loop, exit_after_s=exit_after_s, clock=clock, out=out
        )
        if died:
            print(
                f"error: the observation server (pid {server.pid}) exited with code {died[0]} "
                "while the quick start was running; stopping",
                file=sys.stderr,
                flush=True,
            )
            return 1
        out("stopping: server, state file, then the embedded services")
    return 0


def start_agent(
    target: str, settings: PipelineSettings, stop: threading.Event, out: Printer
) -> threading.Thread | None:
    """The inference agent (``agent.loop``) in a daemon thread: it follows WatchObservations
    and decides on each new bar the live feed materializes (its first decision at once), says
    each decision on ``out``, logs them in ``data/offline/agent_decisions`` and keeps its
    metrics textfile beside the pipeline's; its pushes are recorded offline by the next tick."""
    from agent.decision import Decision
    from agent.loop import Agent, AgentSettings
    from agent.policy import PolicyError, load_policy
    from client import ObservationClient

    assert settings.agent_policy is not None
    try:
        policy = load_policy(settings.agent_policy)
    except PolicyError as exc:
        out(f"agent: not started: {exc}")
        return None

    # The stream of now: a tick's materialization swaps sys.stdout for a moment (to swallow
    # Feast's banner, pipeline.materialize), and this thread's lines must not fall into it.
    stream = sys.stdout

    def emit(line: str) -> None:
        if out is _print:
            print(line, file=stream, flush=True)
        else:
            out(line)

    def say(decision: Decision) -> None:
        position = "-" if decision.position is None else f"{decision.position:+.3f}"
        took = " ".join(
            f"{name} {ms:.1f} ms"
            for name, ms in (
                ("observe", decision.observe_ms),
                ("push", decision.push_ms),
                ("bar close -> applied", decision.since_bar_ms),
            )
            if ms is not None
        )
        emit(f"agent: {decision.action} {position} ({decision.reason}) {took}".rstrip())

    def loop() -> None:
        agent_settings = AgentSettings(
            symbol=settings.symbols[0],
            decision_log=settings.data_dir / "offline" / "agent_decisions",
            metrics_dir=settings.metrics_folder,
        )
        try:
            with ObservationClient(target) as client:
                Agent(client, policy, agent_settings, on_decision=say).run_on_changes(
                    stop=stop.is_set
                )
        except Exception as exc:
            if not stop.is_set():
                emit(f"agent: stopped ({type(exc).__name__}: {exc})")

    out(f"agent: policy {settings.agent_policy}, deciding on each new bar of {settings.symbols[0]}")
    thread = threading.Thread(target=loop, name="agent", daemon=True)
    thread.start()
    return thread


def _run_feed(  # noqa: PLR0913 - the feed loop's shared state, keyword-only
    fed: _Fed,
    settings: PipelineSettings,
    stop: threading.Event,
    in_live_loop: threading.Event,
    *,
    exit_after_s: float | None,
    clock: Clock,
    out: Printer,
) -> None:
    """The live feed's ticks (metrics textfile after each) until ``stop`` or ``exit_after_s``."""
    timer = _stop_after(stop, exit_after_s)
    in_live_loop.set()
    fed.feed.run(
        stop,
        settings.live_tick_s,
        on_step=lambda step: on_live_step(settings, step, clock, out),
    )
    timer.cancel()


def run_live(
    settings: PipelineSettings,
    *,
    clock: Clock = wall_clock,
    exit_after_s: float | None = None,
    out: Printer = _print,
) -> int:
    """``python -m pipeline live``: steps 1, 2 and 6 of the module docstring without a server
    (a deployment runs the server on its own): the pipeline, the catch-up, then the live feed
    and its refills until SIGTERM/Ctrl-C, with the metrics textfile after each step. Returns
    the process exit code."""
    stop = threading.Event()
    with _signals_stop(stop) as in_live_loop, ExitStack() as stack:
        fed = _pipeline_then_catch_up(settings, stack, clock, out)
        out(
            f"live feed: a tick every {settings.live_tick_s:g} s into "
            f"{fed.redis.host}:{fed.redis.port}; pipeline metrics (node-exporter textfile): "
            f"{fed.textfile}"
        )
        _run_feed(
            fed, settings, stop, in_live_loop, exit_after_s=exit_after_s, clock=clock, out=out
        )
        out("stopping the live feed")
    return 0


def server_config(
    defaults: ServerConfig,
    settings: PipelineSettings,
    redis: RedisAddress,
    offline: OfflineStore | None = None,
) -> ServerConfig:
    """The server ``up`` starts: ``defaults`` (the server's own settings, e.g. from the
    environment) with the pipeline's Redis, data folder, symbols, port and metrics port (port
    0 picks a free one); when the offline store is a database, its fallback reads the raw
    window from that database."""
    postgres = None if offline is None else offline.database
    if postgres is not None:
        defaults = defaults.with_overrides(
            fallback_source="postgres",
            postgres_host=postgres.host,
            postgres_port=postgres.port,
            postgres_db=postgres.database,
            postgres_user=postgres.user,
            postgres_password=postgres.password,
        )
    from devstack.embedded_redis import free_port

    return defaults.with_overrides(
        redis_host=redis.host,
        redis_port=redis.port,
        redis_password=redis.password,
        redis_tls=redis.tls,
        redis_type="redis_cluster" if redis.cluster else "redis",
        data_dir=settings.data_dir,
        symbols=settings.symbols,
        bind_address="127.0.0.1",
        port=settings.server_port or free_port(),
        metrics_port=settings.metrics_port or free_port(),
    )


def record_live_step(settings: PipelineSettings, step: LiveStep, clock: Clock) -> None:
    """The textfile after a live step that materialized something."""
    if step.materialized:
        write_pipeline_metrics(
            settings.metrics_folder,
            finished_at=clock(),
            materialized=step.materialized,
            l1_rows=None if step.offline is None else step.offline.rows,
        )


def on_live_step(settings: PipelineSettings, step: LiveStep, clock: Clock, out: Printer) -> None:
    if step.materialized:
        out(describe_step(step))
    record_live_step(settings, step, clock)


@contextmanager
def _signals_stop(stop: threading.Event) -> Iterator[threading.Event]:
    """SIGINT/SIGTERM: inside the live loop, set ``stop`` (the loop ends after its step);
    before it, raise KeyboardInterrupt so the ExitStack still stops what was started
    (a default SIGTERM would leave the embedded redis-server behind).

    Yields the event the caller sets when the live loop starts.
    """
    in_live_loop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if not in_live_loop.is_set():
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield in_live_loop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
