"""The Server service: version, devices, capabilities and models, checked without loading any model."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import grpc
import psutil

from inference_server import __version__
from inference_server.config import Config
from inference_server.services.errors import rpc_errors
from keygrip.v1 import server_pb2, server_pb2_grpc

# Bundled MediaPipe graphs the capture job uses, relative to the mediapipe package.
MEDIAPIPE_MODELS = {
    "mediapipe.pose_landmark_full": "modules/pose_landmark/pose_landmark_full.tflite",
    "mediapipe.pose_detection": "modules/pose_detection/pose_detection.tflite",
    "mediapipe.hand_landmark_full": "modules/hand_landmark/hand_landmark_full.tflite",
    "mediapipe.face_landmark": "modules/face_landmark/face_landmark.tflite",
}
_INSTALL_HINT = "reinstall the server with `pip install 'keygrip[server]'` (mediapipe==0.10.21 bundles it)"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parent if spec and spec.origin else None


def _gpus() -> list[server_pb2.Device]:
    """NVIDIA GPUs from nvidia-smi: asking torch would load CUDA into the front process."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index,name,memory.total,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    devices = []
    for line in out.strip().splitlines():
        index, name, total, free = (v.strip() for v in line.split(","))
        devices.append(server_pb2.Device(kind="CUDA", name=name, index=int(index),
                                         memory_total_bytes=int(float(total)) * 2**20,
                                         memory_free_bytes=int(float(free)) * 2**20))
    return devices


def build_server_info(config: Config) -> server_pb2.ServerInfo:
    mem = psutil.virtual_memory()
    info = server_pb2.ServerInfo(version=__version__, api_version="keygrip.v1")
    info.devices.extend(_gpus())
    info.devices.append(server_pb2.Device(kind="CPU", name=f"{psutil.cpu_count()} logical cores",
                                          memory_total_bytes=mem.total, memory_free_bytes=mem.available))
    info.limits.CopyFrom(server_pb2.ServerLimits(
        max_upload_bytes=config.max_upload_bytes, max_message_bytes=config.max_message_bytes,
        max_queue=config.max_queue, workers=config.workers, path_inputs=bool(config.allowed_roots)))

    mp_dir = _package_dir("mediapipe")
    missing = []
    for name, rel in MEDIAPIPE_MODELS.items():
        present = mp_dir is not None and (mp_dir / rel).is_file()
        if not present:
            missing.append(name)
        info.models.append(server_pb2.Model(
            name=name, kind="mediapipe",
            state=server_pb2.MODEL_STATE_AVAILABLE if present else server_pb2.MODEL_STATE_MISSING,
            reason="" if present else f"not found in the mediapipe package; {_INSTALL_HINT}",
            source=str(mp_dir / rel) if mp_dir else ""))

    def cap(name: str, ok: bool, reason: str) -> None:
        info.capabilities.append(server_pb2.Capability(name=name, available=ok, reason="" if ok else reason))

    has_av = _package_dir("av") is not None
    cap("media.probe", has_av, "PyAV is not installed; " + _INSTALL_HINT)
    pose_ok = has_av and "mediapipe.pose_landmark_full" not in missing
    cap("mocap.body", pose_ok, "MediaPipe Pose is unavailable; " + _INSTALL_HINT)
    cap("mocap.hands", pose_ok and "mediapipe.hand_landmark_full" not in missing,
        "MediaPipe Holistic hands are unavailable; " + _INSTALL_HINT)
    cap("mocap.face", pose_ok and "mediapipe.face_landmark" not in missing,
        "MediaPipe Holistic face is unavailable; " + _INSTALL_HINT)
    cap("animation.retarget", True, "")
    cap("animation.bvh", True, "")
    return info


class ServerService(server_pb2_grpc.ServerServicer):
    def __init__(self, config: Config) -> None:
        self.info = build_server_info(config)

    @rpc_errors
    async def GetServerInfo(self, request: server_pb2.GetServerInfoRequest, context: grpc.aio.ServicerContext):
        return self.info
