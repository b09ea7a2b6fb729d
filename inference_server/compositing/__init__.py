"""The compositing capability: passes for a plate, numbered like it.

A plate (a video or an image sequence) in; a person's matte (matte), a relative depth pass (depth) or
a clean plate of the background (clean_plate) out, as OpenEXR (half or float, linear, never clamped)
or 16-bit PNG, with frame numbers and range identical to the plate's and the settings in every file's
metadata.

- service.py: the Compositing gRPC service (checks a request, queues the job);
- options.py: the one place requests are checked and their defaults filled in;
- jobs.py: the handlers (a segmenter kept per worker; depth, segmenter and inpainting models from the
  model manager);
- matte.py: segmentation, guided-filter edge refinement, optical-flow temporal stabilisation;
- segmenters.py: a learned person segmenter (transformers) as the matte's first stage;
- cleanplate.py: the masked median over registered frames, the coverage map, classical inpainting;
- inpaint.py: a diffusers inpainting model filling the coverage hole, and only it;
- plates.py: reading a plate (range, gaps, one frame size) and writing frames named like it.

Importing this package stays light (the gRPC front does): MediaPipe, OpenCV and torch load in workers.
"""

from __future__ import annotations

from inference_server.capability import INSTALL_HINT, Capability, Feature, JobNeeds, ModelSpec, package_dir
from keygrip.v1 import compositing_pb2, server_pb2

# The segmenter (general model, 256x256), relative to the mediapipe package.
SELFIE_SEGMENTATION = "modules/selfie_segmentation/selfie_segmentation.tflite"


def models() -> list[ModelSpec]:
    mp_dir = package_dir("mediapipe")
    present = mp_dir is not None and (mp_dir / SELFIE_SEGMENTATION).is_file()
    return [ModelSpec(name="mediapipe.selfie_segmentation", kind="mediapipe",
                      state=server_pb2.MODEL_STATE_AVAILABLE if present else server_pb2.MODEL_STATE_MISSING,
                      reason="" if present else f"not found in the mediapipe package; {INSTALL_HINT}",
                      source=str(mp_dir / SELFIE_SEGMENTATION) if mp_dir else "")]


def features() -> list[Feature]:
    libraries = [name for name in ("cv2", "OpenEXR") if package_dir(name) is None]
    segmenter = [] if all(m.available for m in models()) else ["MediaPipe Selfie Segmentation"]
    torch = [name for name in ("torch", "transformers") if package_dir(name) is None]

    def reason(missing: list[str]) -> str:
        return f"{', '.join(missing)} not installed; {INSTALL_HINT}" if missing else ""

    matte = segmenter + libraries
    depth = libraries + torch
    # Depth also needs a depth model: GetServerInfo lists those under models.
    return [Feature("compositing.matte", not matte, reason(matte)),
            Feature("compositing.clean_plate", not matte, reason(matte)),
            Feature("compositing.depth", not depth, reason(depth))]


CAPABILITY = Capability(
    name="compositing",
    service_name=compositing_pb2.DESCRIPTOR.services_by_name["Compositing"].full_name,
    service="inference_server.compositing.service:add_to_server",
    handlers={"matte": "inference_server.compositing.jobs:MatteHandler",
              "depth": "inference_server.compositing.jobs:DepthHandler",
              "clean_plate": "inference_server.compositing.jobs:CleanPlateHandler"},
    features=features,
    models=models,
    # Depth keeps its estimator loaded on actors (one core runs it); matte and clean plate are stateless.
    needs={"depth": JobNeeds(cpus=1, model="settings.model")},
)
