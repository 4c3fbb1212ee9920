"""The doctor's offline-store check against a real PostgreSQL: ok once L0/L1 are loaded, FAIL
with the fix when the tables are empty, when the server does not answer, or when no address is
configured."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from devstack.embedded_redis import free_port
from market_data import generator
from offline_store.connection import PostgresAddress
from offline_store.postgres_tables import sync_postgres
from offline_store.schema import apply_schema
from pipeline.doctor import Check, run_doctor
from pipeline.settings import PipelineSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NAME = "offline store (postgres)"


def _offline_check(settings: PipelineSettings) -> Check:
    # No Redis and no server here: only the offline store's line is looked at.
    report = run_doctor(settings, target=f"127.0.0.1:{free_port()}", grpc_timeout_s=0.2)
    (check,) = [c for c in report.checks if c.name == NAME]
    return check


def _settings(tmp_path, address: PostgresAddress | None) -> PipelineSettings:
    return PipelineSettings(data_dir=tmp_path, offline_store="postgres", postgres=address)


def test_loaded_store_passes_and_empty_tables_fail(tmp_path, postgres_db: PostgresAddress) -> None:
    with postgres_db.connect() as conn:
        apply_schema(conn)
    empty = _offline_check(_settings(tmp_path, postgres_db))
    assert empty.verdict == "FAIL"
    assert "empty: usdcop_5m, macro_daily, technical_features" in empty.detail
    assert "python -m pipeline run" in empty.fix

    start, end = date(2025, 11, 3), date(2025, 11, 14)
    bars = generator.generate_bars(("USDCOP",), start, end, 5)
    macro = generator.generate_macro(generator.macro_start_for(start), end, 5)
    sync_postgres(postgres_db, bars, macro, datetime(2025, 11, 14, 18, tzinfo=UTC))
    loaded = _offline_check(_settings(tmp_path, postgres_db))
    assert loaded.verdict == "ok", loaded
    assert f"usdcop_5m {len(bars)}" in loaded.detail
    assert postgres_db.password not in loaded.detail


def test_unreachable_or_unconfigured_store_fails_with_the_fix(tmp_path) -> None:
    nobody = PostgresAddress(host="127.0.0.1", port=free_port(), password="s3cret-pg")
    down = _offline_check(_settings(tmp_path, nobody))
    assert down.verdict == "FAIL"
    assert f"pg_isready -h 127.0.0.1 -p {nobody.port}" in down.fix
    assert "s3cret-pg" not in down.detail + down.fix

    unset = _offline_check(_settings(tmp_path, None))
    assert unset.verdict == "FAIL"
    assert "POSTGRES_HOST is unset" in unset.detail


def test_address_repr_hides_the_password() -> None:
    address = dataclasses.replace(PostgresAddress(host="127.0.0.1"), password="s3cret-pg")
    assert "s3cret-pg" not in repr(address) + str(address)
