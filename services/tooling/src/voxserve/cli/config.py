"""`voxserve config`: every setting with its default, by group."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(func=run)


def setting_groups() -> list[tuple[str, type, str]]:
    """(title, config class, variable prefix) of every group of settings."""
    from voxserve.families.pack import HomeConfig
    from voxserve.gateway.config import PREFIX as GW
    from voxserve.gateway.config import GatewayConfig
    from voxserve.generator.config import PREFIX as GEN
    from voxserve.generator.config import GeneratorConfig
    from voxserve.vocoder.config import PREFIX as VOC
    from voxserve.vocoder.config import VocoderConfig

    return [
        ("all", HomeConfig, "VOXSERVE_"),
        ("gateway", GatewayConfig, GW),
        ("generator", GeneratorConfig, GEN),
        ("vocoder", VocoderConfig, VOC),
    ]


def run(args: argparse.Namespace) -> int:
    from voxserve.common.config import describe

    for title, cls, prefix in setting_groups():
        print(f"# {title}")
        for name, default, doc in describe(cls, prefix):
            print(f"{name}={default}\t# {doc}")
    return 0
