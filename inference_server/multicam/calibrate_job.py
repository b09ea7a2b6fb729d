"""The calibrate job (keygrip.v1.Calibrator): cameras calibrated from a board, written as a
keygrip.calibration JSON artifact with a report per camera."""

from __future__ import annotations

import importlib

from inference_server.capability import JobHandler
from inference_server.errors import InvalidInput
from inference_server.jobs.context import JobContext
from inference_server.jobs.failures import JobInput, artifact_name
from inference_server.multicam.boards import Board
from inference_server.store.artifacts import ArtifactStore, artifact_ref, local_path
from keygrip.v1 import calibrate_pb2, common_pb2


def board_of(request: calibrate_pb2.CalibrateRequest) -> Board:
    """The request's board; InvalidInput naming what is wrong with it."""
    b = request.board
    if b.columns <= 0 or b.rows <= 0:
        raise InvalidInput("board: give its size (columns and rows: a checkerboard's inner corners, e.g. 4x7)")
    kind = "charuco" if b.kind == calibrate_pb2.CalibrationBoard.KIND_CHARUCO else "checkerboard"
    return Board(b.columns, b.rows, b.square_m, kind=kind, marker_m=b.marker_m,
                 dictionary=b.dictionary or "DICT_4X4_50")


def check_request(request: calibrate_pb2.CalibrateRequest) -> Board:
    """What can be checked before a frame is read (at submit time, on the gRPC front)."""
    board = board_of(request)
    names = [c.name for c in request.cameras]
    if not names:
        raise InvalidInput("no camera to calibrate: give each camera's board images or video")
    if any(not n.strip() for n in names):
        raise InvalidInput("every camera needs a name (as its capture video is named, e.g. cam01)")
    if len(set(names)) != len(names):
        raise InvalidInput(f"camera names must differ: {', '.join(names)}")
    for cam in request.cameras:
        if not cam.intrinsics and not cam.extrinsics:
            raise InvalidInput(f"{cam.name}: no images or video given for this camera")
    if request.max_frames < 0:
        raise InvalidInput(f"max_frames must be 0 (40) or more, not {request.max_frames}")
    return board


def _name(media: common_pb2.MediaInput, artifacts: ArtifactStore | None) -> str:
    which = media.WhichOneof("source")
    if which == "artifact_id":
        return artifact_name(media.artifact_id, artifacts, media.artifact_id[:12])
    return media.sequence.pattern if which == "sequence" else media.path


class CalibrateHandler(JobHandler[calibrate_pb2.CalibrateRequest]):
    request_type = calibrate_pb2.CalibrateRequest

    def setup(self) -> None:
        # OpenCV, SciPy and PyAV load once per worker, before the first job's clock starts.
        importlib.import_module("inference_server.multicam.calibrate")

    def describe(self, request: calibrate_pb2.CalibrateRequest, artifacts: ArtifactStore | None) -> JobInput:
        names = ", ".join(c.name for c in request.cameras) or "no camera"
        return JobInput(name=f"cameras {names}", doing="calibrating", kind="board images")

    def run(self, request: calibrate_pb2.CalibrateRequest, ctx: JobContext) -> calibrate_pb2.CalibrateResult:
        from inference_server.multicam import calibrate
        from inference_server.multicam.calibration_files import rodrigues

        board = check_request(request)

        def sources(inputs: list[common_pb2.MediaInput], folder: str) -> tuple[calibrate.Source, ...]:
            # Each uploaded sequence is laid out in a folder of its own.
            return tuple(calibrate.Source(local_path(ctx.artifacts, m, ctx.scratch / f"{folder}{j}"),
                                          _name(m, ctx.artifacts)) for j, m in enumerate(inputs))

        cameras = [calibrate.CameraSources(cam.name, sources(list(cam.intrinsics), f"{i}_intrinsics"),
                                           sources(list(cam.extrinsics), f"{i}_extrinsics"))
                   for i, cam in enumerate(request.cameras)]
        floor = request.floor_frame if request.HasField("floor_frame") else None
        cal = calibrate.calibrate(board, cameras, ctx, max_frames=request.max_frames or calibrate.DEFAULT_MAX_FRAMES,
                                  floor_frame=floor)
        text = calibrate.calibration_json(cal)
        out = calibrate_pb2.CalibrateResult(
            calibration=artifact_ref(ctx.put_bytes(text.encode(), "calibration.json", "application/json")),
            floor=cal.floor, bundle_rms_px=cal.bundle_rms_px, warnings=cal.warnings)
        for c in cal.cameras:
            k, r, t = c.camera.camera.to_opencv()
            out.cameras.add(
                name=c.camera.name, width=c.camera.camera.width, height=c.camera.camera.height,
                matrix=k.ravel().tolist(), distortion=list(c.camera.distortion),
                rotation=rodrigues(r).tolist(), translation=t.tolist(),
                reprojection_error_px=c.reprojection_error_px, intrinsics_error_px=c.intrinsics_error_px,
                intrinsics_views=list(c.intrinsics_views), not_found=list(c.not_found),
                extrinsics_views=c.extrinsics_views)
        return out
