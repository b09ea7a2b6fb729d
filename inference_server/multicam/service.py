"""The MultiCamera service: checks a request and queues a multiview_capture job."""

from __future__ import annotations

import grpc

from inference_server.capability import ServerParts
from inference_server.config import Config
from inference_server.errors import InvalidInput
from inference_server.jobs.manager import JobManager
from inference_server.services.errors import rpc_errors
from inference_server.services.inputs import check_media_input
from keygrip.v1 import common_pb2, multicam_pb2, multicam_pb2_grpc


def check_request(request: multicam_pb2.MultiViewCaptureRequest) -> None:
    """InvalidInput for a request that cannot run, before any frame is decoded."""
    n = len(request.videos)
    if n < 2:
        raise InvalidInput(f"a multi-camera capture needs two videos at least, got {n}; for one, use CaptureMotion.")
    if not request.HasField("calibration"):
        raise InvalidInput("the request has no calibration: give the cameras' calibration file (TOML, .qca.txt or "
                           "keygrip JSON).")
    if request.frame_offsets and len(request.frame_offsets) != n:
        raise InvalidInput(f"{len(request.frame_offsets)} frame offsets for {n} videos: give one per video, or none.")
    if request.video_names and len(request.video_names) != n:
        raise InvalidInput(f"{len(request.video_names)} video names for {n} videos: give one per video, or none.")
    if any(o < 0 for o in request.frame_offsets):
        raise InvalidInput(f"frame offsets must not be negative, got {list(request.frame_offsets)}")
    start, end = request.frame_range.start, request.frame_range.end
    if start < 0 or (end > 0 and end <= start):
        raise InvalidInput(f"frame range [{start}, {end}) is empty")
    if request.HasField("smoothing") and not 0.0 <= request.smoothing <= 1.0:
        raise InvalidInput(f"smoothing must lie in 0..1, got {request.smoothing}")
    if request.floor not in multicam_pb2.FloorSource.values():
        raise InvalidInput(f"floor {request.floor} is not a FloorSource; use FLOOR_SOURCE_AUTO, _CALIBRATION or _FEET")
    if request.max_side < 0 or request.workers < 0:
        raise InvalidInput(f"max_side and workers must not be negative, got {request.max_side} and {request.workers}")


class MultiCameraService(multicam_pb2_grpc.MultiCameraServicer):
    def __init__(self, config: Config, manager: JobManager) -> None:
        self.config = config
        self.manager = manager

    @rpc_errors
    async def CaptureMultiView(self, request: multicam_pb2.MultiViewCaptureRequest,
                               context: grpc.aio.ServicerContext) -> common_pb2.Job:
        check_request(request)
        req = multicam_pb2.MultiViewCaptureRequest()
        req.CopyFrom(request)
        artifacts = self.manager.artifacts
        del req.videos[:]
        req.videos.extend(check_media_input(self.config, artifacts, v) for v in request.videos)
        req.calibration.CopyFrom(check_media_input(self.config, artifacts, request.calibration))
        return self.manager.to_proto(self.manager.submit("multiview_capture", req, request.request_id))


def add_to_server(server: grpc.aio.Server, parts: ServerParts) -> None:
    multicam_pb2_grpc.add_MultiCameraServicer_to_server(MultiCameraService(parts.config, parts.manager), server)
