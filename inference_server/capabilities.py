"""The server's capabilities, in the order GetServerInfo lists them.

Adding a capability: write its package (see inference_server/capability.py and mocap/ for an
example), add its .proto under protos/keygrip/v1 and a client method in the SDK, and add its
CAPABILITY here. Nothing else in the server names a capability.
"""

from __future__ import annotations

from inference_server import animation, compositing, media, mocap, multicam, scene
from inference_server.capability import Capability, JobNeeds
from inference_server.multicam import calibrate_capability

CAPABILITIES: list[Capability] = [media.CAPABILITY, mocap.CAPABILITY, multicam.CAPABILITY, animation.CAPABILITY,
                                   scene.CAPABILITY, compositing.CAPABILITY, calibrate_capability.CAPABILITY]


def job_handlers(capabilities: list[Capability] = CAPABILITIES) -> dict[str, str]:
    """Job type -> "module:HandlerClass" over all capabilities; a job type belongs to one only."""
    table: dict[str, str] = {}
    for cap in capabilities:
        for job_type, handler in cap.handlers.items():
            if job_type in table:
                raise ValueError(f"job type {job_type!r} of capability {cap.name!r} is taken by another capability")
            table[job_type] = handler
    return table


def job_needs(capabilities: list[Capability] = CAPABILITIES) -> dict[str, JobNeeds]:
    """Job type -> what one job of it needs on a node (JobNeeds(), one core, when its capability is silent)."""
    return {job_type: cap.needs.get(job_type, JobNeeds()) for cap in capabilities for job_type in cap.handlers}
