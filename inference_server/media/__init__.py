"""The media capability: facts about a clip (probe_media jobs) and the video decoding every
other capability reads footage with.

- service.py: the Media gRPC service (ProbeMedia checks the input and queues a probe_media job);
- jobs.py: ProbeHandler, the probe_media job (facts plus a poster-frame thumbnail);
- video.py: probing and decoding video files and image sequences into RGB frames (PyAV).

Import video.py where frames are needed: this package itself stays light for the gRPC front.
"""

from __future__ import annotations

from inference_server.capability import INSTALL_HINT, Capability, Feature, package_dir
from keygrip.v1 import media_pb2


def features() -> list[Feature]:
    has_av = package_dir("av") is not None
    return [Feature("media.probe", has_av, "PyAV is not installed; " + INSTALL_HINT)]


CAPABILITY = Capability(
    name="media",
    service_name=media_pb2.DESCRIPTOR.services_by_name["Media"].full_name,
    service="inference_server.media.service:add_to_server",
    handlers={"probe_media": "inference_server.media.jobs:ProbeHandler"},
    features=features,
)
