"""The one place scene-generation requests are checked and their defaults filled in.

Checked in the gRPC front at submit time (so a bad size or an empty prompt fails before the job is
queued), and again in the worker, which only ever sees requests that passed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from inference_server.errors import InvalidInput
from inference_server.models.registry import CONTROLNET_BASES, unsuited
from keygrip.v1 import scene_pb2

if TYPE_CHECKING:
    from inference_server.models.registry import ModelRegistry

DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 7.0
DEFAULT_SIZE = 512
DEFAULT_STRENGTH = 0.75
MAX_HIGHLIGHT_GAIN = 1000.0  # half floats hold up to 65504


def filled(settings: scene_pb2.GenerationSettings, *, world: bool = False) -> scene_pb2.GenerationSettings:
    """A copy of the settings with the documented defaults in place of zero values, checked with the
    rules every pipeline has (generate.check_settings; the model's own size multiple is checked
    again in the worker, once the model is loaded). Raises InvalidInput naming what to change."""
    from inference_server.scene.generate import GenerateSettings, check_settings

    s = scene_pb2.GenerationSettings()
    s.CopyFrom(settings)
    if not s.model.strip():
        raise InvalidInput("settings.model is empty: name one of the server's models (keygrip models ls)")
    s.steps = s.steps or DEFAULT_STEPS
    s.guidance = s.guidance or DEFAULT_GUIDANCE
    if world:
        if not s.width and not s.height:
            s.width, s.height = 2 * DEFAULT_SIZE, DEFAULT_SIZE
        s.width = s.width or 2 * s.height
        s.height = s.height or s.width // 2
    else:
        s.width = s.width or DEFAULT_SIZE
        s.height = s.height or DEFAULT_SIZE
    check_settings(GenerateSettings(prompt=s.prompt, negative_prompt=s.negative_prompt, seed=s.seed, steps=s.steps,
                                    guidance=s.guidance, width=s.width, height=s.height, scheduler=s.scheduler),
                   world=world)
    return s


def texture_request(request: scene_pb2.GenerateTextureRequest) -> scene_pb2.GenerateTextureRequest:
    """A checked copy of a texture request with its defaults filled in."""
    req = scene_pb2.GenerateTextureRequest()
    req.CopyFrom(request)
    req.settings.CopyFrom(filled(request.settings))
    if not req.HasField("tileable"):
        req.tileable = True
    req.strength = req.strength or DEFAULT_STRENGTH
    if not 0.0 < req.strength <= 1.0 or math.isnan(req.strength):
        raise InvalidInput(f"strength must lie in 0..1 (how far to move from the init image), got {req.strength}")
    return req


def world_request(request: scene_pb2.GenerateWorldRequest) -> scene_pb2.GenerateWorldRequest:
    """A checked copy of a world request with its defaults filled in."""
    req = scene_pb2.GenerateWorldRequest()
    req.CopyFrom(request)
    req.settings.CopyFrom(filled(request.settings, world=True))
    if not (math.isfinite(req.highlight_gain) and 0.0 <= req.highlight_gain <= MAX_HIGHLIGHT_GAIN):
        raise InvalidInput(f"highlight_gain must lie in 0..{MAX_HIGHLIGHT_GAIN:g} (0 or 1: off; 8 to 32 makes a sun "
                           f"that casts shadows), got {req.highlight_gain}")
    return req


DEFAULT_CONTROL_SCALE = 1.0
DEPTH_FAMILY = "depth"                       # Stable Diffusion 2 depth: depth-conditioned by itself


def project_request(request: scene_pb2.ProjectTextureRequest) -> scene_pb2.ProjectTextureRequest:
    """A checked copy of a projection request with its defaults filled in: the settings (their width
    and height are unused, each view has its own), each view's camera and size, its depth artifact."""
    from inference_server.scene.generate import GenerateSettings, check_settings
    from keygrip.projection import Camera

    req = scene_pb2.ProjectTextureRequest()
    req.CopyFrom(request)
    if not req.views:
        raise InvalidInput("no views: send at least one CameraView (a camera with the scene's depth rendered "
                           "through it)")
    req.settings.width = req.settings.height = 0
    req.settings.CopyFrom(filled(req.settings))
    req.settings.width = req.settings.height = 0  # not used: views carry their own size
    req.control_scale = req.control_scale or DEFAULT_CONTROL_SCALE
    if not 0.0 < req.control_scale <= 5.0 or math.isnan(req.control_scale):
        raise InvalidInput(f"control_scale must lie in 0..5 (how strongly the depth steers the image; 1 is usual), "
                           f"got {req.control_scale}")
    s = req.settings
    if s.seed + len(req.views) > 2**63:  # view k's seed is seed + k, an int64 in the result
        raise InvalidInput(f"seed {s.seed} is too large for {len(req.views)} views (view k uses seed + k): "
                           f"pick one below {2**63 - len(req.views)}")
    for k, view in enumerate(req.views):
        view.name = view.name or f"view {k + 1}"
        try:
            Camera.from_proto(view)
            check_settings(GenerateSettings(prompt=s.prompt, negative_prompt=s.negative_prompt, seed=s.seed + k,
                                            steps=s.steps, guidance=s.guidance, width=view.width,
                                            height=view.height, scheduler=s.scheduler))
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        except InvalidInput as exc:
            raise InvalidInput(f"view {view.name!r}: {exc.message}") from None
        if not view.depth_artifact_id:
            raise InvalidInput(f"view {view.name!r} has no depth_artifact_id: render the scene's depth through the "
                               "camera and upload it (.npy or one-channel EXR)")
    return req


def check_project_models(registry: ModelRegistry, model: str, controlnet: str) -> None:
    """The model (and ControlNet) can project: an SD 2 depth model alone, or an SD 1.x/2.x/XL model
    with a depth ControlNet. NotFound for an unknown name, FailedPrecondition (MODEL_UNSUITED) saying
    what to pick."""
    entry = registry.get(model)
    if entry.family == "controlnet":
        raise unsuited(model, f"model {model!r} is a ControlNet: give it as the controlnet, beside an SD 1.x/2.x/XL "
                              "model as the model")
    if not controlnet:
        if entry.family == DEPTH_FAMILY:
            return
        if entry.family in CONTROLNET_BASES:
            raise unsuited(model, f"model {model!r} ({entry.family}) needs a depth ControlNet to follow the scene's "
                                  "depth: register one (keygrip models add PATH --name NAME) and pass it as the "
                                  "controlnet, or use a Stable Diffusion 2 depth model")
        raise unsuited(model, f"model {model!r} ({entry.family}) cannot project a texture: use a Stable Diffusion 2 "
                              "depth model, or an SD 1.x/2.x/XL model with a depth ControlNet")
    if entry.family == DEPTH_FAMILY:
        raise unsuited(model, f"model {model!r} is a depth model and follows the depth by itself: leave the "
                              "controlnet empty, or pick an SD 1.x/2.x/XL model to go with it")
    registry.controlnet_base(model)
    net = registry.controlnet(controlnet)
    if "scene.project" not in net.capabilities:
        raise unsuited(controlnet, f"ControlNet {controlnet!r} is not known to be a depth ControlNet (its name and "
                                   "path do not say depth): use a depth ControlNet, or set family = \"controlnet\" in "
                                   "its [models] table of the server's TOML if it is one")
