"""`voxserve-health`: ask a service's gRPC health once; exit 0 only when it is SERVING.

Every service image carries it for its container health check, so it belongs to what all
services share rather than to the development command line (which offers it as `voxserve health`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voxserve.common import tls


def open_channel(
    address: str, credentials: grpc.ChannelCredentials | None = None, server_name: str = ""
) -> grpc.Channel:
    """A blocking channel: plaintext, or TLS with `credentials` (checking the server's certificate
    for `server_name` instead of the address's host when set)."""
    if credentials is None:
        return grpc.insecure_channel(address)
    return grpc.secure_channel(address, credentials, options=tls.channel_options(server_name))


def health_status(
    channel: grpc.Channel, timeout: float, metadata: Sequence[tuple[str, str]] = (), service: str = ""
) -> int:
    """One check on the standard health service: the reply's status (raises `grpc.RpcError`)."""
    request = health_pb2.HealthCheckRequest(service=service)
    reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout, metadata=tuple(metadata))
    return int(reply.status)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default="127.0.0.1:50051", help="the service's host:port")
    parser.add_argument("--service", default="", help="health service name; empty: the whole server")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    parser.add_argument("--ca", type=Path, default=None, help="CA certificate (PEM): check over TLS")
    parser.add_argument("--cert", type=Path, default=None, help="client certificate (PEM) for mutual TLS")
    parser.add_argument("--key", type=Path, default=None, help="private key (PEM) of --cert")
    parser.add_argument("--server-name", default="", help="name to check in the server's certificate")


def probe(args: argparse.Namespace, prog: str) -> int:
    if (args.cert is None) != (args.key is None) or (args.cert is not None and args.ca is None):
        print(f"{prog}: --cert and --key go together, and need --ca", file=sys.stderr)
        return 2
    credentials = tls.channel_credentials(args.ca, args.cert, args.key)
    try:
        with open_channel(args.address, credentials, args.server_name) as channel:
            status = health_status(channel, args.timeout, service=args.service)
    except grpc.RpcError as exc:
        print(f"{args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    print(f"{args.address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
    return 0 if status == health_pb2.HealthCheckResponse.SERVING else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voxserve-health", description=__doc__)
    add_arguments(parser)
    return probe(parser.parse_args(argv), "voxserve-health")


if __name__ == "__main__":
    sys.exit(main())
