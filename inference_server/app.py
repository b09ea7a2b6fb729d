"""Assembling and running the gRPC server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from inference_server import __version__
from inference_server.auth import TokenAuth
from inference_server.capabilities import CAPABILITIES
from inference_server.capability import ServerParts
from inference_server.config import Config
from inference_server.jobs.manager import JobManager
from inference_server.metrics import Metrics
from inference_server.services.artifacts import ArtifactsService
from inference_server.services.jobs import JobsService
from inference_server.services.server_info import ServerService
from inference_server.store.artifacts import ArtifactStore
from inference_server.store.jobs import JobStore
from keygrip.v1 import (
    artifacts_pb2,
    artifacts_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    server_pb2,
    server_pb2_grpc,
)

log = logging.getLogger("keygrip.server")

# The spine: services every server has, whatever its capabilities.
SPINE_SERVICE_NAMES = [
    jobs_pb2.DESCRIPTOR.services_by_name["Jobs"].full_name,
    artifacts_pb2.DESCRIPTOR.services_by_name["Artifacts"].full_name,
    server_pb2.DESCRIPTOR.services_by_name["Server"].full_name,
]
SERVICE_NAMES = [*SPINE_SERVICE_NAMES, *(cap.service_name for cap in CAPABILITIES)]


class KeygripServer:
    """The server's parts, started and stopped together."""

    def __init__(self, config: Config) -> None:
        config.validate()
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = Metrics()
        self.store = JobStore(config.data_dir / "jobs.sqlite3")
        self.artifacts = ArtifactStore(config.data_dir / "artifacts")
        self.manager = JobManager(config, self.store, self.artifacts, self.metrics)
        self.metrics.watch_workers(lambda: [(w.index, w.pid) for w in self.manager.workers if w.pid])
        self.server: grpc.aio.Server | None = None
        self.address = ""

    async def start(self) -> str:
        cfg = self.config
        options = [("grpc.max_receive_message_length", cfg.max_message_bytes),
                   ("grpc.max_send_message_length", cfg.max_message_bytes)]
        interceptors = [TokenAuth(cfg.token)] if cfg.token else []
        server = grpc.aio.server(interceptors=interceptors, options=options)
        jobs_pb2_grpc.add_JobsServicer_to_server(JobsService(self.manager), server)
        artifacts_pb2_grpc.add_ArtifactsServicer_to_server(ArtifactsService(cfg, self.artifacts), server)
        server_pb2_grpc.add_ServerServicer_to_server(ServerService(cfg, CAPABILITIES), server)
        parts = ServerParts(cfg, self.manager)
        for cap in CAPABILITIES:
            cap.add_service(server, parts)
        health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health, server)
        reflection.enable_server_reflection([*SERVICE_NAMES, reflection.SERVICE_NAME, "grpc.health.v1.Health"],
                                            server)
        self.address = self._bind(server)
        await self.manager.start()
        await server.start()
        if cfg.listen.startswith("unix:"):
            os.chmod(_socket_path(cfg.listen), 0o600)
        if cfg.metrics_listen:
            port = self.metrics.serve(cfg.metrics_listen)
            log.info("metrics listening", extra={"port": port})
        await health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.server = server
        return self.address

    def _bind(self, server: grpc.aio.Server) -> str:
        cfg = self.config
        if cfg.listen.startswith("unix:"):
            path = _socket_path(cfg.listen)
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            # Create the socket with mode 0600 from the start: chmod afterwards leaves a window.
            old = os.umask(0o177)
            try:
                server.add_insecure_port(f"unix:{path}")
            finally:
                os.umask(old)
            return f"unix://{path}"
        if cfg.tls_cert:
            creds = grpc.ssl_server_credentials([(Path(cfg.tls_key).read_bytes(), Path(cfg.tls_cert).read_bytes())])
            port = server.add_secure_port(cfg.listen, creds)
        else:
            port = server.add_insecure_port(cfg.listen)
        if port == 0:
            raise OSError(f"could not listen on {cfg.listen}: the address is in use or invalid")
        host = cfg.listen.rsplit(":", 1)[0]
        return f"{host}:{port}"

    async def stop(self, grace: float = 2.0) -> None:
        if self.server is not None:
            await self.server.stop(grace)
        await self.manager.stop()
        self.store.close()


def _socket_path(address: str) -> str:
    # unix:///abs/path and unix:/abs/path both name /abs/path; unix:rel names a relative path.
    rest = address[len("unix:"):]
    return "/" + rest.lstrip("/") if rest.startswith("/") else rest


async def serve(config: Config) -> None:
    """Run until SIGINT or SIGTERM, then stop gracefully."""
    app = KeygripServer(config)
    address = await app.start()
    log.info("listening", extra={"address": address, "version": __version__, "workers": config.workers})
    # One plain line on stdout: scripts and tests read the bound address (port 0 picks one).
    print(f"keygrip server {__version__} listening on {address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await app.stop()


def run(config: Config) -> int:
    try:
        asyncio.run(serve(config))
    except (ValueError, OSError) as exc:
        print(f"keygrip server: {exc}", file=sys.stderr)
        return 2
    return 0
