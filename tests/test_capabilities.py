"""Capabilities describe themselves: the server's assembly, its handler table and GetServerInfo
come from inference_server/capabilities.py, and the gRPC front stays light."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import any_pb2

from inference_server import compositing, media, mocap, scene
from inference_server.capabilities import CAPABILITIES, job_handlers, job_needs
from inference_server.capability import Capability, JobHandler, JobNeeds
from inference_server.config import Config
from inference_server.jobs.context import JobContext, NullContext
from inference_server.jobs.workers import Handlers
from inference_server.media.jobs import ProbeHandler
from inference_server.multicam import calibrate_capability
from inference_server.services.server_info import build_server_info
from inference_server.store.artifacts import ArtifactStore
from keygrip.v1 import common_pb2, media_pb2, scene_pb2, server_pb2

REPO = Path(__file__).resolve().parents[1]
CLIP = Path(__file__).parent / "data" / "video" / "pose2sim_cam01.mp4"
HINT = "reinstall the server with `pip install 'keygrip[server]'` (mediapipe==0.10.21 bundles it)"


def test_server_info_lists_every_capability_feature_and_model() -> None:
    info = build_server_info(Config(), CAPABILITIES)
    assert [(c.name, c.available) for c in info.capabilities] == [
        ("media.probe", True), ("mocap.body", True), ("mocap.hands", True), ("mocap.face", True),
        ("multicam.capture", True), ("animation.retarget", True), ("animation.bvh", True), ("scene.texture", True),
        ("scene.world", True),
        ("scene.project", True), ("compositing.matte", True), ("compositing.clean_plate", True),
        ("compositing.depth", True), ("calibration.board", True)]
    assert [m.name for m in info.models] == ["mediapipe.pose_landmark_full", "mediapipe.pose_detection",
                                             "mediapipe.hand_landmark_full", "mediapipe.face_landmark",
                                             "mediapipe.selfie_segmentation"]
    assert all(m.state == server_pb2.MODEL_STATE_AVAILABLE and m.kind == "mediapipe" and not m.reason
               for m in info.models)
    assert all(Path(m.source).is_file() for m in info.models)


def test_server_info_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # As on a server installed without PyAV and MediaPipe.
    for module in (media, mocap, scene, compositing, calibrate_capability):
        monkeypatch.setattr(module, "package_dir", lambda name: None)
    info = build_server_info(Config(), CAPABILITIES)
    reasons = {c.name: c.reason for c in info.capabilities if not c.available}
    assert reasons == {
        "media.probe": "PyAV is not installed; " + HINT,
        "mocap.body": "MediaPipe Pose is unavailable; " + HINT,
        "mocap.hands": "MediaPipe Holistic hands are unavailable; " + HINT,
        "mocap.face": "MediaPipe Holistic face is unavailable; " + HINT,
        "multicam.capture": "MediaPipe Pose is unavailable; " + HINT,
        "scene.texture": "torch, diffusers, transformers, safetensors, OpenEXR not installed; " + scene.INSTALL_HINT,
        "scene.world": "torch, diffusers, transformers, safetensors, OpenEXR not installed; " + scene.INSTALL_HINT,
        "scene.project": "torch, diffusers, transformers, safetensors, OpenEXR not installed; " + scene.INSTALL_HINT,
        "compositing.matte": "MediaPipe Selfie Segmentation, cv2, OpenEXR not installed; " + HINT,
        "compositing.clean_plate": "MediaPipe Selfie Segmentation, cv2, OpenEXR not installed; " + HINT,
        "compositing.depth": "cv2, OpenEXR, torch, transformers not installed; " + HINT,
        "calibration.board": "cv2, scipy, av not installed; " + HINT,
    }
    assert {(m.state, m.reason) for m in info.models} == {
        (server_pb2.MODEL_STATE_MISSING, "not found in the mediapipe package; " + HINT)}


def test_every_job_type_has_one_handler_class() -> None:
    table = job_handlers()
    assert table == {"probe_media": "inference_server.media.jobs:ProbeHandler",
                     "motion_capture": "inference_server.mocap.jobs:CaptureHandler",
                     "detect_people": "inference_server.mocap.jobs:DetectPeopleHandler",
                     "multiview_capture": "inference_server.multicam.jobs:MultiViewCaptureHandler",
                     "retarget": "inference_server.animation.jobs:RetargetHandler",
                     "generate_texture": "inference_server.scene.jobs:TextureHandler",
                     "generate_world": "inference_server.scene.jobs:WorldHandler",
                     "project_texture": "inference_server.scene.jobs:ProjectHandler",
                     "matte": "inference_server.compositing.jobs:MatteHandler",
                     "depth": "inference_server.compositing.jobs:DepthHandler",
                     "clean_plate": "inference_server.compositing.jobs:CleanPlateHandler",
                     "calibrate": "inference_server.multicam.calibrate_job:CalibrateHandler"}
    for path in table.values():
        module, name = path.split(":")
        handler = getattr(importlib.import_module(module), name)
        assert issubclass(handler, JobHandler) and handler.request_type is not None
    twice = Capability("twice", "keygrip.v1.Twice", "x:add_to_server", handlers={"retarget": "x:Y"})
    with pytest.raises(ValueError, match="retarget"):
        job_handlers([*CAPABILITIES, twice])


def test_every_job_type_declares_its_needs_and_takes_job_options() -> None:
    """What a cluster node must have for each job type, and the model it keeps loaded; every request can
    opt out of requeueing (the manager reads job_options from any job's request)."""
    needs = job_needs()
    assert set(needs) == set(job_handlers())
    gpu = {t for t, n in needs.items() if n.gpus}
    assert gpu == {"generate_texture", "generate_world", "project_texture"}
    assert {t for t, n in needs.items() if n.model} == gpu | {"depth"}
    assert needs["probe_media"] == JobNeeds(cpus=1)  # a capability that says nothing: one core, stateless
    request = scene_pb2.GenerateTextureRequest(settings=scene_pb2.GenerationSettings(model="sdxl"))
    assert needs["generate_texture"].model_of(request) == "sdxl"
    for path in job_handlers().values():
        module, name = path.split(":")
        request_type = getattr(importlib.import_module(module), name).request_type
        assert request_type.DESCRIPTOR.fields_by_name["job_options"].message_type.name == "JobOptions"


def test_the_front_loads_no_heavy_package() -> None:
    """Importing the server, its capabilities and their services, and asking what they offer,
    leaves MediaPipe, PyAV, OpenCV and SciPy to the workers."""
    code = ("import sys, inference_server.app as app\n"
            "from inference_server.config import Config\n"
            "from inference_server.services.server_info import build_server_info\n"
            "import inference_server.media.service, inference_server.mocap.service\n"
            "import inference_server.animation.service\n"
            "build_server_info(Config(), app.CAPABILITIES)\n"
            "print([m for m in ('mediapipe', 'av', 'cv2', 'scipy', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


class CountingHandler(JobHandler[media_pb2.ProbeMediaRequest]):
    request_type = media_pb2.ProbeMediaRequest
    setups = 0

    def setup(self) -> None:
        type(self).setups += 1
        self.jobs = 0

    def run(self, request: media_pb2.ProbeMediaRequest, ctx: JobContext) -> media_pb2.ProbeMediaResult:
        self.jobs += 1
        return media_pb2.ProbeMediaResult(frame_count=self.jobs)


def test_a_worker_keeps_one_handler_per_job_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(CountingHandler, "setups", 0)
    handlers = Handlers({"count": f"{__name__}:CountingHandler"})
    first = handlers.get("count")
    assert isinstance(first, CountingHandler)
    results = [first.run(media_pb2.ProbeMediaRequest(), NullContext()) for _ in range(2)]
    assert handlers.get("count") is first and CountingHandler.setups == 1
    assert [r.frame_count for r in results] == [1, 2]  # state kept between jobs


def test_a_handler_runs_outside_the_server(tmp_path: Path) -> None:
    """Scripts run a job's handler with a NullContext: same result as through the server."""
    ctx = NullContext(artifacts=ArtifactStore(tmp_path / "artifacts"), scratch=tmp_path / "scratch")
    handler = ProbeHandler()
    handler.setup()
    request = media_pb2.ProbeMediaRequest(input=common_pb2.MediaInput(path=str(CLIP)), thumbnail_max_side=64)
    result = handler.run(handler.unpack(_packed(request)), ctx)
    assert result.frame_count == 100 and result.width == 1080 and result.height == 1920
    assert ctx.produced == [result.thumbnail.id]
    assert ctx.artifacts.read_bytes(result.thumbnail.id).startswith(b"\x89PNG")
    assert [e[0] for e in ctx.events] == ["probe"] * 3


def _packed(request: media_pb2.ProbeMediaRequest) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(request)
    return packed
