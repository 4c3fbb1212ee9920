"""A Feast repository materialized once per session (apply costs seconds): a private copy of
feature_repo/, two symbols of generated history ending on a Friday at 18:00 UTC, and a
redis-server of its own (other areas' tests write USDCOP keys into the shared one)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from devstack.embedded_redis import EmbeddedRedis
from pipeline.run import PipelineResult, run_pipeline
from tests.integration.feast._support import (
    FRIDAY_CLOSE,
    HISTORY_DAYS,
    RepoCopy,
    address_of,
    copy_feature_repo,
)

SYMBOLS = ("USDCOP", "USDMXN")


@dataclass(frozen=True)
class Materialized:
    repo: RepoCopy
    redis: EmbeddedRedis
    result: PipelineResult

    @property
    def store(self) -> Any:
        return self.result.store


@pytest.fixture(scope="session")
def feast_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="session")
def materialized(
    tmp_path_factory: pytest.TempPathFactory, feast_redis: EmbeddedRedis
) -> Materialized:
    repo = copy_feature_repo(tmp_path_factory.mktemp("materialized"))
    result = run_pipeline(
        repo.repo_dir,
        repo.data_dir,
        FRIDAY_CLOSE,
        address_of(feast_redis),
        days=HISTORY_DAYS,
        symbols=SYMBOLS,
    )
    return Materialized(repo=repo, redis=feast_redis, result=result)
