"""Filling what a clean plate never saw with a diffusers inpainting model (StableDiffusionInpaintPipeline).

Only the coverage hole changes; every pixel the plate saw is kept exactly:

1. The hole's bounding box, grown by a margin of seen background for context, is cut out and scaled so
   its long side is the model's native size (sample_size x the VAE's factor: 512 for SD 1.5), both
   sides multiples of 8.
2. The model repaints the hole (grown by a few pixels, so that its edge is repainted with context on
   both sides) with an empty prompt and no classifier-free guidance (an empty prompt against an empty
   negative prompt would double the cost for nothing).
3. Its pixels are composited inside the hole only, feathered: the weight rises from 0 at the hole's
   edge to 1 a few pixels in, over the classical fill (OpenCV's Telea, which continues the edge's
   colours), so no seam shows where the model's colours differ from the plate's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from inference_server.errors import ResourceExhausted

SEED = 0
_EDGE_GROW = 3  # pixels the mask given to the model is grown by


def _crop_box(unseen: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the hole's bounding box grown by a margin (a quarter of its size, at least 16 px)."""
    ys, xs = np.nonzero(unseen)
    h, w = unseen.shape
    y0, y1, x0, x1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    margin = max(16, (max(y1 - y0, x1 - x0) + 3) // 4)
    return max(0, y0 - margin), min(h, y1 + margin), max(0, x0 - margin), min(w, x1 + margin)


def model_size(pipe: Any, height: int, width: int) -> tuple[int, int]:
    """(h, w) the model runs at for a crop: the long side at its native size, multiples of 8."""
    native = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
    s = native / max(height, width)
    return max(8, round(height * s / 8) * 8), max(8, round(width * s / 8) * 8)


def feather(unseen: np.ndarray, width: float) -> np.ndarray:
    """(H, W) float32 weight of the model's pixels: 0 outside the hole, rising to 1 `width` px inside it."""
    dist = cv2.distanceTransform(unseen.astype(np.uint8), cv2.DIST_L2, 3)  # to the nearest seen pixel
    return np.clip(dist / np.float32(width), 0.0, 1.0).astype(np.float32)


def fill_with_model(pipe: Any, rgb: np.ndarray, unseen: np.ndarray, *, steps: int, model: str,
                    check_cancelled: Callable[[], None]) -> np.ndarray:
    """rgb (H, W, 3 uint8, the hole already filled classically) with the hole repainted by the model.
    ResourceExhausted (naming what to change) when the GPU runs out of memory."""
    import torch
    from PIL import Image

    if not unseen.any():
        return rgb
    y0, y1, x0, x1 = _crop_box(unseen)
    crop, hole = rgb[y0:y1, x0:x1], unseen[y0:y1, x0:x1]
    mh, mw = model_size(pipe, y1 - y0, x1 - x0)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _EDGE_GROW + 1, 2 * _EDGE_GROW + 1))
    mask = cv2.dilate(hole.astype(np.uint8) * 255, kernel)
    image = Image.fromarray(cv2.resize(crop, (mw, mh), interpolation=cv2.INTER_AREA))
    mask_image = Image.fromarray(cv2.resize(mask, (mw, mh), interpolation=cv2.INTER_NEAREST))

    def step_end(_pipe: Any, _step: int, _timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        check_cancelled()
        return kwargs

    device = pipe.unet.device
    try:
        out = pipe(prompt="", image=image, mask_image=mask_image, height=mh, width=mw, num_inference_steps=steps,
                   guidance_scale=1.0, generator=torch.Generator(device=device).manual_seed(SEED),
                   output_type="np", callback_on_step_end=step_end).images[0]
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise ResourceExhausted(f"out of GPU memory inpainting the clean plate's unseen pixels with {model!r} at "
                                f"{mw}x{mh}: close other GPU programs, or set classical_fill (OpenCV's "
                                "inpainting, no GPU)", reason="OUT_OF_MEMORY", metadata={"model": model}) from None
    painted = cv2.resize(np.clip(np.asarray(out, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8),
                         (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    weight = feather(hole, max(2.0, max(rgb.shape[:2]) / 200))[..., None]
    result = rgb.copy()
    blended = crop.astype(np.float32) + weight * (painted.astype(np.float32) - crop.astype(np.float32))
    result[y0:y1, x0:x1] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    # Seen pixels exactly as they were (the weight is 0 there; rounding must not move them either).
    result[~unseen] = rgb[~unseen]
    return result
