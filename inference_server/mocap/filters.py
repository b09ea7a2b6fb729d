"""Temporal clean-up of captured signals: gap filling and zero-phase low-pass filtering.

Everything works on arrays whose first axis is time (F, ...) so that a whole clip of landmarks,
root translations or face curves is handled in one call. Both work at any frame rate and any clip
length: the low-pass keeps its cut-off below the clip's Nyquist frequency itself (whoever asks for
a cut-off), and leaves clips shorter than MIN_FILTER_FRAMES unchanged.
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
# The highest cut-off a Butterworth design at a frame rate takes, per frame per second (Nyquist is
# 0.5); asking for more is asking for no filtering at all, which this keeps close to.
_MAX_CUTOFF_PER_FPS = 0.45
# Clips shorter than this are not filtered (the filter's padding would exceed the clip).
MIN_FILTER_FRAMES = 4


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
    # Only gaps with a valid frame on both sides are interpolated, however large max_gap is.
    interp = ~valid & has_prev & has_next & (nxt - prev - 1 <= max_gap)

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


def max_cutoff_hz(fps: float) -> float:
    """The highest low-pass cut-off a clip at fps can be filtered at (45% of the frame rate: a
    Butterworth design needs it under Nyquist)."""
    return _MAX_CUTOFF_PER_FPS * fps


def smoothing_cutoff_hz(smoothing: float, fps: float | None = None) -> float | None:
    """Low-pass cut-off for a 0..1 smoothing strength; None means no filtering.

    The mapping is geometric so that equal steps of the slider feel alike. With fps the cut-off is
    limited to max_cutoff_hz(fps) (what lowpass will use); without, it is the one asked for.
    """
    if smoothing <= 0.0:
        return None
    s = min(float(smoothing), 1.0)
    cutoff = _CUTOFF_LIGHT_HZ * (_CUTOFF_HEAVY_HZ / _CUTOFF_LIGHT_HZ) ** s
    return cutoff if fps is None else min(cutoff, max_cutoff_hz(fps))


def lowpass(values: np.ndarray, fps: float, cutoff_hz: float | None) -> np.ndarray:
    """Zero-phase Butterworth low-pass of values (F, ...) along time (forward and backward pass).

    Running the filter both ways cancels its phase lag, so smoothed motion does not trail the
    video. A cut-off above max_cutoff_hz(fps) is lowered to it, so any caller may ask for any
    cut-off at any frame rate. Clips shorter than MIN_FILTER_FRAMES (too short for the filter's
    padding) and a frame rate that is not a positive number are returned unchanged.
    """
    values = np.asarray(values, dtype=np.float64)
    if (cutoff_hz is None or len(values) < MIN_FILTER_FRAMES or not np.isfinite(fps) or fps <= 0
            or not cutoff_hz > 0):
        return values.copy()
    cutoff_hz = min(cutoff_hz, max_cutoff_hz(fps))
    sos = signal.butter(_ORDER, cutoff_hz, btype="low", fs=fps, output="sos")
    # sosfiltfilt's default padding (3 * (2 * sections + 1)) would exceed a short clip.
    padlen = min(3 * (2 * len(sos) + 1), len(values) - 1)
    return signal.sosfiltfilt(sos, values, axis=0, padlen=padlen)


def frames_text(frames: int) -> str:
    """'1 frame', '3 frames': for messages."""
    return f"{frames} frame" + ("" if frames == 1 else "s")


def smoothing_notes(what: str, frames: int, fps: float, cutoff_hz: float | None) -> list[str]:
    """What a user should know about filtering `what` ("the body", "the face") at cutoff_hz (as
    asked, before the frame rate's limit): skipped on a clip too short, or limited by a frame rate
    too low to carry the cut-off (the filter then smooths little)."""
    if cutoff_hz is None:
        return []
    if frames < MIN_FILTER_FRAMES:
        return [f"clip has {frames_text(frames)}: smoothing skipped (needs at least {MIN_FILTER_FRAMES})"]
    limit = max_cutoff_hz(fps)
    if cutoff_hz <= limit:
        return []
    return [f"{fps:g} fps limits smoothing of {what}: the clip carries motion only up to "
            f"{0.5 * fps:.3g} Hz, below the {cutoff_hz:.3g} Hz cut-off asked for, so the filter runs at "
            f"{limit:.3g} Hz and smooths little; raise smoothing for steadier motion"]

