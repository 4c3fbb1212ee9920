"""The two offline stores side by side: the same history materialized from parquet files and
from PostgreSQL gives byte-identical Redis hashes and bit-identical observations through the
gRPC server; training sets from either store equal the canonical builder's batch output bit for
bit (float32), and no value from after a row's timestamp can reach it (point in time)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from canonical import contract
from canonical.offline_tables import build_offline_tables, offline_table_path
from core.clock import ManualClock
from devstack.embedded_postgres import EmbeddedPostgres
from devstack.embedded_redis import EmbeddedRedis
from market_data import files
from offline_store.connection import PostgresAddress
from offline_store.factory import open_store
from offline_store.load import upsert_view_table
from pipeline.__main__ import main as pipeline_main
from pipeline.point_in_time import join
from pipeline.run import PipelineResult, run_pipeline
from pipeline.training_set import build_training_set
from tests.conftest import new_database
from tests.integration.feast._support import (
    FRIDAY_CLOSE,
    HISTORY_DAYS,
    RepoCopy,
    address_of,
    copy_feature_repo,
    dump_redis,
)
from tests.integration.server.conftest import running, server_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

STORES = ("file", "postgres")
NOW_NS = int((FRIDAY_CLOSE + timedelta(minutes=1)).timestamp()) * 10**9


@dataclass(frozen=True)
class Materialized:
    kind: str
    repo: RepoCopy
    redis: EmbeddedRedis
    postgres: PostgresAddress | None
    result: PipelineResult


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: EmbeddedPostgres
) -> Iterator[dict[str, Materialized]]:
    with ExitStack() as stack:
        done = {}
        for kind in STORES:
            repo = copy_feature_repo(tmp_path_factory.mktemp(f"store-{kind}"))
            redis = stack.enter_context(EmbeddedRedis())
            postgres = new_database(postgres_server, kind) if kind == "postgres" else None
            result = run_pipeline(
                repo.repo_dir,
                repo.data_dir,
                FRIDAY_CLOSE,
                address_of(redis),
                days=HISTORY_DAYS,
                offline=open_store(repo.data_dir, postgres),
            )
            done[kind] = Materialized(kind, repo, redis, postgres, result)
        yield done


def _batch(repo: RepoCopy) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """The canonical builder's batch output for USDCOP: (N, 15) float32, event times."""
    bars = files.read_bars(files.bars_path(repo.data_dir))
    macro = files.read_macro(files.macro_path(repo.data_dir))
    tables = build_offline_tables(bars, macro, FRIDAY_CLOSE)
    values = np.hstack([tables[v.name][list(v.features)].to_numpy() for v in contract.VIEWS])
    times = pd.DatetimeIndex(tables[contract.VIEWS[0].name]["event_timestamp"])
    return values.astype(np.float32), times


def test_postgres_store_really_holds_the_data(stores: dict[str, Materialized]) -> None:
    pg = stores["postgres"]
    assert pg.result.store is not None
    assert pg.result.store.config.offline_store.type == "postgres"
    assert pg.postgres is not None
    with pg.postgres.connect() as conn:
        counts = {
            v.name: conn.execute(f"SELECT count(*) FROM {v.name}").fetchone()
            for v in contract.VIEWS
        }
    assert set(counts.values()) == {(pg.result.offline.rows,)}
    assert pg.result.offline.rows > 0
    assert not offline_table_path(pg.repo.data_dir, contract.TECHNICAL.name).exists()
    file_store = stores["file"].result.store
    assert file_store is not None and file_store.config.offline_store.type == "file"


def test_materialized_hashes_are_byte_identical(stores: dict[str, Materialized]) -> None:
    from_files = dump_redis(stores["file"].redis)
    from_postgres = dump_redis(stores["postgres"].redis)
    assert len(from_files) == 1
    assert from_postgres == from_files


def test_grpc_observations_are_bit_identical(stores: dict[str, Materialized]) -> None:
    async def observe(store: Materialized) -> tuple[np.ndarray, list[int]]:
        config = server_config(store.redis.port, store.repo.data_dir)
        async with running(config, ManualClock(wall_ns=NOW_NS)) as app:
            reply = await app.get()
        return np.array(reply.values, dtype=np.float32), [v.source for v in reply.views]

    served = {kind: asyncio.run(observe(store)) for kind, store in stores.items()}
    values_file, sources_file = served["file"]
    values_pg, sources_pg = served["postgres"]
    assert sources_file == sources_pg == [1, 1, 1]  # VALUE_SOURCE_ONLINE_STORE, every view
    assert np.isfinite(values_file).all()
    assert values_pg.view(np.uint32).tolist() == values_file.view(np.uint32).tolist()


@pytest.mark.parametrize("kind", STORES)
def test_training_set_equals_the_batch_builder_bit_for_bit(
    stores: dict[str, Materialized], kind: str
) -> None:
    store = stores[kind]
    expected, times = _batch(store.repo)
    assert store.result.store is not None
    training = build_training_set(store.result.store, ["USDCOP"], times, chunk_rows=4_000)
    assert training.dropped == 0
    assert training.values.shape == expected.shape == (len(times), contract.N_FEATURES)
    assert training.values.dtype == np.float32
    assert training.timestamps_ns.tolist() == times.asi8.tolist()
    assert np.array_equal(training.values.view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize("kind", STORES)
def test_a_macro_row_from_the_future_never_reaches_an_earlier_row(
    stores: dict[str, Materialized], kind: str
) -> None:
    store = stores[kind]
    feast_store = store.result.store
    assert feast_store is not None
    expected, times = _batch(store.repo)
    row = len(times) // 2
    moment = times[row]
    macro_slice = contract.view_slice(contract.MACRO)
    marker = np.float32(12345.5)
    future = pd.DataFrame(
        {
            "symbol": ["USDCOP"],
            "event_timestamp": [moment + pd.Timedelta(minutes=1)],
            "created": [moment + pd.Timedelta(minutes=1)],
            **{name: np.array([marker], dtype=np.float32) for name in contract.MACRO.features},
        }
    )
    future["event_timestamp"] = future["event_timestamp"].astype("datetime64[ns, UTC]")
    future["created"] = future["created"].astype("datetime64[ns, UTC]")
    restore = _add_macro_row(store, future)
    try:
        asked = pd.DatetimeIndex(
            [moment, moment + pd.Timedelta(seconds=59), moment + pd.Timedelta(minutes=2)]
        )
        training = build_training_set(feast_store, ["USDCOP"], asked)
    finally:
        restore()
    assert training.dropped == 0
    at, just_before, after = training.values
    # At t and one second before the future row: the row of t, never the marker.
    assert at.view(np.uint32).tolist() == expected[row].view(np.uint32).tolist()
    assert just_before[macro_slice].tolist() == expected[row][macro_slice].tolist()
    assert marker not in at and marker not in just_before
    # Once its time has come, the same row is visible: the join really reads it.
    assert after[macro_slice].tolist() == [float(marker)] * len(contract.MACRO.features)


def _add_macro_row(store: Materialized, row: pd.DataFrame) -> object:
    """Insert ``row`` into the store's macro_features table; returns a function undoing it."""
    if store.postgres is not None:
        address = store.postgres
        with address.connect() as conn:
            upsert_view_table(conn, contract.MACRO, row)

        def undo_pg() -> None:
            with address.connect() as conn:
                conn.execute(
                    "DELETE FROM macro_features WHERE event_timestamp = %s",
                    (row["event_timestamp"][0].to_pydatetime(),),
                )

        return undo_pg
    path = offline_table_path(store.repo.data_dir, contract.MACRO.name)
    original = path.read_bytes()
    table = pd.read_parquet(path)
    pd.concat([table, row], ignore_index=True).to_parquet(path, index=False)

    def undo_file() -> None:
        path.write_bytes(original)

    return undo_file


def test_training_set_command_writes_float32_rows_and_timestamps(
    stores: dict[str, Materialized], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = stores["file"]
    expected, times = _batch(store.repo)
    monkeypatch.delenv("FEAST_OFFLINE_STORE_TYPE", raising=False)
    monkeypatch.delenv("FEAST_REDIS_HOST", raising=False)
    day = times[times.normalize() == times[-1].normalize()]
    out = tmp_path / "train.npz"
    code = pipeline_main(
        [
            "training-set",
            "--repo-dir", str(store.repo.repo_dir),
            "--days", str(HISTORY_DAYS),
            "--start", day[0].isoformat(),
            "--end", (day[-1] + pd.Timedelta(hours=3)).isoformat(),
            "--every", "5m",
            "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    saved = np.load(out)
    # The session's bars, then one more hour while the 1 h state view is still fresh.
    assert saved["values"].dtype == np.float32
    assert saved["values"].shape == (len(day) + 12, contract.N_FEATURES)
    assert saved["feature_names"].tolist() == list(contract.FEATURE_NAMES)
    assert saved["timestamps_ns"][: len(day)].tolist() == day.asi8.tolist()
    first = times.get_loc(day[0])
    assert np.array_equal(
        saved["values"][: len(day)].view(np.uint32),
        expected[first : first + len(day)].view(np.uint32),
    )
    # After the close each row repeats the last bar's values (point in time, within TTLs).
    assert (saved["values"][len(day) :] == expected[first + len(day) - 1]).all()


def _sampled_windows(times: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Grid times that cover the join's edges: the first rows of history (and before them),
    a weekend gap, the hour after a close (the state view's 1 h TTL expires inside it, the
    24 h views later), a day's TTL straddle, and off-bar instants (a second before and after)."""
    step = pd.Timedelta(minutes=5)
    first, last = times[0], times[-1]
    windows = [
        pd.date_range(first - 3 * step, first + 6 * step, freq=step),
        pd.date_range(last - step, last + pd.Timedelta(hours=26), freq=pd.Timedelta(minutes=10)),
    ]
    days = times.normalize().unique()
    for day in days[1:]:
        # A Monday's open after the weekend, and the evening before.
        if day.dayofweek == 0:
            opening = times[times.normalize() == day][0]
            windows.append(pd.date_range(opening - pd.Timedelta(hours=70), opening, freq="1h"))
            windows.append(pd.date_range(opening - step, opening + 3 * step, freq=step))
            break
    middle = times[len(times) // 2]
    windows.append(
        pd.DatetimeIndex(
            [middle - pd.Timedelta(seconds=1), middle, middle + pd.Timedelta(seconds=1)]
        )
    )
    close = times[times.normalize() == times[len(times) // 2].normalize()][-1]
    windows.append(
        pd.DatetimeIndex(
            [
                close + pd.Timedelta(hours=1) + d
                for d in (-pd.Timedelta(seconds=1), pd.Timedelta(0), pd.Timedelta(seconds=1))
            ]
            + [
                close + pd.Timedelta(hours=24) + d
                for d in (-pd.Timedelta(seconds=1), pd.Timedelta(0), pd.Timedelta(seconds=1))
            ]
        )
    )
    return pd.DatetimeIndex(sorted(set().union(*[set(w) for w in windows])))


@pytest.mark.parametrize("kind", STORES)
def test_our_join_equals_feasts_on_sampled_windows(
    stores: dict[str, Materialized], kind: str
) -> None:
    store = stores[kind]
    assert store.result.store is not None
    _, times = _batch(store.repo)
    asked = _sampled_windows(times)
    feast = build_training_set(store.result.store, ["USDCOP"], asked)
    tables = open_store(store.repo.data_dir, store.postgres).read_feature_tables(["USDCOP"])
    ours = join(tables, ["USDCOP"], asked.as_unit("ns").asi8)
    assert feast.dropped > 0 and len(feast.values) > 0  # the windows hit both cases
    assert ours.dropped == feast.dropped
    assert ours.timestamps_ns.tolist() == feast.timestamps_ns.tolist()
    assert ours.symbols.tolist() == feast.symbols.tolist()
    assert np.array_equal(ours.values.view(np.uint32), feast.values.view(np.uint32))


@pytest.mark.parametrize("kind", STORES)
def test_our_join_sees_a_macro_print_only_once_its_time_has_come(
    stores: dict[str, Materialized], kind: str
) -> None:
    store = stores[kind]
    feast_store = store.result.store
    assert feast_store is not None
    _, times = _batch(store.repo)
    moment = times[len(times) // 3]
    marker = np.float32(23456.5)
    future = pd.DataFrame(
        {
            "symbol": ["USDCOP"],
            "event_timestamp": [moment + pd.Timedelta(minutes=1)],
            "created": [moment + pd.Timedelta(minutes=1)],
            **{name: np.array([marker], dtype=np.float32) for name in contract.MACRO.features},
        }
    )
    future["event_timestamp"] = future["event_timestamp"].astype("datetime64[ns, UTC]")
    future["created"] = future["created"].astype("datetime64[ns, UTC]")
    asked = pd.DatetimeIndex([moment, moment + pd.Timedelta(minutes=2)])
    restore = _add_macro_row(store, future)
    try:
        feast = build_training_set(feast_store, ["USDCOP"], asked)
        tables = open_store(store.repo.data_dir, store.postgres).read_feature_tables(["USDCOP"])
    finally:
        restore()
    ours = join(tables, ["USDCOP"], asked.as_unit("ns").asi8)
    assert np.array_equal(ours.values.view(np.uint32), feast.values.view(np.uint32))
    macro = contract.view_slice(contract.MACRO)
    assert marker not in ours.values[0]
    assert ours.values[1][macro].tolist() == [float(marker)] * len(contract.MACRO.features)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start", "2026-01-09T10:00:00+00:00", "--end", "2026-01-08T10:00:00+00:00"], "before"),
        (
            ["--start", "2020-01-06T13:00:00+00:00", "--end", "2020-01-06T18:00:00+00:00"],
            "no complete row",
        ),
        (["--symbols", "EURUSD"], "no complete row of EURUSD"),
    ],
)
def test_a_bad_range_ends_with_one_line_and_no_file(
    stores: dict[str, Materialized],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    store = stores["file"]
    _, times = _batch(store.repo)
    monkeypatch.delenv("FEAST_OFFLINE_STORE_TYPE", raising=False)
    out = tmp_path / "train.npz"
    args = ["training-set", "--repo-dir", str(store.repo.repo_dir), "--days", str(HISTORY_DAYS)]
    window = ["--start", times[0].isoformat(), "--end", times[-1].isoformat()]
    code = pipeline_main([*args, *window, *extra, "--every", "5m", "--out", str(out)])
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert list(tmp_path.iterdir()) == []
