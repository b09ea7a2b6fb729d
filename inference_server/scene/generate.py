"""Generation core: seamless textures and 2:1 equirectangular worlds from a loaded diffusers pipeline.

Pure functions on a pipeline the worker already holds (see inference_server/models): they check the
settings, run the pipeline with a per-step callback that reports progress with a small preview and
checks for cancellation, and return float32 sRGB pixels in 0..1 as an (H, W, 3) array.

- Reproducible: the initial noise comes from a CPU torch.Generator seeded with the settings' seed, so
  the same settings on the same machine and device give the same bytes.
- Cancel: ctx.check_cancelled() runs after every denoising step; its JobCancelled leaves the
  pipeline call there (within one step, before the VAE decode), then what the run took is freed.
- Out of GPU memory is ResourceExhausted saying what to lower.

This module imports torch and diffusers only inside the functions that run a pipeline, so that
GenerateSettings and check_settings can be used where torch must not be imported (the gRPC front).
Height and normal maps are not made here yet.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from inference_server.errors import InvalidInput, ResourceExhausted
from inference_server.jobs.context import JobContext

if TYPE_CHECKING:
    import torch

MAX_SIDE = 4096
MAX_STEPS = 500
PREVIEW_SIDE = 64
PREVIEWS_PER_RUN = 10  # about this many previews in a run, and always one for the last step

# Scheduler names a request may give (lower case), and the diffusers class each one makes; extra
# config is applied on top of the pipeline's own scheduler config. "" keeps the pipeline's scheduler.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
}

# A fixed linear map from SD 1.x/2.x latents (4 channels) to RGB in -1..1, good enough for a preview
# without running the VAE (the widely used approximation of the SD 1.5 VAE decoder).
_LATENT_RGB = ((0.3512, 0.2297, 0.3227),
               (0.3250, 0.4974, 0.2350),
               (-0.2829, 0.1762, 0.2721),
               (-0.2120, -0.2616, -0.4567))


@dataclass(frozen=True)
class GenerateSettings:
    prompt: str
    negative_prompt: str = ""
    seed: int = 0
    steps: int = 25
    guidance: float = 7.0
    width: int = 512
    height: int = 512
    scheduler: str = ""  # "" keeps the pipeline's own; otherwise a key of SCHEDULERS


def check_settings(s: GenerateSettings, *, multiple_of: int = 8, world: bool = False) -> None:
    """InvalidInput, with what to change, for settings no pipeline can run. world=True also requires
    the 2:1 shape of an equirectangular panorama (width = 2 x height)."""
    if not s.prompt.strip():
        raise InvalidInput("the prompt is empty: describe what to generate (for example 'weathered red brick wall')")
    for name, value in (("width", s.width), ("height", s.height)):
        if value <= 0 or value % multiple_of:
            near = max(multiple_of, int(value / multiple_of + 0.5) * multiple_of)
            raise InvalidInput(f"{name} {value} must be a positive multiple of {multiple_of}: try {near}")
        if value > MAX_SIDE:
            raise InvalidInput(f"{name} {value} is larger than {MAX_SIDE}: generate smaller and upscale")
    if world and s.width != 2 * s.height:
        raise InvalidInput(f"a world is a 2:1 equirectangular panorama (width = 2 x height), not {s.width}x{s.height}: "
                           f"try {2 * s.height}x{s.height}")
    if not 1 <= s.steps <= MAX_STEPS:
        raise InvalidInput(f"steps must be between 1 and {MAX_STEPS}, not {s.steps}: 20 to 30 is usual")
    if not math.isfinite(s.guidance) or s.guidance < 0:
        raise InvalidInput(f"guidance must be a number of 0 or more, not {s.guidance}: 5 to 8 is usual")
    if not 0 <= s.seed < 2**64:
        raise InvalidInput(f"seed must be between 0 and 2^64 - 1, not {s.seed}")
    if s.scheduler and s.scheduler.lower() not in SCHEDULERS:
        raise InvalidInput(f"unknown scheduler {s.scheduler!r}: use one of {', '.join(SCHEDULERS)}, "
                           "or leave it empty for the model's own")


def generate_texture(pipe: Any, s: GenerateSettings, ctx: JobContext, *, tile: bool = True,
                     init_image: np.ndarray | None = None, strength: float = 0.75) -> np.ndarray:
    """A (height, width, 3) float32 sRGB image in 0..1; seamlessly tileable in X and Y when `tile`.

    With `init_image` ((H, W, 3), float in 0..1 or uint8, any size: resized to the settings' size) the
    pipeline starts from it (img2img), keeping about 1 - strength of it; the text-to-image pipeline is
    turned into its img2img sibling sharing the same components when needed.
    """
    check_settings(s, multiple_of=_multiple_of(pipe, tile=tile))
    if init_image is not None and not 0.0 < strength <= 1.0:
        raise InvalidInput(f"strength must be more than 0 and at most 1, not {strength}")
    return _run(pipe, s, ctx, axes="xy" if tile else None, init_image=init_image, strength=strength)


def generate_world(pipe: Any, s: GenerateSettings, ctx: JobContext) -> np.ndarray:
    """A (height, 2 * height, 3) float32 sRGB equirectangular panorama in 0..1, periodic in X only
    (its left and right edges meet; the poles do not wrap)."""
    check_settings(s, multiple_of=_multiple_of(pipe, tile=True), world=True)
    from inference_server.scene.tiling import check_tileable

    check_tileable(pipe, fix="a world wraps around in X, so pick an SD 1.x/2.x/XL model")
    return _run(pipe, s, ctx, axes="x", init_image=None, strength=1.0)


def _multiple_of(pipe: Any, *, tile: bool) -> int:
    """The size images must be a multiple of: 8 (the VAE's scale) or, when tiling, the VAE's scale times
    the UNet's own downsampling (64 for SD 1.x/2.x, 32 for SDXL), so that every level of the UNet sees a
    whole number of periods and the wrap-around is exact."""
    vae_scale = int(getattr(pipe, "vae_scale_factor", 8))
    if not tile:
        return max(8, vae_scale)
    unet = getattr(pipe, "unet", None)
    levels = len(getattr(getattr(unet, "config", None), "block_out_channels", ())) - 1
    return max(8, vae_scale * 2 ** max(levels, 0))


def _run(pipe: Any, s: GenerateSettings, ctx: JobContext, *, axes: str | None,
         init_image: np.ndarray | None, strength: float) -> np.ndarray:
    kwargs: dict[str, Any] = {}
    if init_image is not None:
        pipe = _img2img(pipe)
        kwargs["image"] = _fit(init_image, s.width, s.height)
        kwargs["strength"] = strength
    else:
        kwargs["width"], kwargs["height"] = s.width, s.height
    return run_pipeline(pipe, s, ctx, kwargs, axes=axes)


def run_pipeline(pipe: Any, s: GenerateSettings, ctx: JobContext, kwargs: dict[str, Any], *,
                 axes: str | None = None, callback: StepCallback | None = None) -> np.ndarray:
    """One pipeline call with the settings' prompt, steps, guidance, seed (a CPU generator) and
    scheduler, progress and cancel per step (`callback`, by default a plain StepCallback), and what a
    stopped or failed run took given back; `kwargs` are the pipeline's own inputs (size, images).
    Returns the first image as (H, W, 3) float32 sRGB in 0..1."""
    import torch

    from inference_server.scene.tiling import seamless

    generator = torch.Generator("cpu").manual_seed(s.seed)
    callback = callback or StepCallback(ctx, s.steps)
    try:
        with _scheduler(pipe, s.scheduler), (seamless(pipe, axes) if axes else nullcontext()), torch.inference_mode():
            out = pipe(prompt=s.prompt, negative_prompt=s.negative_prompt or None, num_inference_steps=s.steps,
                       guidance_scale=s.guidance, generator=generator, output_type="np",
                       callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents"], **kwargs)
    except torch.cuda.OutOfMemoryError as exc:
        _free_memory()
        raise ResourceExhausted(
            f"out of GPU memory generating {s.width}x{s.height} with {s.steps} steps: lower the size "
            f"(try {_half(s.width)}x{_half(s.height)}), the steps or the batch, or close what else uses the GPU"
        ) from exc
    except BaseException:
        _free_memory()  # cancelled or failed: give back what the run took
        raise
    return np.ascontiguousarray(out.images[0], dtype=np.float32)


def _half(side: int) -> int:
    return max(8, side // 2 // 8 * 8)


# What a StepCallback may do to the latents after each step (pipe, step index, latents -> latents).
LatentsHook = Callable[[Any, int, "torch.Tensor"], "torch.Tensor"]


class StepCallback:
    """The pipeline's callback_on_step_end: progress with a preview, then the cancel check.

    A job that runs the pipeline several times (one run per camera view) reports run `part` of
    `parts` so that one progress bar covers them all; `hook` may replace the latents after each step
    (what a projection keeps from earlier views), before the preview is made of them."""

    def __init__(self, ctx: JobContext, steps: int, *, part: int = 0, parts: int = 1, message: str = "",
                 hook: LatentsHook | None = None) -> None:
        self.ctx = ctx
        self.steps = steps
        self.part, self.parts, self.message = part, parts, message
        self.hook = hook
        self.start = time.monotonic()

    def __call__(self, pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        total = int(getattr(pipe, "_num_timesteps", 0) or self.steps)
        done = i + 1
        out: dict[str, Any] = {}
        if self.hook is not None:
            out["latents"] = kwargs["latents"] = self.hook(pipe, i, kwargs["latents"])
        every = max(1, total // PREVIEWS_PER_RUN)
        preview = _preview_png(kwargs["latents"]) if done % every == 0 or done == total else b""
        elapsed = time.monotonic() - self.start
        self.ctx.progress("denoise", self.part * total + done, self.parts * total, self.message,
                          fps=done / elapsed if elapsed > 0 else 0.0, preview_png=preview)
        # JobCancelled leaves the pipeline call at once, before the steps left and the VAE decode.
        self.ctx.check_cancelled()
        return out


def _preview_png(latents: torch.Tensor) -> bytes:
    """A small PNG of the latents (first of the batch) through a fixed linear latent -> RGB map."""
    import cv2
    import torch
    from torch.nn import functional as nnf

    z = latents[:1].detach().float().cpu()
    if z.shape[1] == len(_LATENT_RGB):
        rgb = torch.einsum("bchw,cr->brhw", z, torch.tensor(_LATENT_RGB))
    else:  # another latent space: show its first channels, normalised
        rgb = z[:, :3] if z.shape[1] >= 3 else z[:, :1].expand(-1, 3, -1, -1)
        rgb = rgb / rgb.abs().amax().clamp(min=1e-6)
    h, w = rgb.shape[-2:]
    scale = PREVIEW_SIDE / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    rgb = nnf.interpolate(rgb, size=size, mode="bilinear", align_corners=False)
    pixels = ((rgb[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    ok, data = cv2.imencode(".png", np.ascontiguousarray(pixels[:, :, ::-1]))
    return bytes(data) if ok else b""


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """An init image as (height, width, 3) float32 in 0..1."""
    import torch
    from torch.nn import functional as nnf

    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise InvalidInput(f"the init image must be RGB or RGBA pixels (H, W, 3 or 4), not shape {a.shape}")
    a = a[:, :, :3].astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0)
    if a.shape[:2] != (height, width):
        t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]
        t = nnf.interpolate(t, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        a = t[0].permute(1, 2, 0).numpy()
    return np.clip(a, 0.0, 1.0)


def _img2img(pipe: Any) -> Any:
    """The pipeline, or its image-to-image sibling sharing the same components."""
    import inspect

    params = inspect.signature(pipe.__call__).parameters
    if "image" in params and "strength" in params:
        return pipe
    from diffusers import AutoPipelineForImage2Image

    try:
        img2img = AutoPipelineForImage2Image.from_pipe(pipe)
    except (ValueError, KeyError) as exc:
        raise InvalidInput(f"{type(pipe).__name__} cannot start from an init image: leave the init image out "
                           "or pick an SD 1.x/2.x/XL model") from exc
    img2img.set_progress_bar_config(disable=True)
    return img2img


@contextmanager
def _scheduler(pipe: Any, name: str) -> Iterator[None]:
    """The named scheduler in place of the pipeline's own while inside (configured from it)."""
    if not name:
        yield
        return
    import diffusers

    class_name, extra = SCHEDULERS[name.lower()]
    own = pipe.scheduler
    pipe.scheduler = getattr(diffusers, class_name).from_config(own.config, **extra)
    try:
        yield
    finally:
        pipe.scheduler = own


def _free_memory() -> None:
    """Give back what a stopped or failed run held: Python garbage, then the CUDA cache."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

