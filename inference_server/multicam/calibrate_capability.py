"""The calibration capability: cameras calibrated from a board (calibrate jobs).

- calibrate_service.py: the Calibrator gRPC service (checks the request, queues the job);
- calibrate_job.py: CalibrateHandler, the calibrate job;
- calibrate.py and boards.py: the calibration itself (OpenCV, SciPy) and the boards it finds.

It lives in the multicam package beside the capture from several views, and is registered on its own
(the package's __init__ stays free for the multi-view capture).
"""

from __future__ import annotations

from inference_server.capability import INSTALL_HINT, Capability, Feature, package_dir
from keygrip.v1 import calibrate_pb2


def features() -> list[Feature]:
    missing = [name for name in ("cv2", "scipy", "av") if package_dir(name) is None]
    return [Feature("calibration.board", not missing, f"{', '.join(missing)} not installed; " + INSTALL_HINT)]


CAPABILITY = Capability(
    name="calibration",
    service_name=calibrate_pb2.DESCRIPTOR.services_by_name["Calibrator"].full_name,
    service="inference_server.multicam.calibrate_service:add_to_server",
    handlers={"calibrate": "inference_server.multicam.calibrate_job:CalibrateHandler"},
    features=features,
)
