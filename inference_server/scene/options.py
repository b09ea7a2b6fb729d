"""The one place scene-generation requests are checked and their defaults filled in.

Checked in the gRPC front at submit time (so a bad size or an empty prompt fails before the job is
queued), and again in the worker, which only ever sees requests that passed.
"""

from __future__ import annotations

import math

from inference_server.errors import InvalidInput
from keygrip.v1 import scene_pb2

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
