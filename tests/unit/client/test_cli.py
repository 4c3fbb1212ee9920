"""The client CLI's conventions: --version, the exit codes in --help, usage errors stay 2."""

from __future__ import annotations

import pytest

from canonical.contract import CONTRACT_HASH
from client._cli import EXIT_CODES, EXIT_RPC_ERROR, main
from client._version import __version__


def test_version_names_the_release_and_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.split() == [
        "usdcop-observation",
        __version__,
        "(contract",
        "CTR-FEATURE-001",
        f"{CONTRACT_HASH[:12]})",
    ]


def test_help_documents_each_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert len(set(EXIT_CODES)) == 5 and EXIT_RPC_ERROR != 2
    for code, meaning in EXIT_CODES.items():
        assert f"  {code}  {meaning}" in out
    for flag in ("--ca-file", "--cert-file", "--key-file", "--token-file", "--push", "--tls"):
        assert flag in out


@pytest.mark.parametrize(
    "argv",
    [[], ["USDCOP", "--cert-file", "client.pem"], ["USDCOP", "--push", "half"]],
)
def test_usage_errors_exit_2_before_any_call(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    assert "usage: usdcop-observation" in capsys.readouterr().err
