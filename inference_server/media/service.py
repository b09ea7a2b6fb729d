"""The Media service: probing clips."""

from __future__ import annotations

import grpc

from inference_server.capability import ServerParts
from inference_server.config import Config
from inference_server.jobs.manager import JobManager
from inference_server.services.errors import rpc_errors
from inference_server.services.inputs import check_media_input
from keygrip.v1 import common_pb2, media_pb2, media_pb2_grpc


class MediaService(media_pb2_grpc.MediaServicer):
    def __init__(self, config: Config, manager: JobManager) -> None:
        self.config = config
        self.manager = manager

    @rpc_errors
    async def ProbeMedia(self, request: media_pb2.ProbeMediaRequest,
                         context: grpc.aio.ServicerContext) -> common_pb2.Job:
        req = media_pb2.ProbeMediaRequest()
        req.CopyFrom(request)
        req.input.CopyFrom(check_media_input(self.config, self.manager.artifacts, request.input))
        rec = self.manager.submit("probe_media", req, request.request_id)
        return self.manager.to_proto(rec)


def add_to_server(server: grpc.aio.Server, parts: ServerParts) -> None:
    media_pb2_grpc.add_MediaServicer_to_server(MediaService(parts.config, parts.manager), server)
