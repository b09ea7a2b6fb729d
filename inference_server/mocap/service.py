"""The MotionCapture service: checks a request and queues a motion_capture or detect_people job."""

from __future__ import annotations

import grpc

from inference_server.capability import ServerParts
from inference_server.config import Config
from inference_server.jobs.manager import JobManager
from inference_server.mocap.options import check_people_request, check_request
from inference_server.services.errors import rpc_errors
from inference_server.services.inputs import check_media_input
from inference_server.store.artifacts import check_digest
from keygrip.v1 import common_pb2, mocap_pb2, mocap_pb2_grpc


class MotionCaptureService(mocap_pb2_grpc.MotionCaptureServicer):
    def __init__(self, config: Config, manager: JobManager) -> None:
        self.config = config
        self.manager = manager

    @rpc_errors
    async def CaptureMotion(self, request: mocap_pb2.CaptureMotionRequest,
                            context: grpc.aio.ServicerContext) -> common_pb2.Job:
        check_request(request)  # bad options fail at submit time, before any frame is decoded
        if request.HasField("people_tracks"):
            self.manager.artifacts.stat(check_digest(request.people_tracks.id))
        req = mocap_pb2.CaptureMotionRequest()
        req.CopyFrom(request)
        req.input.CopyFrom(check_media_input(self.config, self.manager.artifacts, request.input))
        return self.manager.to_proto(self.manager.submit("motion_capture", req, request.request_id))

    @rpc_errors
    async def DetectPeople(self, request: mocap_pb2.DetectPeopleRequest,
                           context: grpc.aio.ServicerContext) -> common_pb2.Job:
        check_people_request(request)
        req = mocap_pb2.DetectPeopleRequest()
        req.CopyFrom(request)
        req.input.CopyFrom(check_media_input(self.config, self.manager.artifacts, request.input))
        return self.manager.to_proto(self.manager.submit("detect_people", req, request.request_id))


def add_to_server(server: grpc.aio.Server, parts: ServerParts) -> None:
    mocap_pb2_grpc.add_MotionCaptureServicer_to_server(MotionCaptureService(parts.config, parts.manager), server)
