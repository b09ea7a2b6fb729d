"""The MotionCapture service: checks a capture request and queues it."""

from __future__ import annotations

import math

import grpc

from inference_server.config import Config
from inference_server.errors import InvalidInput
from inference_server.jobs.manager import JobManager
from inference_server.services.errors import rpc_errors
from inference_server.services.inputs import check_media_input
from keygrip.v1 import mocap_pb2, mocap_pb2_grpc


def check_options(req: mocap_pb2.CaptureMotionRequest) -> None:
    """Bad options fail at submit time, before any frame is decoded."""
    if req.HasField("smoothing") and not 0.0 <= req.smoothing <= 1.0:
        raise InvalidInput(f"smoothing must lie in 0..1, got {req.smoothing}")
    for name in ("fps_override", "subject_height_m", "focal_length_px", "fov_degrees"):
        value = getattr(req, name)
        if value < 0 or math.isnan(value):
            raise InvalidInput(f"{name} must be positive (or 0 for automatic), got {value}")
    if req.subject_height_m and not 0.5 <= req.subject_height_m <= 2.6:
        raise InvalidInput(f"subject_height_m is in metres: {req.subject_height_m} is not a person's height")
    if req.fov_degrees and req.fov_degrees >= 180:
        raise InvalidInput(f"fov_degrees must be below 180, got {req.fov_degrees}")
    if req.frame_range.start < 0 or (0 < req.frame_range.end <= req.frame_range.start):
        raise InvalidInput(f"frame range [{req.frame_range.start}, {req.frame_range.end}) is empty")
    if req.workers < 0:
        raise InvalidInput("workers must not be negative")


class MotionCaptureService(mocap_pb2_grpc.MotionCaptureServicer):
    def __init__(self, config: Config, manager: JobManager) -> None:
        self.config = config
        self.manager = manager

    @rpc_errors
    async def CaptureMotion(self, request: mocap_pb2.CaptureMotionRequest, context: grpc.aio.ServicerContext):
        check_options(request)
        req = mocap_pb2.CaptureMotionRequest()
        req.CopyFrom(request)
        req.input.CopyFrom(check_media_input(self.config, self.manager.artifacts, request.input))
        return self.manager.to_proto(self.manager.submit("motion_capture", req, request.request_id))


def register(server: grpc.aio.Server, config: Config, manager: JobManager) -> None:
    mocap_pb2_grpc.add_MotionCaptureServicer_to_server(MotionCaptureService(config, manager), server)
