"""The multi-camera capability: a person's motion from several calibrated videos of one take.

Videos and a calibration in, the same MotionClip and BVH as single-view capture out, in the
calibration's world (Y-up metres) and carrying the calibrated cameras. Per view it reuses mocap/'s
MediaPipe inference, and after triangulation mocap/solve.py's passes.

- calibration_files.py: TOML (Pose2Sim/OpenCV), Qualisys .qca.txt and our JSON into VideoCameras;
- epipolar.py: left/right labels, the same person and timing checked across views;
- sync.py: frame offsets (given, timecodes, or the person's motion) with a confidence;
- triangulate.py: weighted DLT with RANSAC over view pairs and a reprojection gate;
- capture.py: run_multicam end to end (detect_views in parallel, reconstruct);
- service.py / jobs.py: the MultiCamera service and its multiview_capture job;
- boards.py / calibrate.py: calibrating cameras from a checkerboard or ChArUco board, served by its
  own capability (calibrate_capability.py, calibrate_service.py, calibrate_job.py).

Importing this package stays light (the gRPC front does).
"""

from __future__ import annotations

from inference_server.capability import Capability, Feature
from keygrip.v1 import multicam_pb2


def features() -> list[Feature]:
    from inference_server import mocap

    body = next(f for f in mocap.features() if f.name == "mocap.body")
    return [Feature("multicam.capture", body.available, body.reason)]


CAPABILITY = Capability(
    name="multicam",
    service_name=multicam_pb2.DESCRIPTOR.services_by_name["MultiCamera"].full_name,
    service="inference_server.multicam.service:add_to_server",
    handlers={"multiview_capture": "inference_server.multicam.jobs:MultiViewCaptureHandler"},
    features=features,
)
