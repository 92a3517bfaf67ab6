"""`load_config`: typed settings from an explicit environment mapping, and `describe` rows."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest

from voxserve.common.config import ConfigError, describe, load_config, setting
from voxserve.gateway.config import PREFIX as GATEWAY_PREFIX
from voxserve.gateway.config import GatewayConfig
from voxserve.generator.config import PREFIX as GENERATOR_PREFIX
from voxserve.generator.config import GeneratorConfig
from voxserve.vocoder.config import PREFIX as VOCODER_PREFIX
from voxserve.vocoder.config import VocoderConfig

P = "T_"


@dataclass(frozen=True)
class Sample:
    count: int = setting(3, "an int")
    ratio: float = setting(0.5, "a float")
    flag: bool = setting(False, "a bool")
    enabled: bool = setting(True, "a bool that defaults to true")
    name: str = setting("x", "a str")
    home: Path = setting(Path("/default"), "a path")
    maybe: Path | None = setting(None, "an optional path")
    tags: tuple[str, ...] = setting(("a", "b"), "comma-separated strings")


SERVICE_CONFIGS = [
    (GatewayConfig, GATEWAY_PREFIX),
    (GeneratorConfig, GENERATOR_PREFIX),
    (VocoderConfig, VOCODER_PREFIX),
]


def test_empty_environment_gives_defaults() -> None:
    assert load_config(Sample, P, environ={}) == Sample()


def test_variables_fill_every_type() -> None:
    env = {
        "T_COUNT": "42",
        "T_RATIO": "1.25",
        "T_FLAG": "true",
        "T_NAME": "hello",
        "T_HOME": "/srv/data",
        "T_MAYBE": "/opt/pack",
        "T_TAGS": "x, y ,z",
    }
    cfg = load_config(Sample, P, environ=env)
    assert cfg.count == 42 and isinstance(cfg.count, int)
    assert cfg.ratio == 1.25
    assert cfg.flag is True
    assert cfg.enabled is True
    assert cfg.name == "hello"
    assert cfg.home == Path("/srv/data")
    assert cfg.maybe == Path("/opt/pack")
    assert cfg.tags == ("x", "y", "z")


def test_variables_of_other_prefixes_are_ignored() -> None:
    assert load_config(Sample, P, environ={"OTHER_COUNT": "9", "COUNT": "9"}).count == 3


@pytest.mark.parametrize("raw", ["1", "true", "yes", "on", "TRUE", " Yes ", "On"])
def test_bool_true_spellings(raw: str) -> None:
    assert load_config(Sample, P, environ={"T_FLAG": raw}).flag is True


@pytest.mark.parametrize("raw", ["0", "false", "no", "off", "FALSE", " No ", "Off"])
def test_bool_false_spellings(raw: str) -> None:
    assert load_config(Sample, P, environ={"T_ENABLED": raw}).enabled is False


def test_path_expands_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = load_config(Sample, P, environ={"T_HOME": "~/packs", "T_MAYBE": "~/x"})
    assert cfg.home == tmp_path / "packs"
    assert cfg.maybe == tmp_path / "x"


def test_empty_optional_path_means_none() -> None:
    cfg = load_config(Sample, P, environ={"T_MAYBE": ""}, maybe=None)
    assert cfg.maybe is None


def test_empty_tuple_variable_gives_empty_tuple() -> None:
    assert load_config(Sample, P, environ={"T_TAGS": ""}).tags == ()
    assert load_config(Sample, P, environ={"T_TAGS": " , ,"}).tags == ()


@pytest.mark.parametrize(
    ("var", "raw"),
    [("T_COUNT", "many"), ("T_COUNT", "1.5"), ("T_RATIO", "half"), ("T_FLAG", "maybe"), ("T_FLAG", "")],
)
def test_bad_value_raises_config_error_naming_variable_and_value(var: str, raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(Sample, P, environ={var: raw})
    assert var in str(info.value)
    assert repr(raw) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unsupported_type_raises_config_error() -> None:
    @dataclass(frozen=True)
    class Odd:
        data: bytes = setting(b"", "bytes are not supported")

    assert load_config(Odd, P, environ={}) == Odd()
    with pytest.raises(ConfigError, match="T_DATA"):
        load_config(Odd, P, environ={"T_DATA": "abc"})


def test_overrides_beat_environment() -> None:
    cfg = load_config(Sample, P, environ={"T_COUNT": "42", "T_NAME": "env"}, count=7)
    assert cfg.count == 7
    assert cfg.name == "env"


def test_none_overrides_are_ignored() -> None:
    cfg = load_config(Sample, P, environ={"T_COUNT": "42"}, count=None, name=None)
    assert cfg.count == 42
    assert cfg.name == "x"


def test_real_service_configs_read_their_prefix() -> None:
    gw = load_config(GatewayConfig, GATEWAY_PREFIX, environ={"VOXSERVE_GATEWAY_PORT": "6000"})
    assert gw.port == 6000
    assert gw.voices_file is None
    gen = load_config(GeneratorConfig, GENERATOR_PREFIX, environ={"VOXSERVE_GENERATOR_ENFORCE_EAGER": "yes"})
    assert gen.enforce_eager is True
    voc = load_config(VocoderConfig, VOCODER_PREFIX, environ={"VOXSERVE_VOCODER_BATCHING": "off"})
    assert voc.batching is False


def test_describe_rows_for_sample() -> None:
    rows = describe(Sample, P)
    assert rows[0] == ("T_COUNT", "3", "an int")
    assert ("T_MAYBE", "", "an optional path") in rows
    assert ("T_TAGS", "a,b", "comma-separated strings") in rows


@pytest.mark.parametrize(("cls", "prefix"), SERVICE_CONFIGS)
def test_describe_covers_every_field_with_a_doc(cls: type, prefix: str) -> None:
    rows = describe(cls, prefix)
    fields = dataclasses.fields(cls)
    assert [name for name, _, _ in rows] == [prefix + f.name.upper() for f in fields]
    defaults = cls()
    for (name, default, doc), field in zip(rows, fields, strict=True):
        assert name.startswith(prefix)
        assert doc.strip(), f"{name} has no doc"
        value = getattr(defaults, field.name)
        assert default == ("" if value is None else str(value))


@pytest.mark.parametrize(("cls", "prefix"), SERVICE_CONFIGS)
def test_describe_defaults_round_trip_through_load_config(cls: type, prefix: str) -> None:
    """Every default `describe` prints is a value its variable accepts and reproduces."""
    env = {name: default for name, default, _ in describe(cls, prefix)}
    assert load_config(cls, prefix, environ=env) == cls()
