"""The generated code (services/shared/src/voxserve/v1) matches the protos; every field and rpc has docs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ["speech.proto", "generator.proto", "vocoder.proto"]
PROTO_PATHS = [f"protos/voxserve/v1/{name}" for name in PROTOS]
GENERATED = ROOT / "services" / "shared" / "src" / "voxserve" / "v1"
FIELD = re.compile(r"^(optional |repeated )?[\w.]+ \w+ = \d+;")


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    # The Makefile's `protos` command, into a scratch directory.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iprotos",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            *PROTO_PATHS,
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    fresh = sorted(p.name for p in (tmp_path / "voxserve" / "v1").iterdir())
    expected = sorted(f"{n.removesuffix('.proto')}_pb2{ext}" for n in PROTOS for ext in (".py", ".pyi"))
    expected += sorted(f"{n.removesuffix('.proto')}_pb2_grpc.py" for n in PROTOS)
    assert fresh == sorted(expected)
    stale = [
        name
        for name in fresh
        if (tmp_path / "voxserve" / "v1" / name).read_bytes() != (GENERATED / name).read_bytes()
    ]
    assert not stale, f"regenerate with `make protos`: {stale} differ from the .proto files"


def undocumented(text: str) -> list[str]:
    """Field and rpc lines not preceded by a `//` comment line and carrying no trailing one."""
    missing = []
    previous = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        if (stripped.startswith("rpc ") or FIELD.match(stripped)) and not (
            previous.startswith("//") or "//" in stripped
        ):
            missing.append(f"{number}: {stripped}")
        previous = stripped
    return missing


def test_undocumented_finds_bare_fields_and_rpcs() -> None:
    text = """
message M {
  // documented
  int32 a = 1;
  string b = 2;  // trailing comment
  repeated Foo.Bar c = 3;

  optional int64 d = 4;
  enum E {
    E_UNSPECIFIED = 0;
  }
}
service S {
  rpc Go(M) returns (M);
}
"""
    assert undocumented(text) == [
        "6: repeated Foo.Bar c = 3;",
        "8: optional int64 d = 4;",
        "14: rpc Go(M) returns (M);",
    ]


@pytest.mark.parametrize("name", PROTOS)
def test_every_field_and_rpc_is_documented(name: str) -> None:
    text = (ROOT / "protos" / "voxserve" / "v1" / name).read_text()
    assert any(FIELD.match(line.strip()) for line in text.splitlines())  # the parser sees the fields
    assert undocumented(text) == []
