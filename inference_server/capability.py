"""What a capability is: one package that describes itself to the server.

A capability (media, mocap, animation, and the ones to come) is a package under inference_server/
whose __init__.py holds a CAPABILITY: its gRPC service, the job types it runs and the handler class
of each, its readiness checks and the models it needs. The server assembles itself from the list in
inference_server/capabilities.py:

- app.py registers every capability's servicer and lists its service for reflection;
- jobs/workers.py builds each worker's handler table from the capabilities' handlers;
- services/server_info.py reports their features and models in GetServerInfo.

Importing a capability package must stay light (no MediaPipe, PyAV, SciPy, torch): the gRPC front
imports every one of them. Heavy imports belong in JobHandler.setup() or run(), which only run
inside worker processes.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from google.protobuf import any_pb2, message

from keygrip.v1 import server_pb2

if TYPE_CHECKING:
    import grpc

    from inference_server.config import Config
    from inference_server.jobs.context import JobContext
    from inference_server.jobs.failures import JobInput
    from inference_server.jobs.manager import JobManager
    from inference_server.models.registry import ModelRegistry
    from inference_server.store.artifacts import ArtifactStore

# What to tell a user whose server lacks a package a capability needs.
INSTALL_HINT = "reinstall the server with `pip install 'keygrip[server]'` (mediapipe==0.10.21 bundles it)"


@dataclass
class ServerParts:
    """What a capability's service gets from the server: its configuration, the job manager (which
    also holds the job store and the artifact store), and the model registry."""

    config: Config
    manager: JobManager
    _registry: ModelRegistry | None = field(default=None, init=False, repr=False)

    async def models(self) -> ModelRegistry:
        """The registered models, read from their files once (off the event loop) for every service, like
        GetServerInfo's and the workers': a model added while the server runs is used after a restart,
        as `keygrip models add` says."""
        if self._registry is None:
            import asyncio

            from inference_server.models.registry import load_registry

            self._registry = await asyncio.to_thread(load_registry, self.config)
        return self._registry


@dataclass(frozen=True)
class Feature:
    """One thing a capability can do, as GetServerInfo lists it (keygrip.v1.Capability)."""

    name: str
    available: bool
    reason: str = ""  # why it is unavailable, and what to do about it


@dataclass(frozen=True)
class ModelSpec:
    """A model a capability needs, as GetServerInfo lists it (keygrip.v1.Model)."""

    name: str
    kind: str
    state: server_pb2.ModelState.ValueType
    reason: str = ""  # why it is not available
    source: str = ""  # where it is loaded from
    family: str = ""  # diffusion models: "sd1", "sdxl", ... (models/registry.py)
    size_bytes: int = 0
    capabilities: tuple[str, ...] = ()  # the features it enables

    @property
    def available(self) -> bool:
        return self.state in (server_pb2.MODEL_STATE_AVAILABLE, server_pb2.MODEL_STATE_LOADED)


@dataclass(frozen=True)
class JobNeeds:
    """What one job of a type needs on the node that runs it, declared beside its handler.

    The Ray executor asks the cluster for it (num_cpus, num_gpus, and a "gpu_memory_gib" custom resource
    on clusters whose nodes declare one: Ray 2.60 has no GPU-memory request of its own) and refuses a
    job that no node of the cluster could ever run (jobs/ray_workers.py). The local executor runs every
    job on the server's own machine with the devices it has: the model manager puts a GPU job on the CPU
    when there is no GPU (slowly), as it always has on an artist's laptop.

    cpus, gpus: cores and GPUs (fractions allowed, as Ray takes them).
    gpu_memory_gib: GPU memory the job's models take at most.
    model: the request field that names a model the job keeps loaded ("settings.model"); such jobs run
        on actors that keep it in memory, one pool per model; "" (stateless): a Ray task per job.
    """

    cpus: float = 1.0
    gpus: float = 0.0
    gpu_memory_gib: float = 0.0
    model: str = ""

    def model_of(self, request: message.Message) -> str:
        """The model a request names through `model` ("" for a stateless job, or a request that leaves the
        choice to the server)."""
        value: object = request
        for name in filter(None, self.model.split(".")):
            value = getattr(value, name)
        return value if isinstance(value, str) else ""


def _no_features() -> list[Feature]:
    return []


def _no_models() -> list[ModelSpec]:
    return []


@dataclass(frozen=True)
class Capability:
    """A capability's self-description.

    name: short name ("mocap"), the prefix of its feature names.
    service_name: the full name of its gRPC service ("keygrip.v1.MotionCapture"), for reflection.
    service: "module:function" that registers its servicer on a server, called as
        function(server, parts); imported only when the server assembles itself, so that importing
        the capability package stays light.
    handlers: job type -> "module:HandlerClass" (a JobHandler subclass); imported only inside
        worker processes.
    features: readiness checks, cheap and without loading a model (they run at server start).
    models: the models it needs, with their state.
    needs: job type -> what one job of it needs on a cluster node (JobNeeds; one core when not given).
    """

    name: str
    service_name: str
    service: str
    handlers: Mapping[str, str] = field(default_factory=dict)
    features: Callable[[], list[Feature]] = _no_features
    models: Callable[[], list[ModelSpec]] = _no_models
    needs: Mapping[str, JobNeeds] = field(default_factory=dict)

    def add_service(self, server: grpc.aio.Server, parts: ServerParts) -> None:
        """Register the capability's servicer on the server."""
        module, function = self.service.split(":")
        getattr(importlib.import_module(module), function)(server, parts)


RequestT = TypeVar("RequestT", bound=message.Message)


class JobHandler(Generic[RequestT]):
    """Runs the jobs of one type inside a worker process, and may keep state between them.

    A worker makes one instance per job type when the first such job arrives, calls setup() once,
    then run() for every job of that type; whatever setup() or run() keeps on self (a loaded model,
    a cache) serves the next job on the same worker. A cluster executor can host the same object
    (a Ray actor). Handlers type their context as JobContext, never as a concrete context class.
    """

    request_type: type[RequestT]

    def setup(self) -> None:
        """Load what every job of this type needs (heavy modules, models); called once per worker."""

    def run(self, request: RequestT, ctx: JobContext) -> message.Message:
        """Run one job and return its result message. Raise a KeygripError for what the user can fix."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what setup() took; called when the worker stops."""

    def describe(self, request: RequestT, artifacts: ArtifactStore | None) -> JobInput:
        """The job's input as the user knows it and what the job does to it, for the messages of a job
        that fails ("while capturing shot.mp4"). Cheap, and must not need setup(): it also runs for a
        job whose handler could not be set up. The default names the request's first MediaInput."""
        from inference_server.jobs.failures import describe_request

        return describe_request(request, artifacts)

    def unpack(self, packed: any_pb2.Any) -> RequestT:
        """The job's request, from the google.protobuf.Any the job store keeps."""
        request = self.request_type()
        if not packed.Unpack(request):
            raise TypeError(f"{type(self).__name__} runs {self.request_type.DESCRIPTOR.full_name} requests, "
                            f"not {packed.TypeName()}")
        return request


def package_dir(name: str) -> Path | None:
    """The folder of an installed package, found without importing it (None when not installed)."""
    spec = importlib.util.find_spec(name)
    return Path(spec.origin).parent if spec and spec.origin else None
