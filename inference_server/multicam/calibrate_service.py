"""The Calibrator service: checks a CalibrateRequest (its board, cameras and inputs) and queues a
calibrate job."""

from __future__ import annotations

import grpc

from inference_server.capability import ServerParts
from inference_server.multicam.calibrate_job import check_request
from inference_server.services.errors import rpc_errors
from inference_server.services.inputs import check_media_input
from keygrip.v1 import calibrate_pb2, calibrate_pb2_grpc, common_pb2


class CalibratorService(calibrate_pb2_grpc.CalibratorServicer):
    def __init__(self, parts: ServerParts) -> None:
        self.config = parts.config
        self.manager = parts.manager

    @rpc_errors
    async def Calibrate(self, request: calibrate_pb2.CalibrateRequest,
                        context: grpc.aio.ServicerContext) -> common_pb2.Job:
        check_request(request)  # a bad board or camera list fails here, before an image is read
        req = calibrate_pb2.CalibrateRequest()
        req.CopyFrom(request)
        for cam in req.cameras:
            for inputs in (cam.intrinsics, cam.extrinsics):
                for media in inputs:
                    media.CopyFrom(check_media_input(self.config, self.manager.artifacts, media))
        return self.manager.to_proto(self.manager.submit("calibrate", req, request.request_id))


def add_to_server(server: grpc.aio.Server, parts: ServerParts) -> None:
    calibrate_pb2_grpc.add_CalibratorServicer_to_server(CalibratorService(parts), server)
