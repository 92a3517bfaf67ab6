"""`voxserve-vocoder` (or `python -m voxserve.vocoder`): the vocoder service, configured by its
VOXSERVE_VOCODER_* variables."""

import asyncio

from voxserve.vocoder import app, config


def main() -> None:
    asyncio.run(app.run(config.load()))


if __name__ == "__main__":
    main()
