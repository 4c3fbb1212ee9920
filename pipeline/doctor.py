"""``python -m pipeline doctor``: what an on-call person runs first.

What enters: the pipeline settings (Redis address with AUTH/TLS, data folder, symbols), the
gRPC target of the observation server and ``now`` (injected; the wall clock by default). What
leaves: a :class:`Report` -- one :class:`Check` per line, each with a verdict (``ok``, ``warn``,
``FAIL``), what was seen and, when it is not ok, the fix -- printed as text or JSON; any FAIL
makes the exit code 1.

The checks, in the data's order: offline store (raw and offline files present; with
FEAST_OFFLINE_STORE_TYPE=postgres: PostgreSQL answers, schema applied, every table holds rows),
the registry's contract hash vs the code's, the feature service's 15 features in contract
order, the last successful materialization and its age, Redis reachable and its PING time, the
symbol's key, each view's event time, age and TTL verdict, then the gRPC server's health and a real
GetObservation with each view's source (and, when the server finds no entry for a symbol whose
key Redis holds, that its USDCOP_FEAST_PROJECT differs). A missing data folder is said as such.

Fast on purpose: the registry is read from its proto file (pipeline.registry_file), Redis with
redis-py, the server with grpc -- no ``import feast`` (about 4 s) and no pandas.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

from canonical import contract
from offline_store.factory import MissingDatabaseError, open_store
from offline_store.store import OfflineStore
from online_store.address import RedisAddress
from pipeline.registry_file import (
    RegistryError,
    RegistrySummary,
    read_registry,
    registry_path,
)
from pipeline.settings import PipelineSettings

Verdict = Literal["ok", "warn", "FAIL"]

MATERIALIZE_FIX = (
    "materialize the latest interval: `airflow dags trigger v3.l1b_feast_materialize`, or "
    "`python -m pipeline materialize --start <T-15min> --end <T>` (docs/RUNBOOK.md)"
)
APPLY_FIX = "run `python -m pipeline apply` from the deployed code, then materialize again"
REDIS_FIX = (
    "start Redis or fix FEAST_REDIS_HOST/PORT/PASSWORD/SSL; the server answers from the "
    "fallback meanwhile (docs/RUNBOOK.md, 'Redis connection failed')"
)


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    verdict: Verdict
    detail: str
    fix: str = ""
    """How to fix it; empty when the verdict is ok."""
    seconds: float = 0.0
    """Wall time of the check."""

    def line(self) -> str:
        text = f"{self.verdict:<4}  {self.name:<28} {self.detail}"
        if self.fix and self.verdict != "ok":
            text += f"\n      fix: {self.fix}"
        return text


@dataclass(frozen=True)
class Report:
    """Every check, and the total time."""

    checks: tuple[Check, ...]
    seconds: float
    now: datetime

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.verdict == "FAIL")

    def text(self) -> str:
        lines = [c.line() for c in self.checks]
        lines.append(
            f"doctor: {len(self.checks)} checks, {len(self.failed)} failed, "
            f"{sum(c.verdict == 'warn' for c in self.checks)} warnings "
            f"({self.seconds * 1000:.0f} ms, now={self.now.isoformat()})"
        )
        return "\n".join(lines)

    def as_json(self) -> str:
        return json.dumps(
            {
                "ok": not self.failed,
                "seconds": round(self.seconds, 4),
                "now": self.now.isoformat(),
                "checks": [asdict(c) | {"seconds": round(c.seconds, 4)} for c in self.checks],
            },
            indent=2,
        )


class _Add(Protocol):
    def __call__(self, name: str, verdict: Verdict, detail: str, fix: str = "") -> None: ...


@dataclass
class _Recorder:
    checks: list[Check] = field(default_factory=list)

    @contextmanager
    def timed(self) -> Iterator[_Add]:
        started = time.perf_counter()
        pending: list[tuple[str, Verdict, str, str]] = []

        def add(name: str, verdict: Verdict, detail: str, fix: str = "") -> None:
            pending.append((name, verdict, detail, fix))

        yield add
        share = (time.perf_counter() - started) / max(len(pending), 1)
        self.checks.extend(Check(n, v, d, f if v != "ok" else "", share) for n, v, d, f in pending)


def run_doctor(
    settings: PipelineSettings,
    target: str,
    now: datetime | None = None,
    grpc_timeout_s: float = 2.0,
) -> Report:
    """Run every check (none raises: a broken piece is a FAIL line)."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    record = _Recorder()
    offline = _offline_store(record, settings)
    summary = _registry(record, registry_path(settings.data_dir, settings.offline_store))
    _last_materialization(record, summary, now)
    redis_address = settings.redis or _state_file_redis(settings.data_dir)
    keyed = _redis(record, redis_address, settings.symbols, now)
    _server(record, target, settings.symbols, grpc_timeout_s, keyed)
    _skew(record, offline, now)
    return Report(tuple(record.checks), time.perf_counter() - started, now)


SKEW_WINDOW = timedelta(hours=1)


def _skew(record: _Recorder, offline: OfflineStore | None, now: datetime) -> None:
    """The served answers recorded in the last hour against the offline store (read-only: what
    the pipeline recorded; ``pipeline skew`` records what Redis still holds first)."""
    from pipeline.skew import skew_report

    with record.timed() as add:
        start = now - SKEW_WINDOW
        if offline is None:
            add("served vs offline", "warn", "cannot compare: no offline store configured")
            return
        try:
            report = skew_report(offline, start, now)
        except Exception as exc:
            add("served vs offline", "warn", f"cannot compare: {type(exc).__name__}: {exc}")
            return
        if report.rows == 0:
            add("served vs offline", "ok", "no served answers recorded in the last hour")
        elif report.mismatched:
            differ = sorted(
                {
                    f.feature
                    for f in report.features
                    if f.mismatched_offline + f.mismatched_recomputed
                }
            )
            add(
                "served vs offline",
                "FAIL",
                f"{report.mismatched} of {report.compared} served values differ in the last "
                f"hour: {', '.join(differ)}",
                f"python -m pipeline skew --start {start.isoformat()} --end {now.isoformat()}; "
                "docs/RUNBOOK.md section 8",
            )
        else:
            add(
                "served vs offline",
                "ok",
                f"{report.rows} answers of the last hour, {report.compared} values equal to the "
                "offline store, bit for bit",
            )


def _state_file_redis(data_dir: Path) -> RedisAddress | None:
    from pipeline.state_file import read_redis_state

    return read_redis_state(data_dir)


def _offline_store(record: _Recorder, settings: PipelineSettings) -> OfflineStore | None:
    """The offline store's health (``OfflineStore.health``); None when none is configured."""
    with record.timed() as add:
        try:
            offline = open_store(settings.data_dir, settings.postgres, settings.offline_store)
        except MissingDatabaseError as exc:
            add(
                f"offline store ({settings.offline_store})",
                "FAIL",
                str(exc),
                "export POSTGRES_HOST/PORT/DB/USER/PASSWORD of the offline store (an embedded "
                "database lives only while the `pipeline up` that started it runs)",
            )
            return None
        health = offline.health()
        add(health.name, "ok" if health.ok else "FAIL", health.detail, health.fix)
    return offline


def _registry(record: _Recorder, where: Path) -> RegistrySummary | None:
    with record.timed() as add:
        try:
            summary = read_registry(where)
        except RegistryError as exc:
            add("registry contract hash", "FAIL", str(exc), APPLY_FIX)
            add("feature service", "FAIL", "no registry to read", APPLY_FIX)
            return None
        service = summary.service()
        registered = service.tags.get("contract_hash", "") if service else ""
        if registered == contract.CONTRACT_HASH:
            add("registry contract hash", "ok", f"{registered[:12]} = code's ({where})")
        else:
            add(
                "registry contract hash",
                "FAIL",
                f"registry {registered[:12] or '(none)'} != code {contract.CONTRACT_HASH[:12]}",
                APPLY_FIX,
            )
        expected = tuple(f"{f.view}:{f.name}" for f in contract.FEATURES)
        if service is None:
            add("feature service", "FAIL", f"{contract.FEATURE_SERVICE} not registered", APPLY_FIX)
        elif service.features == expected:
            add(
                "feature service",
                "ok",
                f"{service.name}: {len(expected)} features in contract order",
            )
        else:
            order = "same names, other order" if set(service.features) == set(expected) else ""
            add(
                "feature service",
                "FAIL",
                f"{service.name}: {len(service.features)} features, contract {len(expected)} "
                f"{order}".rstrip(),
                APPLY_FIX,
            )
        return summary


def _last_materialization(
    record: _Recorder, summary: RegistrySummary | None, now: datetime
) -> None:
    with record.timed() as add:
        if summary is None:
            add("last materialization", "FAIL", "no registry", APPLY_FIX)
            return
        ends = {
            v.name: entry.materialized_until
            for v in contract.VIEWS
            if (entry := summary.view(v.name)) is not None
        }
        known = [end for end in ends.values() if end is not None]
        if not known:
            add("last materialization", "FAIL", "never materialized", MATERIALIZE_FIX)
            return
        latest = max(known)
        add(
            "last materialization",
            "ok",
            f"until {latest.isoformat()} ({_age(now - latest)} ago)",
        )


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def _redis(
    record: _Recorder,
    address: RedisAddress | None,
    symbols: tuple[str, ...],
    now: datetime,
) -> set[str]:
    """Redis and every symbol's views; returns the symbols whose key exists under the
    repository's project."""
    import redis

    from online_store import feast_layout

    with record.timed() as add:
        if address is None:
            add("redis", "FAIL", "no Redis configured (FEAST_REDIS_HOST unset)", REDIS_FIX)
            return set()
        where = f"{address.host}:{address.port}" + (" tls" if address.tls else "")
        where += " auth" if address.password else ""
        try:
            client = address.connect(2.0)
            started = time.perf_counter()
            client.ping()
            ping_ms = (time.perf_counter() - started) * 1000
        except redis.RedisError as exc:
            add("redis", "FAIL", f"{where}: {type(exc).__name__}: {exc}", REDIS_FIX)
            client.close()
            return set()
        add("redis", "ok", f"{where} PING {ping_ms:.2f} ms")
    try:
        _state_events(record, client, now)
        return {s for s in symbols if _symbol(record, client, feast_layout, s, now)}
    finally:
        client.close()


STATE_EVENTS_LAG = timedelta(minutes=15)
"""An applied push still waiting in Redis after this long: the pipeline is not recording them."""


def _state_events(record: _Recorder, client: Any, now: datetime) -> None:
    """The agent's pushes waiting in Redis to be recorded offline (``pipeline.state_events``)."""
    import redis

    from canonical.state_events import stream_key

    with record.timed() as add:
        key = stream_key(contract.PROJECT)
        try:
            waiting = int(client.xlen(key))
            oldest = client.xrange(key, "-", "+", count=1)
        except redis.RedisError as exc:
            add("pushes to record", "FAIL", f"{type(exc).__name__}: {exc}", REDIS_FIX)
            return
        if not oldest:
            add("pushes to record", "ok", "none waiting (every push recorded offline)")
            return
        entry_id = oldest[0][0]
        millis = int((entry_id.decode() if isinstance(entry_id, bytes) else entry_id).split("-")[0])
        age = now - datetime.fromtimestamp(millis / 1000, tz=UTC)
        detail = f"{waiting} waiting in {key.decode()}, oldest {_age(age)} old"
        if age > STATE_EVENTS_LAG:
            add(
                "pushes to record",
                "warn",
                detail + ": the agent's positions are not reaching the offline store",
                "run the pipeline's live feed (`pipeline up`/`live`) or the L1 DAG: each drains "
                "them; a materialization before then writes rule positions for new bars",
            )
        else:
            add("pushes to record", "ok", detail)


def _symbol(record: _Recorder, client: Any, feast_layout: Any, symbol: str, now: datetime) -> bool:
    """The symbol's key and views; True when its key exists."""
    import redis

    with record.timed() as add:
        key = feast_layout.entity_key(symbol, contract.PROJECT)
        try:
            present = bool(client.exists(key))
            stamps = client.hmget(key, [feast_layout.ts_field(v.name) for v in contract.VIEWS])
        except redis.RedisError as exc:
            add(f"key {symbol}", "FAIL", f"{type(exc).__name__}: {exc}", REDIS_FIX)
            return False
        if not present:
            add(
                f"key {symbol}",
                "FAIL",
                f"no hash {key!r} (every view falls back)",
                MATERIALIZE_FIX,
            )
        else:
            add(f"key {symbol}", "ok", f"{len(key)}-byte key (`pipeline redis-key {symbol}`)")
        for view, raw in zip(contract.VIEWS, stamps, strict=True):
            name = f"view {symbol} {view.name}"
            event_ns = feast_layout.decode_timestamp_ns(raw) if raw is not None else None
            if event_ns is None:
                add(name, "FAIL", f"no {feast_layout.ts_field(view.name)!r} field", MATERIALIZE_FIX)
                continue
            event = datetime.fromtimestamp(event_ns / 1e9, tz=UTC)
            age = now - event
            seen = f"event {event.isoformat()}, age {_age(age)}, TTL {_age(view.ttl)}"
            if age < timedelta(0):
                add(name, "FAIL", seen + ": from the future", "check the writer's clock")
            elif age > view.ttl:
                add(name, "FAIL", seen + ": expired (served from fallback)", MATERIALIZE_FIX)
            else:
                add(name, "ok", seen + ": fresh")
    return present


def _server(
    record: _Recorder,
    target: str,
    symbols: tuple[str, ...],
    timeout_s: float,
    keyed: set[str] | None = None,
) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from usdcop.observation.v1 import observation_pb2 as pb
    from usdcop.observation.v1 import observation_pb2_grpc as pb_grpc

    fix = (
        "start the observation server (python -m server) or fix --target; "
        "see docs/RUNBOOK.md for what its per-view sources mean"
    )
    with grpc.insecure_channel(target) as channel, record.timed() as add:
        try:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout_s
            )
        except grpc.RpcError as exc:
            add("server health", "FAIL", f"{target}: {exc.code().name}", fix)
            return
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)
        add("server health", "ok" if status == "SERVING" else "FAIL", f"{target}: {status}", fix)
        stub = pb_grpc.ObservationServiceStub(channel)
        for symbol in symbols:
            try:
                answer = stub.GetObservation(
                    pb.GetObservationRequest(symbol=symbol), timeout=timeout_s
                )
            except grpc.RpcError as exc:
                add(f"server {symbol}", "FAIL", f"{exc.code().name}: {exc.details()}", fix)
                continue
            sources = ", ".join(f"{v.view}={_source(pb, v)}" for v in answer.views)
            fallback = [v for v in answer.views if v.source != pb.VALUE_SOURCE_ONLINE_STORE]
            entity_missing = all(
                v.fallback_reason == pb.FALLBACK_REASON_ENTITY_MISSING for v in answer.views
            )
            if entity_missing and keyed is not None and symbol in keyed:
                # Redis holds the key the repository's project writes; the server looks elsewhere.
                add(
                    f"server {symbol}",
                    "warn",
                    f"{len(answer.values)} values; the server finds no entry for {symbol} although "
                    f"Redis holds it under Feast project {contract.PROJECT!r}",
                    f"set the server's USDCOP_FEAST_PROJECT to {contract.PROJECT!r} (it reads "
                    "another project's keys)",
                )
                continue
            add(
                f"server {symbol}",
                "warn" if fallback else "ok",
                f"{len(answer.values)} values; {sources}",
                "views served from the fallback: see the Redis and view checks above"
                if fallback
                else "",
            )


def _source(pb: Any, view: Any) -> str:
    source = "online_store" if view.source == pb.VALUE_SOURCE_ONLINE_STORE else "fallback"
    freshness = "fresh" if view.freshness == pb.FRESHNESS_FRESH else "expired"
    if view.source != pb.VALUE_SOURCE_ONLINE_STORE:
        reason = pb.FallbackReason.Name(view.fallback_reason).removeprefix("FALLBACK_REASON_")
        return f"{source}/{freshness}({reason.lower()})"
    return f"{source}/{freshness}"
