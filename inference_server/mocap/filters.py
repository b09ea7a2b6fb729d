"""Temporal clean-up of captured signals: gap filling and zero-phase low-pass filtering.

Everything works on arrays whose first axis is time (F, ...) so that a whole clip of landmarks,
root translations or face curves is handled in one call.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from inference_server.motion.clip import FrameFlag

# Cut-off range the user's 0..1 smoothing maps onto, Hz. 12 Hz keeps fast limb motion (Pose2Sim
# filters at 6 Hz by default); 1.5 Hz is a heavy, floaty clean-up.
_CUTOFF_LIGHT_HZ = 12.0
_CUTOFF_HEAVY_HZ = 1.5
_ORDER = 4


def fill_gaps(
    values: np.ndarray, valid: np.ndarray, max_gap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Fill invalid frames of values (F, ...) along time.

    Gaps of at most max_gap frames between two valid frames are linearly interpolated (flag
    INTERPOLATED); longer gaps and the clip's ends hold the last (or first) valid value (flag
    MISSING), so a lost person freezes instead of drifting. Returns (filled (F, ...), flags (F,)
    uint8 FrameFlag). Needs at least one valid frame.
    """
    valid = np.asarray(valid, dtype=bool)
    f = len(valid)
    idx = np.arange(f)
    if not valid.any():
        raise ValueError("fill_gaps needs at least one valid frame")
    # Index of the previous and next valid frame for every frame (itself when valid).
    prev = np.maximum.accumulate(np.where(valid, idx, -1))
    nxt = np.minimum.accumulate(np.where(valid, idx, f)[::-1])[::-1]
    has_prev, has_next = prev >= 0, nxt < f
    gap = np.where(has_prev & has_next, nxt - prev - 1, f)
    interp = ~valid & (gap <= max_gap)

    p = np.where(has_prev, prev, nxt)
    n = np.where(interp, nxt, p)
    span = np.maximum(n - p, 1)
    t = np.where(interp, (idx - p) / span, 0.0)
    t = t.reshape((f,) + (1,) * (values.ndim - 1))
    filled = (1.0 - t) * values[p] + t * values[n]

    flags = np.full(f, FrameFlag.TRACKED, dtype=np.uint8)
    flags[interp] = FrameFlag.INTERPOLATED
    flags[~valid & ~interp] = FrameFlag.MISSING
    return filled, flags


def smoothing_cutoff_hz(smoothing: float, fps: float) -> float | None:
    """Low-pass cut-off for a 0..1 smoothing strength; None means no filtering.

    The mapping is geometric so that equal steps of the slider feel alike; the cut-off is kept
    below 45% of the frame rate because a Butterworth design needs it under Nyquist.
    """
    if smoothing <= 0.0:
        return None
    s = min(float(smoothing), 1.0)
    cutoff = _CUTOFF_LIGHT_HZ * (_CUTOFF_HEAVY_HZ / _CUTOFF_LIGHT_HZ) ** s
    return min(cutoff, 0.45 * fps)


def lowpass(values: np.ndarray, fps: float, cutoff_hz: float | None) -> np.ndarray:
    """Zero-phase Butterworth low-pass of values (F, ...) along time (forward and backward pass).

    Running the filter both ways cancels its phase lag, so smoothed motion does not trail the
    video. Clips too short for the filter's padding are returned unchanged.
    """
    values = np.asarray(values, dtype=np.float64)
    if cutoff_hz is None or len(values) < 4:
        return values.copy()
    sos = signal.butter(_ORDER, cutoff_hz, btype="low", fs=fps, output="sos")
    # sosfiltfilt's default padding (3 * (2 * sections + 1)) would exceed a short clip.
    padlen = min(3 * (2 * len(sos) + 1), len(values) - 1)
    return signal.sosfiltfilt(sos, values, axis=0, padlen=padlen)
