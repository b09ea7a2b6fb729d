"""A person matte per frame: segment, refine the edges against the image, stabilise over time.

The chain runs at a working size (the plate's long side scaled to MatteSettings.working_size) except
for the last step of the refinement, which is at the plate's size:

1. MediaPipe Selfie Segmentation (general model, bundled in the mediapipe wheel), or a learned
   segmenter from the model manager (segmenters.py, MatteSettings.model): a coarse person
   probability at the working size; by default the mean of the frame's and its mirror image's (the
   model's errors are not mirror-symmetric, so averaging cancels part of them). With stabilisation
   on, the segmenter sees one of the two views a frame, alternating, and the other comes from the
   previous frame, carried along the flow.
2. Temporal stabilisation (optional): the previous frame's stabilised matte is warped into this frame
   along DIS optical flow and blended with this frame's, w * warped + (1 - w) * raw; w is 0 where
   the flow fails a forward-backward check (a pixel that does not come back to where it started is
   occluded or moved too fast) or leads outside the image, so the chain falls back to the raw matte
   there. The state resets at a gap in the numbering.
3. Band matting (optional, band_matting.py): closed-form matting on a thin band around the matte's
   edge, at the working size; the stabiliser keeps the matte from before it (what the next frame
   blends with is the segmenter's, not a solve that may have wandered).
4. Edge refinement (optional): the fast guided filter (He and Sun, 2015): the guided filter's linear
   coefficients (q = a * I + b in every window, I the plate's luma) are solved at the working size
   and upsampled, then applied to the full-size luma, so edges follow the plate's own edges at full
   resolution for the price of two resizes. OpenCV's ximgproc.guidedFilter solves at one size only,
   which at 1080p costs more than the whole chain may.

The result is alpha in 0..1, float32, at the plate's size.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import cv2
import numpy as np

from inference_server.compositing.band_matting import band_matting
from inference_server.compositing.options import BAND_MATTING, MatteOptions


def working_shape(height: int, width: int, working_size: int) -> tuple[int, int]:
    """(h, w) with the longer side at most working_size (never enlarged)."""
    s = min(1.0, working_size / max(height, width))
    return max(1, round(height * s)), max(1, round(width * s))


def downsize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """rgb at (height, width): exact 2x box averages while it is at least twice as large, then
    bilinear (a 1080p frame in about half the CPU time of one INTER_AREA resize, without aliasing)."""
    while rgb.shape[0] >= 2 * height and rgb.shape[1] >= 2 * width:
        rgb = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if rgb.shape[:2] == (height, width):
        return rgb
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32 luma in 0..1 of a uint8 RGB image (the guide and the flow's input)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1.0 / 255.0)


def fast_guided_filter(guide_full: np.ndarray, guide_small: np.ndarray, p_small: np.ndarray, radius_small: int,
                       epsilon: float) -> np.ndarray:
    """The guided filter of p with guide I, coefficients solved at the small size and applied at full.

    In every (2r+1)^2 window q = a * I + b with a = cov(I, p) / (var(I) + eps), b = mean(p) - a mean(I);
    a and b are averaged over the windows covering a pixel, upsampled bilinearly, and applied to the
    full-size guide. guide_full is uint8 luma (0..255; the full-size pass is the costly one, and a
    float copy of a 1080p frame alone costs a few ms); guide_small float32 in 0..1.
    """
    k = (2 * radius_small + 1, 2 * radius_small + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide_small), box(p_small)
    cov_ip = box(guide_small * p_small) - mean_i * mean_p
    var_i = box(guide_small * guide_small) - mean_i * mean_i
    a = cov_ip / (var_i + np.float32(epsilon))
    b = mean_p - a * mean_i
    h, w = guide_full.shape
    a_full = cv2.resize(box(a), (w, h), interpolation=cv2.INTER_LINEAR)
    b_full = cv2.resize(box(b), (w, h), interpolation=cv2.INTER_LINEAR)
    q = cv2.multiply(a_full, guide_full, dtype=cv2.CV_32F, scale=1.0 / 255.0)
    return np.asarray(cv2.add(q, b_full, dst=q))


class FlowStabilizer:
    """Blends each new frame's map (a matte, a depth map) with the previous result warped along the
    optical flow, where the flow is trustworthy. Works on working-size float32 maps."""

    def __init__(self, weight: float, tolerance: float) -> None:
        self.weight = float(weight)
        self.tolerance = float(tolerance)
        # Measured (scripts/eval_matte.py): the ultrafast preset gives the FAST preset's dtSSD and
        # MSE at about a third of its cost.
        self._dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._prev_gray: np.ndarray | None = None
        self._prev: np.ndarray | None = None
        self._grid: list[np.ndarray] | None = None
        self._maps: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.float32), np.zeros(0, np.float32))
        self.reliable_fraction = 1.0  # share of pixels the last step blended

    def reset(self) -> None:
        self._prev_gray = None
        self._prev = None

    def warp_previous(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The previous result warped into this frame and the mask (bool) of pixels whose flow is
        reliable; None on a first frame."""
        if self._prev_gray is None or self._prev is None:
            return None
        cur8 = _u8(gray)
        prev8 = _u8(self._prev_gray)
        h, w = gray.shape
        if self._grid is None or self._grid[0].shape != (h, w):
            self._grid = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        gx, gy = self._grid
        back = np.asarray(self._dis.calc(cur8, prev8, np.zeros((h, w, 2), np.float32)))  # this frame -> previous
        fwd = np.asarray(self._dis.calc(prev8, cur8, np.zeros((h, w, 2), np.float32)))   # previous -> this frame
        map_x, map_y = gx + back[..., 0], gy + back[..., 1]
        warped = cv2.remap(self._prev, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        fwd_there = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = np.hypot(back[..., 0] + fwd_there[..., 0], back[..., 1] + fwd_there[..., 1])
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        self._maps = (map_x, map_y)
        return warped, (err < self.tolerance) & inside

    def carry(self, previous: np.ndarray) -> np.ndarray:
        """Another map of the previous frame warped into this one along the flow warp_previous found last."""
        map_x, map_y = self._maps
        return np.asarray(cv2.remap(previous, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))

    def step(self, gray: np.ndarray, current: np.ndarray, warp: tuple[np.ndarray, np.ndarray] | None = None
             ) -> np.ndarray:
        """This frame's stabilised map (and the state for the next frame). warp: warp_previous(gray),
        when the caller already has it."""
        if warp is None:
            warp = self.warp_previous(gray)
        if warp is None:
            out = current
            self.reliable_fraction = 0.0
        else:
            warped, reliable = warp
            w = np.where(reliable, np.float32(self.weight), np.float32(0.0))
            out = current + w * (warped - current)
            self.reliable_fraction = float(reliable.mean())
        self._prev_gray, self._prev = gray, out.astype(np.float32, copy=False)
        return self._prev


def _u8(gray: np.ndarray) -> np.ndarray:
    return (gray * 255.0 + 0.5).astype(np.uint8)


class PersonSegmenter(Protocol):
    """The chain's first stage: a person probability map (float32, 0..1) at the size of the RGB image given."""

    def __call__(self, rgb: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


class Segmenter:
    """MediaPipe Selfie Segmentation (the general 256x256 model bundled in the wheel), as a person
    probability map at the size of the image given."""

    def __init__(self) -> None:
        import mediapipe as mp  # heavy: imported where the matte runs

        self._graph: Any = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        mask = self._graph.process(np.ascontiguousarray(rgb)).segmentation_mask
        return np.asarray(mask, dtype=np.float32)

    def close(self) -> None:
        self._graph.close()


class MatteChain:
    """The matte of each frame of a clip in order (see the module's docstring). reset() at a cut or gap."""

    def __init__(self, options: MatteOptions, segmenter: PersonSegmenter | None = None) -> None:
        self.options = options
        self.segmenter = segmenter or Segmenter()
        self.stabilizer = FlowStabilizer(options.temporal_weight, options.flow_tolerance)
        # The segmenter (MediaPipe's graph, or torch) waits for its result without the GIL, and the
        # optical flow does not need it: the two run side by side (bench_matte.py: about 8 ms a frame
        # less at 1080p on two cores).
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="matte-segmenter")
        self._frame = 0
        self._last_view: np.ndarray | None = None  # the previous frame's segmenter map (alternating mirror)

    def reset(self) -> None:
        self.stabilizer.reset()
        self._last_view = None

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W) float32 alpha in 0..1 of one uint8 RGB frame."""
        o = self.options
        h, w = rgb.shape[:2]
        sh, sw = working_shape(h, w, o.working_size)
        small = downsize(rgb, sh, sw)
        # With the flow at hand, mirror averaging alternates: the segmenter sees the frame on even
        # frames and its mirror image on odd ones, and each is averaged with the other view from the
        # previous frame carried along the flow (where the flow is reliable): one segmenter call a
        # frame instead of two, for MSE 0.655x -> 0.662x of bare (scripts/eval_matte.py, 20 frames).
        alternate = o.mirror and o.stabilize
        view = "mirror" if alternate and self._frame % 2 else "plain" if alternate or not o.mirror else "both"
        segmenting = self._pool.submit(self._segment, small, view)
        gray_small = luma(small)
        warp = self.stabilizer.warp_previous(gray_small) if o.stabilize else None
        raw = segmenting.result()
        if alternate:
            seen = raw
            if warp is not None and self._last_view is not None:
                raw = np.where(warp[1], 0.5 * (seen + self.stabilizer.carry(self._last_view)), seen)
            self._last_view = seen
        self._frame += 1
        matte = self.stabilizer.step(gray_small, raw, warp) if o.stabilize else raw
        if o.band_matting:
            matte = band_matting(small, matte, BAND_MATTING)
        if o.refine:
            radius = o.refine_radius or max(1, round(max(h, w) / 240))
            radius_small = max(1, round(radius * sw / w))
            full = fast_guided_filter(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), gray_small, matte, radius_small,
                                      o.refine_epsilon)
        else:
            full = cv2.resize(matte, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(full, 0.0, 1.0, out=full)

    def _segment(self, small: np.ndarray, view: str) -> np.ndarray:
        """The segmenter's map of the frame ("plain"), of its mirror image flipped back ("mirror"), or the
        mean of the two ("both")."""
        if view == "mirror":
            return np.ascontiguousarray(self.segmenter(small[:, ::-1])[:, ::-1])
        raw = self.segmenter(small)
        if view == "both":
            raw = 0.5 * (raw + self.segmenter(small[:, ::-1])[:, ::-1])
        return raw

    def close(self) -> None:
        self._pool.shutdown()
        self.segmenter.close()
