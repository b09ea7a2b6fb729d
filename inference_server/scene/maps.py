"""Height and normal maps derived from a generated texture, for a material's bump and normal inputs.

A diffusion model paints albedo and shading together; the classical way texture tools (Materialize,
Substance's "from image") get relief from such an image is taken here: the luminance, with its slow
lighting gradients removed by a wide high-pass, is the height, and the normal map is the height's
slope. On a tileable texture every filter wraps around (scipy.ndimage mode="wrap"), so the maps tile
exactly as the texture does; otherwise borders are reflected.

Normal maps are tangent space in the OpenGL convention Blender uses: red is +X (right), green +Y (up
the image), blue out of the surface, each encoded as (n + 1) / 2.
"""

from __future__ import annotations

import numpy as np

from inference_server.scene.exr import srgb_to_linear

# Rec. 709 luminance weights of linear RGB.
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def height_map(rgb: np.ndarray, *, periodic: bool, detail: float = 1.0) -> np.ndarray:
    """(H, W) float32 height in 0..1 (white is high) from an (H, W, 3) sRGB image in 0..1.

    detail: the blur, in pixels, that takes the image's grain out before the height is read (at 512 px
    about 1). The high-pass keeps shapes up to about an eighth of the image's smaller side.
    """
    from scipy import ndimage

    mode = "wrap" if periodic else "reflect"
    luma = srgb_to_linear(rgb) @ _LUMA
    fine = ndimage.gaussian_filter(luma, detail, mode=mode) if detail > 0 else luma
    broad = ndimage.gaussian_filter(luma, max(2.0, min(luma.shape) / 8), mode=mode)
    h = fine - broad
    lo, hi = float(h.min()), float(h.max())
    if hi - lo < 1e-8:  # a flat image has no relief
        return np.full(h.shape, 0.5, dtype=np.float32)
    # Stretched to the full range, not clipped: clipping would flatten the peaks into plateaus.
    return ((h - lo) / (hi - lo)).astype(np.float32)


def normal_map(height: np.ndarray, *, periodic: bool, strength: float = 4.0) -> np.ndarray:
    """(H, W, 3) float32 tangent-space normals encoded in 0..1 (OpenGL: +Y up the image) from a height
    map in 0..1. strength: how far white stands above black, in pixels of the image; more is steeper."""
    from scipy import ndimage

    mode = "wrap" if periodic else "reflect"
    # Sobel weights sum to 8 across its three rows: / 8 gives the slope per pixel.
    d_col = ndimage.sobel(height, axis=1, mode=mode) / 8.0
    d_row = ndimage.sobel(height, axis=0, mode=mode) / 8.0
    # Up the image is -row: the surface tilts away from where it rises.
    n = np.stack([-strength * d_col, strength * d_row, np.ones_like(height)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return ((n + 1.0) * 0.5).astype(np.float32)
