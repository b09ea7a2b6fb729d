"""The scene generation capability: images for a scene from text, with diffusion models.

Text in; a tileable texture or a 360-degree world out, as PNG and linear OpenEXR with what
reproduces them (prompt, seed, model fingerprint, settings) in their metadata. Text and a host's
cameras with their depth renders in; one image per camera that lines up with the geometry out. The models come from
the model manager (models/): local diffusers folders or single .safetensors files, never downloaded.

- service.py: the SceneGeneration gRPC service (checks a request and its model, queues the job);
- jobs.py: TextureHandler, WorldHandler and ProjectHandler (a pipeline cache per worker, results as
  artifacts);
- options.py: the one place requests are checked and their defaults filled in;
- generate.py: generation on a loaded pipeline, with progress per step, previews and cancel;
- project.py: depth-conditioned generation per camera view (a depth ControlNet or an SD 2 depth
  model), later views keeping what earlier ones painted; reproject.py: which pixels those are;
- tiling.py: seamless (circular) padding in the UNet and the whole VAE, per axis;
- exr.py: linear OpenEXR in and out; provenance.py: the model's fingerprint and the metadata.

Importing this package stays light (the gRPC front does): torch and diffusers load in workers only.
"""

from __future__ import annotations

from inference_server.capability import Capability, Feature, JobNeeds, package_dir
from keygrip.v1 import scene_pb2

_NEEDS = ("torch", "diffusers", "transformers", "safetensors", "OpenEXR")
# A GPU user installs their CUDA (or ROCm) build of torch first; the server's install keeps it.
INSTALL_HINT = ("install the server's extras: pip install 'keygrip[server]' "
                "(for a GPU, install torch for your CUDA first)")

_GPU_JOB = JobNeeds(cpus=1, gpus=1, gpu_memory_gib=8, model="settings.model")


def features() -> list[Feature]:
    missing = [name for name in _NEEDS if package_dir(name) is None]
    reason = f"{', '.join(missing)} not installed; {INSTALL_HINT}" if missing else ""
    # A feature also needs a model that does it: GetServerInfo lists those under models.
    return [Feature("scene.texture", not missing, reason), Feature("scene.world", not missing, reason),
            Feature("scene.project", not missing, reason)]


CAPABILITY = Capability(
    name="scene",
    service_name=scene_pb2.DESCRIPTOR.services_by_name["SceneGeneration"].full_name,
    service="inference_server.scene.service:add_to_server",
    handlers={"generate_texture": "inference_server.scene.jobs:TextureHandler",
              "generate_world": "inference_server.scene.jobs:WorldHandler",
              "project_texture": "inference_server.scene.jobs:ProjectHandler"},
    features=features,
    # A GPU each, keeping the job's model loaded between jobs (SD 1.5/2 in half precision take about
    # 4 GiB, SDXL about 8; a projection adds a ControlNet).
    needs={"generate_texture": _GPU_JOB, "generate_world": _GPU_JOB, "project_texture": _GPU_JOB},
)
