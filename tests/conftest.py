"""Session-wide fixtures: one tiny pack and one running stack (one vLLM engine) for all tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from voxserve.families.pack import Pack
from voxserve.random_packs.writer import write_tiny_pack
from voxserve.stack import LocalStack, Ports
from voxserve.v1 import speech_pb2, speech_pb2_grpc

# `postgres` and `postgres_url`: a real PostgreSQL server for the session, a fresh database per test;
# `vocoder`, `gateway` and `reference`: real servers for voice enrolment (see the harness).
pytest_plugins = ["tests.postgres", "tests.gateway.enrolment_harness"]

PACK_SEED = 7
VOCODER_MAX_STREAM_TOKENS = 600


@pytest.fixture(scope="session", autouse=True)
def voice_store_of_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Gateways started by tests (in-process or as subprocesses) keep stored voices in the
    session's temporary directory, never in the user's own store."""
    setting = "VOXSERVE_GATEWAY_VOICE_STORE"
    before = os.environ.get(setting)
    os.environ[setting] = str(tmp_path_factory.mktemp("voice-store") / "voices.sqlite3")
    yield
    if before is None:
        os.environ.pop(setting, None)
    else:
        os.environ[setting] = before


@pytest.fixture(scope="session")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    return write_tiny_pack(tmp_path_factory.mktemp("pack"), seed=PACK_SEED)


@pytest.fixture(scope="session")
def stack(tiny_pack: Pack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    logs = tmp_path_factory.mktemp("logs")
    env = {
        "VOXSERVE_GENERATOR_MAX_NUM_SEQS": "16",
        "VOXSERVE_VOCODER_MAX_STREAM_TOKENS": str(VOCODER_MAX_STREAM_TOKENS),
    }
    yield from running_stack(LocalStack(tiny_pack.root, Ports.free(), log_dir=logs, env=env))


def listed_voices(stack: LocalStack) -> list[speech_pb2.Voice]:
    """The voices a running stack's gateway lists."""
    with grpc.insecure_channel(stack.ports.address("gateway")) as channel:
        speech = speech_pb2_grpc.SpeechStub(channel)
        return list(speech.ListVoices(speech_pb2.ListVoicesRequest(), timeout=10).voices)


def running_stack(local: LocalStack) -> Iterator[LocalStack]:
    """Start a stack for a fixture and stop it after; if it fails to start, print its logs."""
    try:
        local.start(timeout=420)
    except Exception:
        local.stop()
        for log in sorted(Path(local.log_dir or ".").glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-4000:]}")
        raise
    yield local
    local.stop()
