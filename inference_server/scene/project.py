"""Textures painted onto a scene from its cameras: one image per view, generated with the view's
depth as conditioning, each later view keeping what earlier views painted.

Depth conditioning, two ways:
- a depth ControlNet beside an SD 1.x/2.x/XL model (StableDiffusion[XL]ControlNetPipeline sharing the
  model's components, see models/pipelines.py); its control image is the normalised inverse depth,
  near = white, nothing = black: what public depth ControlNets were trained on (MiDaS-style maps);
- a Stable Diffusion 2 depth model (StableDiffusionDepth2ImgPipeline) given the same map as its
  depth_map (so its DPT estimator is never needed), at strength 1.0 from a neutral grey image.

Several views (reproject.py): view k keeps the pixels earlier views painted (coverage) and generates
only the rest. One mechanism for both pipelines: after every denoising step the known region's
latents are replaced by the VAE-encoded reprojected image noised to the next timestep (the
scheduler's add_noise), so that the new part grows out of the kept one; at the end the kept pixels
are composited back exactly, blended into the new ones over a few pixels. A view with nothing left
to generate is not run at all.

View k is generated with seed settings.seed + k at its own width x height. Progress, previews,
cancel, seeds, the scheduler and out of memory are generate.py's (run_pipeline, StepCallback).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inference_server.errors import InvalidInput
from inference_server.jobs.context import JobContext
from inference_server.scene.generate import GenerateSettings, StepCallback, _multiple_of, check_settings, run_pipeline
from inference_server.scene.reproject import ViewGeometry, extend, keep_weights, reproject
from keygrip.projection import Camera, valid_depth
from keygrip.v1 import scene_pb2

if TYPE_CHECKING:
    import torch

_NPY_MAGIC = b"\x93NUMPY"
_EXR_MAGIC = b"\x76\x2f\x31\x01"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, eq=False)
class ProjectedImage:
    """One view's result: image (H, W, 3) float32 sRGB in 0..1, covered (H, W) bool (kept from earlier
    views), and the seed it was generated with."""

    image: np.ndarray
    covered: np.ndarray
    seed: int


# ---- the host's renders ----

def read_view(view: scene_pb2.CameraView, depth_path: Path, mask_path: Path | None) -> ViewGeometry:
    """A checked request view as geometry: its camera, its depth (.npy or one-channel EXR) and the pixels
    to paint (the mask, .npy or 8-bit PNG, where there is depth). InvalidInput naming the view."""
    try:
        camera = Camera.from_proto(view)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    shape = (view.height, view.width)
    depth = _read_depth(depth_path, view.name, shape)
    paint = np.isfinite(depth)
    if not paint.any():
        raise InvalidInput(f"view {view.name!r}: the depth map has no pixel with depth (all 0, negative, inf or NaN): "
                           "render the scene's depth through this camera, with the objects in front of it")
    if mask_path is not None:
        paint &= _read_mask(mask_path, view.name, shape)
        if not paint.any():
            raise InvalidInput(f"view {view.name!r}: the mask covers no pixel with depth: this camera does not see "
                               "the objects to paint; leave it out or aim it at them")
    return ViewGeometry(camera=camera, depth=depth, paint=paint)


def _read_array(path: Path, name: str, what: str, formats: str) -> np.ndarray:
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_NPY_MAGIC):
        try:
            return np.asarray(np.load(path, allow_pickle=False))
        except ValueError as exc:
            raise InvalidInput(f"view {name!r}: the {what} .npy cannot be read without pickle ({exc}): save a plain "
                               "numeric array") from None
    if head.startswith(_EXR_MAGIC) and what == "depth":
        from inference_server.scene.exr import read_exr_channel

        return read_exr_channel(path)
    if head.startswith(_PNG_MAGIC) and what == "mask":
        from PIL import Image

        with Image.open(path) as im:
            if im.mode not in ("1", "L", "P", "RGB", "RGBA", "LA"):
                raise InvalidInput(f"view {name!r}: the mask PNG is {im.mode}: save it as an 8-bit PNG")
            return np.asarray(im.convert("L"))
    raise InvalidInput(f"view {name!r}: the {what} is not {formats}")


def _read_depth(path: Path, name: str, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float64 depth with NaN where there is nothing."""
    depth = _read_array(path, name, "depth", "a .npy or an OpenEXR file")
    if depth.shape != shape:
        raise InvalidInput(f"view {name!r}: the depth map is {_size(depth.shape)}, the camera {shape[1]}x{shape[0]}: "
                           "render the depth at the view's width and height")
    if not np.issubdtype(depth.dtype, np.floating):
        raise InvalidInput(f"view {name!r}: the depth map holds {depth.dtype}, not floats: save linear depth in scene "
                           "units as float32")
    return valid_depth(depth)


def _read_mask(path: Path, name: str, shape: tuple[int, int]) -> np.ndarray:
    mask = _read_array(path, name, "mask", "a .npy or a PNG file")
    if mask.shape != shape:
        raise InvalidInput(f"view {name!r}: the mask is {_size(mask.shape)}, the camera {shape[1]}x{shape[0]}")
    if mask.dtype not in (np.uint8, np.bool_):
        raise InvalidInput(f"view {name!r}: the mask holds {mask.dtype}: save uint8 (0 or 255) or bool")
    return mask != 0


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}" if len(shape) == 2 else f"shaped {shape}"


def control_image(depth: np.ndarray) -> np.ndarray:
    """(H, W) float32 in 0..1 from depth (NaN: nothing): inverse depth normalised over the image, the
    nearest surface white and nothing black (so the farthest surface keeps its outline against empty
    space). A map of one depth everywhere is white."""
    disparity = np.where(np.isfinite(depth), 1.0 / np.where(np.isfinite(depth), depth, 1.0), 0.0)
    lo, hi = float(disparity.min()), float(disparity.max())
    if hi - lo <= 1e-6 * hi:
        return (disparity > 0).astype(np.float32)
    return ((disparity - lo) / (hi - lo)).astype(np.float32)


# ---- generation ----

def project(pipe: Any, views: Sequence[ViewGeometry], names: Sequence[str], s: GenerateSettings, ctx: JobContext, *,
            depth_model: bool, control_scale: float = 1.0) -> list[ProjectedImage]:
    """Generate the views in order, each later one keeping what earlier ones painted. `pipe` is a depth
    model's Depth2Img pipeline (depth_model=True) or a ControlNet pipeline; `s` the request's settings
    (each view gets its own size and seed s.seed + k)."""
    multiple = _multiple_of(pipe, tile=False)
    settings = [dataclasses.replace(s, seed=s.seed + k, width=v.camera.width, height=v.camera.height)
                for k, v in enumerate(views)]
    for name, vs in zip(names, settings, strict=True):
        try:
            check_settings(vs, multiple_of=multiple)
        except InvalidInput as exc:
            raise InvalidInput(f"view {name!r}: {exc.message}") from None
    done: list[ProjectedImage] = []
    for k, (view, name, vs) in enumerate(zip(views, names, settings, strict=True)):
        ctx.check_cancelled()
        known = reproject(view, [(v, p.image) for v, p in zip(views[:k], done, strict=True)]) if done else None
        covered = known.covered if known is not None else np.zeros_like(view.paint)
        new = view.paint & ~covered
        callback = StepCallback(ctx, s.steps, part=k, parts=len(views), message=f"view {name}")
        if new.any():
            kwargs = _conditioning(pipe, view, vs, depth_model=depth_model, control_scale=control_scale)
            if known is not None and covered.any():
                callback.hook = _KeepKnown(extend(known.colours, covered), covered, vs.seed)
            generated = run_pipeline(pipe, vs, ctx, kwargs, callback=callback)
        else:
            ctx.progress("denoise", (k + 1) * s.steps, len(views) * s.steps,
                         f"view {name}: earlier views painted all of it")
            generated = np.zeros((vs.height, vs.width, 3), np.float32)
        if known is not None:
            alpha = keep_weights(covered, view.paint)[..., None]
            generated = alpha * known.colours + (1.0 - alpha) * generated
        done.append(ProjectedImage(image=np.clip(generated, 0.0, 1.0).astype(np.float32), covered=covered,
                                   seed=vs.seed))
    return done


def _conditioning(pipe: Any, view: ViewGeometry, s: GenerateSettings, *, depth_model: bool,
                  control_scale: float) -> dict[str, Any]:
    """The pipeline's inputs that carry the view's depth (and its size)."""
    import torch

    control = control_image(view.depth)
    if depth_model:
        from PIL import Image

        if control.min() == control.max():
            # Depth2Img normalises its depth_map by min and max: a map of one value would divide by zero.
            # One "nothing there" pixel in a corner keeps the rest as given.
            control[0, 0] = 0.0
        return {"image": Image.new("RGB", (s.width, s.height), (128, 128, 128)),
                "depth_map": torch.from_numpy(control)[None], "strength": 1.0}
    image = torch.from_numpy(control)[None, None].expand(1, 3, -1, -1).contiguous()
    return {"image": image, "width": s.width, "height": s.height, "controlnet_conditioning_scale": control_scale}


class _KeepKnown:
    """StepCallback's hook for a later view: after each step, the latents of the kept region become the
    earlier views' image (VAE-encoded once, on the first step) noised to the next timestep, so that the
    generated region grows out of the kept one (blended latent diffusion, as diffusers' inpainting does
    for models without an inpainting UNet)."""

    def __init__(self, colours: np.ndarray, covered: np.ndarray, seed: int) -> None:
        self.colours = colours
        self.covered = covered
        self.seed = seed
        self.known: torch.Tensor | None = None
        self.mask: torch.Tensor | None = None
        self.noise: torch.Tensor | None = None

    def __call__(self, pipe: Any, i: int, latents: torch.Tensor) -> torch.Tensor:
        import torch

        if self.known is None or self.mask is None or self.noise is None:
            self.known, self.mask = self._encode(pipe, latents)
            self.noise = torch.randn(latents.shape, generator=torch.Generator("cpu").manual_seed(self.seed),
                                     dtype=torch.float32).to(latents.device, latents.dtype)
        timesteps = pipe.scheduler.timesteps
        known = self.known
        if i + 1 < len(timesteps):
            known = pipe.scheduler.add_noise(known, self.noise, timesteps[i + 1:i + 2])
        return self.mask * known + (1.0 - self.mask) * latents

    def _encode(self, pipe: Any, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import cv2
        import torch

        h, w = latents.shape[-2:]
        # A latent pixel is kept only when all the image pixels under it are: the rest is generated.
        area = cv2.resize(self.covered.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        mask = torch.from_numpy((area >= 1.0 - 1e-6).astype(np.float32))[None, None]
        vae = pipe.vae
        image = torch.from_numpy(self.colours).permute(2, 0, 1)[None] * 2.0 - 1.0
        # SDXL's VAE overflows in half precision (force_upcast): encode in float32, as its pipelines do.
        upcast = vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
        if upcast:
            vae.to(torch.float32)
        try:
            z = vae.encode(image.to(vae.device, vae.dtype)).latent_dist.mean * vae.config.scaling_factor
        finally:
            if upcast:
                vae.to(torch.float16)
        return z.to(latents.device, latents.dtype), mask.to(latents.device, latents.dtype)
