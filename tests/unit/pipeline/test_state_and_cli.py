"""The quick start's state file, the repository layout check and the CLI's settings."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from client._version import __version__
from online_store.address import RedisAddress
from pipeline.__main__ import build_parser, main, settings_from
from pipeline.quickstart import how_to_call
from pipeline.run import RepoLayoutError, check_repo_layout
from pipeline.state_file import (
    read_redis_state,
    remove_redis_state,
    state_file_path,
    write_redis_state,
)


def test_state_file_round_trip_is_private(tmp_path: Path) -> None:
    address = RedisAddress("127.0.0.1", 6390, password="pw", tls=True)
    path = write_redis_state(tmp_path, address)
    assert path == state_file_path(tmp_path) == tmp_path / "redis.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it may hold a password
    assert path.read_text().splitlines()[0] == "FEAST_REDIS_HOST=127.0.0.1"
    assert read_redis_state(tmp_path) == address
    remove_redis_state(tmp_path)
    assert read_redis_state(tmp_path) is None
    remove_redis_state(tmp_path)  # idempotent


def test_data_dir_must_be_the_repositorys_sibling(tmp_path: Path) -> None:
    check_repo_layout(tmp_path / "feature_repo", tmp_path / "data")
    with pytest.raises(RepoLayoutError, match=r"\.\./data"):
        check_repo_layout(tmp_path / "feature_repo", tmp_path / "elsewhere")


def test_repo_dir_flag_moves_the_data_dir_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("USDCOP_DATA_DIR", raising=False)
    monkeypatch.delenv("FEAST_REDIS_HOST", raising=False)
    args = build_parser().parse_args(
        ["up", "--repo-dir", str(tmp_path / "feature_repo"), "--port", "0", "--days", "30"]
    )
    settings = settings_from(args)
    assert settings.repo_dir == tmp_path / "feature_repo"
    assert settings.data_dir == tmp_path / "data"
    assert (settings.server_port, settings.history_days) == (0, 30)


def test_feast_passes_its_arguments_through() -> None:
    args = build_parser().parse_args(["feast", "materialize-incremental", "2026-01-09T18:00:00"])
    assert args.feast_args == ["materialize-incremental", "2026-01-09T18:00:00"]


def test_how_to_call_names_the_target_in_both_snippets() -> None:
    text = how_to_call("127.0.0.1:50051", "USDCOP")
    assert 'ObservationClient("127.0.0.1:50051")' in text
    assert (
        'grpcurl -plaintext -d \'{"symbol": "USDCOP"}\' 127.0.0.1:50051 '
        "usdcop.observation.v1.ObservationService/GetObservation"
    ) in text


@pytest.mark.parametrize("command", ["doctor", "run", "up", "check-contract", "apply"])
def test_without_a_feast_repository_every_command_asks_for_repo_dir(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What an installed package sees: feature_repo/ is not shipped beside site-packages.
    assert main([command, "--repo-dir", str(tmp_path / "feature_repo")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--repo-dir" in err and str(tmp_path) in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usdcop-pipeline {__version__} (contract ")
