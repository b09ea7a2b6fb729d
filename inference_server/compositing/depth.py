"""Relative depth per frame from a depth estimator (Depth Anything through transformers), stabilised.

Depth Anything predicts relative inverse depth (disparity, larger is nearer) up to an unknown scale and
shift that changes from frame to frame, which is what makes per-frame depth flicker. Here:

1. The first frame's disparity is normalised so that its 2nd and 98th percentiles become 1 and 0.
2. Every later frame's disparity is fitted (least squares, scale and shift) to the previous stabilised
   frame warped into it along the optical flow, over the pixels whose flow passes the forward-backward
   check; so one scale holds for the whole shot.
3. The warped previous frame is blended in where the flow is reliable (matte.FlowStabilizer).

What is written is 1 - that normalised disparity: it grows with distance (what a Defocus or fog node
takes as Z) and is about 0 at the near and 1 at the far end of the first frame; it is not metric.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from inference_server.compositing.matte import FlowStabilizer, luma
from inference_server.errors import ResourceExhausted

_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)  # the ImageNet statistics DINOv2 was trained with
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_PATCH = 14


def model_shape(height: int, width: int, working_size: int) -> tuple[int, int]:
    """(h, w) for the model: the longer side working_size, both multiples of the ViT's 14-pixel patch."""
    s = working_size / max(height, width)
    return (max(_PATCH, round(height * s / _PATCH) * _PATCH), max(_PATCH, round(width * s / _PATCH) * _PATCH))


def affine_match(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(scale, shift) taking x onto y where both are noisy: the reduced major axis (scale = the ratio of
    the spreads, signed by the correlation). Least squares of y on x would shrink the scale by the share of
    x's variance that is noise, and chained frame to frame that shrinkage compounds into a drift."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    sx, sy = float(x64.std()), float(y64.std())
    if sx <= 1e-12:
        return 1.0, float(y64.mean() - x64.mean())
    corr = float(np.mean((x64 - x64.mean()) * (y64 - y64.mean()))) / (sx * max(sy, 1e-12))
    scale = (sy / sx) * (1.0 if corr >= 0 else -1.0)
    return scale, float(y64.mean() - scale * x64.mean())


def _smoothed_pairs(x: np.ndarray, y: np.ndarray, reliable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y low-passed over their reliable pixels (normalised convolution), where most of each pixel's
    neighbourhood is reliable: the model's pixel noise averages out before the fit, which would
    otherwise count it as signal on one side and not the other."""
    rel = reliable.astype(np.float32)
    sigma = max(1.0, 0.02 * max(x.shape))
    weight = cv2.GaussianBlur(rel, (0, 0), sigma)
    ok = reliable & (weight > 0.5)
    if int(ok.sum()) < 16:
        return x[reliable], y[reliable]
    xs = cv2.GaussianBlur(x * rel, (0, 0), sigma) / np.maximum(weight, 1e-6)
    ys = cv2.GaussianBlur(y * rel, (0, 0), sigma) / np.maximum(weight, 1e-6)
    return xs[ok], ys[ok]


class DepthChain:
    """Stabilised relative depth of each frame of a clip in order; reset() at a gap."""

    def __init__(self, net: Any, working_size: int, *, stabilize: bool, weight: float, tolerance: float = 1.0,
                 name: str = "depth model") -> None:
        import torch

        self.torch = torch
        self.net = net
        self.name = name
        self.param = next(net.parameters())
        self.working_size = working_size
        self.stabilize = stabilize
        self.stabilizer = FlowStabilizer(weight, tolerance)
        self._scale: tuple[float, float] | None = None  # the first frame's normalisation, for unstabilised runs

    def reset(self) -> None:
        self.stabilizer.reset()

    def disparity(self, rgb: np.ndarray) -> np.ndarray:
        """The model's raw disparity at the model's size."""
        h0, w0 = rgb.shape[:2]
        h, w = model_shape(h0, w0, self.working_size)
        x = (cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0 - _MEAN) / _STD
        t = self.torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
        try:
            with self.torch.inference_mode():
                out = self.net(pixel_values=t.to(device=self.param.device, dtype=self.param.dtype)).predicted_depth
        except self.torch.cuda.OutOfMemoryError:
            self.torch.cuda.empty_cache()
            raise ResourceExhausted(f"out of GPU memory running depth model {self.name!r} at {w}x{h}: lower the "
                                    "working_size, or close other GPU programs", reason="OUT_OF_MEMORY",
                                    metadata={"model": self.name}) from None
        return np.asarray(out[0].float().cpu().numpy(), dtype=np.float32)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 relative depth (larger is farther) of one uint8 RGB frame."""
        disp = self.disparity(rgb)
        gray = luma(cv2.resize(rgb, (disp.shape[1], disp.shape[0]), interpolation=cv2.INTER_AREA))
        warp = self.stabilizer.warp_previous(gray) if self.stabilize else None
        if warp is not None and int(warp[1].sum()) >= 16:
            warped, reliable = warp
            scale, shift = affine_match(*_smoothed_pairs(disp, warped, reliable))
            disp = disp * np.float32(scale) + np.float32(shift)
        else:
            if self._scale is None or not self.stabilize:
                lo, hi = np.percentile(disp, [2.0, 98.0])
                self._scale = (float(lo), float(hi - lo) if hi > lo else 1.0)
            disp = (disp - self._scale[0]) / np.float32(self._scale[1])
        if self.stabilize:
            disp = self.stabilizer.step(gray, disp.astype(np.float32), warp)
        h, w = rgb.shape[:2]
        return 1.0 - cv2.resize(disp, (w, h), interpolation=cv2.INTER_LINEAR)
