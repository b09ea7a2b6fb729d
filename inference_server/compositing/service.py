"""The Compositing service: checks a request and queues a matte, depth or clean_plate job."""

from __future__ import annotations

from typing import TypeVar

import grpc

from inference_server.capability import ServerParts
from inference_server.compositing import options
from inference_server.services.errors import rpc_errors
from inference_server.services.inputs import check_media_input
from keygrip.v1 import common_pb2, compositing_pb2, compositing_pb2_grpc

_Request = TypeVar("_Request", compositing_pb2.MatteRequest, compositing_pb2.DepthRequest,
                    compositing_pb2.CleanPlateRequest)


class CompositingService(compositing_pb2_grpc.CompositingServicer):
    def __init__(self, parts: ServerParts) -> None:
        self.config = parts.config
        self.manager = parts.manager
        self._models = parts.models

    def _submit(self, job_type: str, request: _Request) -> common_pb2.Job:
        """Queue a copy of the request with its input checked and resolved (an allowed path, artifacts
        present)."""
        req = type(request)()
        req.CopyFrom(request)
        req.input.CopyFrom(check_media_input(self.config, self.manager.artifacts, request.input))
        return self.manager.to_proto(self.manager.submit(job_type, req, request.request_id))

    @rpc_errors
    async def Matte(self, request: compositing_pb2.MatteRequest,
                    context: grpc.aio.ServicerContext) -> common_pb2.Job:
        options.check_matte(request)  # bad settings fail at submit time, before a frame is decoded
        await self._check_segmenter(request.settings.model)
        return self._submit("matte", request)

    @rpc_errors
    async def Depth(self, request: compositing_pb2.DepthRequest,
                    context: grpc.aio.ServicerContext) -> common_pb2.Job:
        opts = options.depth_options(request)
        # No depth model: FAILED_PRECONDITION now, naming how to add one, rather than a failed job later.
        (await self._models()).depth_estimator(opts.model)
        return self._submit("depth", request)

    @rpc_errors
    async def CleanPlate(self, request: compositing_pb2.CleanPlateRequest,
                         context: grpc.aio.ServicerContext) -> common_pb2.Job:
        opts = options.clean_plate_options(request)
        await self._check_segmenter(request.matte.model)
        if opts.inpaint_model:
            (await self._models()).suited(opts.inpaint_model, "compositing.inpaint")
        return self._submit("clean_plate", request)

    async def _check_segmenter(self, model: str) -> None:
        """A named segmenter that is unknown, not installed, restricted or not a segmenter: NOT_FOUND or
        FAILED_PRECONDITION now (with the fix), rather than a failed job later."""
        if model.strip():
            (await self._models()).suited(model.strip(), "compositing.matte")


def add_to_server(server: grpc.aio.Server, parts: ServerParts) -> None:
    compositing_pb2_grpc.add_CompositingServicer_to_server(CompositingService(parts), server)
