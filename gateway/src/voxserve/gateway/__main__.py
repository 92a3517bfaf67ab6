"""`voxserve-gateway` (or `python -m voxserve.gateway`): the gateway service, configured by its
VOXSERVE_GATEWAY_* variables."""

import asyncio

from voxserve.gateway import app, config


def main() -> None:
    asyncio.run(app.run(config.load()))


if __name__ == "__main__":
    main()
