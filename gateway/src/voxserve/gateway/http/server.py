"""uvicorn on the running event loop (the gRPC server's): started after the gRPC port is bound,
stopped with the same grace on SIGTERM, which the shared bootstrap alone handles."""

from __future__ import annotations

import asyncio

import uvicorn
from starlette.types import ASGIApp

from voxserve.common.config import ConfigError


class HttpServer:
    def __init__(self, app: ASGIApp, host: str, port: int, *, grace_seconds: float, setting: str) -> None:
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,  # structlog's handlers stay; uvicorn's own access log is off
            access_log=False,
            timeout_graceful_shutdown=max(1, round(grace_seconds)),
            ws_max_size=1024 * 1024,
        )
        self.setting = setting
        self.server = uvicorn.Server(self.config)
        self._main: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (the configured one, or the one the system chose for 0 in tests)."""
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.config.load()
        self.server.lifespan = self.config.lifespan_class(self.config)
        try:
            await self.server.startup()
        except SystemExit as exc:  # uvicorn exits when it cannot bind
            raise ConfigError(
                f"{self.setting}: the HTTP API cannot listen on {self.config.host}:{self.config.port}"
            ) from exc
        self._main = asyncio.create_task(self.server.main_loop())

    async def stop(self) -> None:
        """Stop accepting, let open responses finish within the grace, then close."""
        self.server.should_exit = True
        if self._main is not None:
            await self._main
            await self.server.shutdown()
