"""uvicorn on the running event loop (the gRPC server's): started after the gRPC port is bound,
stopped with the same grace on SIGTERM, which the shared bootstrap alone handles."""

from __future__ import annotations

import asyncio
import math
import ssl
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from voxserve.common.config import ConfigError

# The websockets library's current protocol implementation (uvicorn's "auto" picks the legacy one,
# which that library deprecates).
HTTP_WS_PROTOCOL = "websockets-sansio"


class HttpServer:
    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        *,
        grace_seconds: float,
        setting: str,
        cert_file: Path | None = None,
        key_file: Path | None = None,
        client_ca_file: Path | None = None,
    ) -> None:
        # The gateway's TLS settings cover both of its APIs: with a certificate the HTTP port
        # serves HTTPS, and with a client CA it wants client certificates as the gRPC port does.
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,  # structlog's handlers stay; uvicorn's own access log is off
            access_log=False,
            timeout_graceful_shutdown=max(1, round(grace_seconds)),
            ws=HTTP_WS_PROTOCOL,
            ws_max_size=1024 * 1024,
            ssl_certfile=cert_file,
            ssl_keyfile=key_file,
            ssl_ca_certs=client_ca_file,
            ssl_cert_reqs=ssl.CERT_REQUIRED if client_ca_file is not None else ssl.CERT_NONE,
        )
        self.setting = setting
        self.grace_seconds = grace_seconds
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
        """Let open responses finish within the grace, then stop accepting and close.

        The listener stays open meanwhile, so probes see /readyz's 503 and new API calls get a 503
        (the app refuses them while draining) instead of a refused connection, which a liveness
        probe on /healthz would take for a dead process."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.grace_seconds
        # Requests that arrive meanwhile (probes, refused calls) are waited for in the next round.
        while (running := set(self.server.server_state.tasks)) and (left := deadline - loop.time()) > 0:
            await asyncio.wait(running, timeout=left)
        self.config.timeout_graceful_shutdown = math.ceil(max(0.0, deadline - loop.time()))
        self.server.should_exit = True
        if self._main is not None:
            await self._main
            await self.server.shutdown()
