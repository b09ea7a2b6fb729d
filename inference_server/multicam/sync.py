"""Which frame of each video shows the same instant: per-view frame offsets and how sure we are.

Offsets count in frames: view v's frame (clip frame + offsets[v]) shows clip frame's instant; the
smallest offset is 0. In order of trust:

1. given by the user (an override, per view);
2. from the files' SMPTE timecodes (the `timecode` tag cameras and recorders write), when every
   video carries one;
3. from the person's motion, through the calibration: at the right shift a view's body points lie
   on the epipolar lines of the first view's (epipolar.py), at a wrong one the motion in between
   pulls them off. Cross-correlating 2D keypoint speeds between views was tried first and failed on
   the Pose2Sim balancing trial (a man standing on one leg: offsets of 28-29 frames at a peak
   correlation of 0.15, where the videos are in sync); the epipolar cost uses the geometry the
   calibration gives and the points' positions, not only how fast they move.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference_server.errors import InvalidInput
from inference_server.multicam import epipolar
from keygrip.projection import VideoCamera

# Offsets searched: up to this many seconds either way (and at most a third of the shortest clip).
MAX_LAG_S = 2.0
# Below this the shifts are barely told apart (reported as a warning).
MIN_CONFIDENCE = 0.3


@dataclass
class Sync:
    """offsets: (V,) frames, the smallest 0. confidence: 0..1 (1 for timecodes and overrides).
    method: "override", "timecode" or "motion". per_view: each view's own confidence (against the
    reference view; 1 for the reference)."""

    offsets: list[int]
    confidence: float
    method: str
    per_view: list[float]


def normalize(offsets: list[int]) -> list[int]:
    low = min(offsets)
    return [int(o - low) for o in offsets]


def from_timecodes(paths: list[Path], fps: float) -> Sync | None:
    """Offsets from every video's start timecode, or None when any video has none."""
    starts = []
    for p in paths:
        tc = _timecode(p)
        if tc is None:
            return None
        starts.append(tc)
    latest = max(starts)
    return Sync(normalize([round((latest - s) * fps) for s in starts]), 1.0, "timecode", [1.0] * len(paths))


def _timecode(path: Path) -> float | None:
    """Seconds of the first frame's SMPTE timecode (HH:MM:SS:FF or ;FF), None without one."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            tags = {**container.metadata, **stream.metadata}
            for s in container.streams:
                tags.update({k: v for k, v in s.metadata.items() if k == "timecode"})
            rate = float(stream.average_rate or stream.guessed_rate or 0) or 30.0
    except (av.error.FFmpegError, IndexError):
        return None
    tc = tags.get("timecode")
    if not tc:
        return None
    try:
        hh, mm, ss, ff = (int(x) for x in tc.replace(";", ":").split(":"))
    except ValueError:
        return None
    return hh * 3600 + mm * 60 + ss + ff / round(rate)


def from_views(cams: list[VideoCamera], xy: np.ndarray, conf: np.ndarray, fps: float) -> Sync:
    """Offsets of every view against the first from the person's points (V, F, 33, 2), normalised
    image coordinates, and their confidences (V, F, 33): for each view the shift that brings its
    person closest to the first view's epipolar lines (median over frames of epipolar.pair_cost).

    per_view confidence: how much deeper the best shift's cost is than the typical shift's (0: flat,
    nothing tells the shifts apart, as with a person who hardly moves; 1: only one shift fits).
    Raises InvalidInput when no shift makes a view agree with the first (different takes, or a
    calibration that does not belong to these videos).
    """
    f = xy.shape[1]
    max_lag = max(1, min(round(MAX_LAG_S * fps), f // 3))
    lags = np.arange(-max_lag, max_lag + 1)
    offsets, conf_v, costs_v = [0], [1.0], [0.0]
    for v in range(1, len(cams)):
        costs = np.full(len(lags), np.nan)
        for i, lag in enumerate(lags):
            a = slice(0, f - lag) if lag >= 0 else slice(-lag, f)
            b = slice(lag, f) if lag >= 0 else slice(0, f + lag)
            pair = np.stack([xy[0, a], xy[v, b]])
            pc = np.stack([conf[0, a], conf[v, b]])
            frame_costs = epipolar.pair_cost([cams[0], cams[v]], pair, pc, 0, 1)
            if np.isfinite(frame_costs).any():
                costs[i] = np.nanmedian(frame_costs)
        if not np.isfinite(costs).any():
            offsets.append(0)
            conf_v.append(0.0)
            costs_v.append(np.inf)
            continue
        best = int(np.nanargmin(costs))
        typical = float(np.nanmedian(costs))
        offsets.append(int(lags[best]))
        conf_v.append(float(np.clip(1.0 - costs[best] / typical, 0.0, 1.0)) if typical > 0 else 0.0)
        costs_v.append(float(costs[best]))
    bad = [cams[v].name for v in range(1, len(cams))
           if not costs_v[v] < epipolar.SAME_PERSON_PER_HEIGHT * cams[v].camera.height]
    if bad:
        raise InvalidInput(f"{', '.join(bad)} cannot be synchronised with {cams[0].name}: at no frame offset up to "
                           f"{max_lag} frames does the person there line up with the person in {cams[0].name}. "
                           "Check that the videos are one take and that the calibration belongs to these cameras, "
                           "or give the offsets yourself (--offsets).")
    # View v's frame t + offsets[v] shows what the first view's frame t does.
    return Sync(normalize(offsets), float(min(conf_v)), "motion", conf_v)
