"""Keygrip SDK: a small Python client for the Keygrip inference server.

Hosts (Blender, Nuke) and pipeline scripts import only this package, which needs nothing but
grpcio and protobuf: no torch, mediapipe or diffusers is ever imported from here.

    from keygrip import Client
    with Client("127.0.0.1:50051") as client:
        job = client.probe("shot.mp4")
        print(job.result().fps)

Hosts build on two host-neutral layers: keygrip.session (a chain of worker-thread and main-thread
steps, with progress and cancel) and keygrip.animate (capture, fetch and retarget steps with typed
results). A host supplies only its main-thread scheduling and its scene writing.
"""

from __future__ import annotations

__version__ = "0.1.0"

from keygrip.client import DEFAULT_ADDRESS, Client, Job  # noqa: E402
from keygrip.errors import (  # noqa: E402
    FailedPrecondition,
    InvalidArgument,
    JobCancelled,
    JobFailed,
    KeygripError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServerUnavailable,
    Unauthenticated,
    user_message,
)
from keygrip.events import ProgressEvent, StateEvent  # noqa: E402

__all__ = [
    "DEFAULT_ADDRESS", "Client", "Job", "KeygripError", "InvalidArgument", "NotFound", "FailedPrecondition",
    "ResourceExhausted", "PermissionDenied", "Unauthenticated", "ServerUnavailable", "JobFailed",
    "JobCancelled", "ProgressEvent", "StateEvent", "user_message", "__version__",
]
