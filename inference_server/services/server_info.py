"""The Server service: version, devices, capabilities and models, checked without loading any model."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Sequence

import grpc
import psutil

from inference_server import __version__
from inference_server.capability import Capability, ModelSpec
from inference_server.config import Config
from inference_server.models import load_registry, model_specs, publish_config_models
from inference_server.services.errors import rpc_errors
from keygrip.v1 import server_pb2, server_pb2_grpc


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


def build_server_info(config: Config, capabilities: Sequence[Capability]) -> server_pb2.ServerInfo:
    """What GetServerInfo answers: checked once, at start, without loading any model."""
    mem = psutil.virtual_memory()
    info = server_pb2.ServerInfo(version=__version__, api_version="keygrip.v1",
                                 cluster=server_pb2.ClusterInfo(executor=config.executor))
    info.devices.extend(_gpus())
    info.devices.append(server_pb2.Device(kind="CPU", name=f"{psutil.cpu_count()} logical cores",
                                          memory_total_bytes=mem.total, memory_free_bytes=mem.available))
    info.limits.CopyFrom(server_pb2.ServerLimits(
        max_upload_bytes=config.max_upload_bytes, max_message_bytes=config.max_message_bytes,
        max_queue=config.max_queue, workers=config.workers, path_inputs=bool(config.allowed_roots)))

    # Diffusion models (inference_server/models): from their files and headers, without torch.
    diffusion = model_specs(load_registry(config))
    for cap in capabilities:
        for model in cap.models():
            info.models.append(_model(model))
        for feature in cap.features():
            info.capabilities.append(server_pb2.Capability(
                name=feature.name, available=feature.available, reason="" if feature.available else feature.reason))
    for model in diffusion:
        info.models.append(_model(model))
    return info


def _model(spec: ModelSpec) -> server_pb2.Model:
    return server_pb2.Model(name=spec.name, kind=spec.kind, state=spec.state, reason=spec.reason, source=spec.source,
                            family=spec.family, size_bytes=spec.size_bytes, capabilities=list(spec.capabilities))


class ServerService(server_pb2_grpc.ServerServicer):
    def __init__(self, config: Config, capabilities: Sequence[Capability]) -> None:
        publish_config_models(config)  # the TOML's models, into data_dir for the workers
        self.config = config
        self.info = build_server_info(config, capabilities)

    @rpc_errors
    async def GetServerInfo(self, request: server_pb2.GetServerInfoRequest,
                            context: grpc.aio.ServicerContext) -> server_pb2.ServerInfo:
        if self.config.executor != "ray":
            return self.info
        from inference_server.jobs.ray_workers import cluster_info

        info = server_pb2.ServerInfo()
        info.CopyFrom(self.info)
        info.cluster.CopyFrom(await asyncio.to_thread(cluster_info))  # the cluster changes: asked each time
        return info
