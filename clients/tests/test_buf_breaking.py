"""``buf breaking`` against the committed v1 release image catches what breaks generated
clients, and lets additions through.

What enters: the proto module (``proto/``), its ``buf.yaml`` and ``v1-release.binpb`` (the
proto as released at 0b456cd, built with ``buf build``), and the buf binary that
``make clients`` installs from npm. Each test edits a copy of the proto and runs the real buf.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "tools" / "buf" / "node_modules" / ".bin" / "buf"
PROTO_FILE = Path("usdcop/observation/v1/observation.proto")
RELEASE_IMAGE = ROOT / "proto" / "v1-release.binpb"


@pytest.fixture
def proto_copy(tmp_path: Path) -> Path:
    if not BUF.exists():
        pytest.fail(f"{BUF} is missing: run 'make clients' first")
    module = tmp_path / "proto"
    (module / PROTO_FILE.parent).mkdir(parents=True)
    shutil.copy(ROOT / "proto" / "buf.yaml", module / "buf.yaml")
    shutil.copy(ROOT / "proto" / PROTO_FILE, module / PROTO_FILE)
    return module


def edit(module: Path, old: str, new: str) -> None:
    path = module / PROTO_FILE
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in the proto"
    path.write_text(text.replace(old, new))


def breaking(module: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "breaking", "--against", str(RELEASE_IMAGE)],
        cwd=module,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_proto_as_it_is_passes(proto_copy: Path) -> None:
    result = breaking(proto_copy)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_renumbered_field_fails(proto_copy: Path) -> None:
    edit(
        proto_copy,
        "repeated float values = 2 [packed = true];",
        "repeated float values = 8 [packed = true];",
    )
    result = breaking(proto_copy)
    assert result.returncode != 0
    assert (
        'Previously present field "2" with name "values" on message "Observation" was deleted'
        in (result.stdout)
    ), result.stdout + result.stderr


def test_a_renamed_response_type_fails(proto_copy: Path) -> None:
    # Why buf.yaml keeps `Observation` despite RPC_RESPONSE_STANDARD_NAME.
    edit(proto_copy, "returns (ObservationContract);", "returns (DescribeObservationResponse);")
    edit(proto_copy, "message ObservationContract {", "message DescribeObservationResponse {")
    result = breaking(proto_copy)
    assert result.returncode != 0
    assert 'changed response type from "usdcop.observation.v1.ObservationContract"' in result.stdout


def test_an_added_field_and_rpc_pass(proto_copy: Path) -> None:
    edit(proto_copy, "  bool from_cache = 6;", "  bool from_cache = 6;\n  string note = 8;")
    edit(
        proto_copy,
        "service ObservationService {",
        "service ObservationService {\n"
        "  rpc Ping(DescribeObservationRequest) returns (PushStateResponse);",
    )
    result = breaking(proto_copy)
    assert result.returncode == 0, result.stdout + result.stderr
