"""`voxserve-generator` (or `python -m voxserve.generator`): the generator service, configured by its
VOXSERVE_GENERATOR_* variables."""

import asyncio

from voxserve.generator import app, config


def main() -> None:
    asyncio.run(app.run(config.load()))


# vLLM spawns its engine workers; they re-import the main module, so start only under __main__.
if __name__ == "__main__":
    main()
