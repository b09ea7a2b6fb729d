"""The Compositing service: checks a request and queues a matte, depth or clean_plate job."""

from __future__ import annotations

import asyncio

import grpc

from inference_server.capability import ServerParts
from inference_server.compositing import options
from inference_server.config import Config
from inference_server.jobs.manager import JobManager
from inference_server.models.registry import ModelRegistry
from inference_server.services.errors import rpc_errors
from inference_server.services.inputs import check_media_input
from keygrip.v1 import common_pb2, compositing_pb2, compositing_pb2_grpc


class CompositingService(compositing_pb2_grpc.CompositingServicer):
    def __init__(self, config: Config, manager: JobManager) -> None:
        self.config = config
        self.manager = manager
        self._registry: ModelRegistry | None = None

    async def _models(self) -> ModelRegistry:
        """The model registry, read once (as GetServerInfo's and the workers': a model added while the
        server runs is used after a restart)."""
        from inference_server.models.registry import load_registry

        if self._registry is None:
            self._registry = await asyncio.to_thread(load_registry, self.config)
        return self._registry

    def _with_input(self, request: compositing_pb2.MatteRequest | compositing_pb2.DepthRequest
                    | compositing_pb2.CleanPlateRequest) -> None:
        """The request's input checked and resolved in place (an allowed path, artifacts present)."""
        request.input.CopyFrom(check_media_input(self.config, self.manager.artifacts, request.input))

    @rpc_errors
    async def Matte(self, request: compositing_pb2.MatteRequest,
                    context: grpc.aio.ServicerContext) -> common_pb2.Job:
        options.check_matte(request)  # bad settings fail at submit time, before a frame is decoded
        req = compositing_pb2.MatteRequest()
        req.CopyFrom(request)
        self._with_input(req)
        return self.manager.to_proto(self.manager.submit("matte", req, request.request_id))

    @rpc_errors
    async def Depth(self, request: compositing_pb2.DepthRequest,
                    context: grpc.aio.ServicerContext) -> common_pb2.Job:
        opts = options.depth_options(request)
        # No depth model: FAILED_PRECONDITION now, naming how to add one, rather than a failed job later.
        (await self._models()).depth_estimator(opts.model)
        req = compositing_pb2.DepthRequest()
        req.CopyFrom(request)
        self._with_input(req)
        return self.manager.to_proto(self.manager.submit("depth", req, request.request_id))

    @rpc_errors
    async def CleanPlate(self, request: compositing_pb2.CleanPlateRequest,
                         context: grpc.aio.ServicerContext) -> common_pb2.Job:
        options.clean_plate_options(request)
        req = compositing_pb2.CleanPlateRequest()
        req.CopyFrom(request)
        self._with_input(req)
        return self.manager.to_proto(self.manager.submit("clean_plate", req, request.request_id))


def add_to_server(server: grpc.aio.Server, parts: ServerParts) -> None:
    compositing_pb2_grpc.add_CompositingServicer_to_server(CompositingService(parts.config, parts.manager), server)
