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
   calibration gives and the points' positions, not only how fast they move. Each view against the
   first alone still failed there ([1, 0, 6, 1] at confidence 0.60): cam01 and cam03 face each
   other, so their epipolar lines run along the body and hardly tell shifts apart. The shifts are
   therefore settled with all views at once: the median reprojection error of the points
   triangulated from every view, one view's shift varied with the others held, in a few sweeps.
   The confidence is a bootstrap over the frames (how often the very shift chosen wins), not a
   ratio of costs, which stayed high for a wrong answer; the shifts that won the resamplings say
   how far the answer may be off. Counting the neighbours of the chosen shift as agreeing (as
   before) called cam03 of that trial sure at 1.00 while it won only 47 % of the resamplings,
   the others going to one frame less.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference_server.errors import InvalidInput
from inference_server.multicam import epipolar
from inference_server.multicam.triangulate import joint_errors
from keygrip.projection import VideoCamera

# Offsets searched: up to this many seconds either way (and at most a third of the shortest clip).
MAX_LAG_S = 2.0
# The shifts that win the frame resamplings for a view may span this many frames (a true offset
# between two frames splits them between those two); a wider spread is reported as a warning.
MAX_SPREAD_FRAMES = 1


@dataclass
class Sync:
    """offsets: (V,) frames, the smallest 0. confidence: 0..1 (1 for timecodes and overrides).
    method: "override", "timecode" or "motion". per_view: each view's own confidence (against the
    reference view; 1 for the reference). spread: each view's (lowest, highest) offset, counted as
    offsets are, among the shifts that won 90 % of the resamplings (given or from timecodes: the
    offset itself)."""

    offsets: list[int]
    confidence: float
    method: str
    per_view: list[float]
    spread: list[tuple[int, int]]

    def doubts(self) -> list[int]:
        """The views whose offset is in doubt by more than MAX_SPREAD_FRAMES."""
        return [v for v, (low, high) in enumerate(self.spread) if high - low > MAX_SPREAD_FRAMES]


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
    offsets = normalize([round((latest - s) * fps) for s in starts])
    return Sync(offsets, 1.0, "timecode", [1.0] * len(paths), [(o, o) for o in offsets])


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
    image coordinates, and their confidences (V, F, 33).

    First each view alone against the first (the shift that brings its person closest to the first
    view's epipolar lines, epipolar.pair_cost), then every view's shift again with all views at once
    (joint_cost): a pair of cameras facing each other hardly tells shifts apart, all views together do.

    per_view confidence: the share of BOOTSTRAP resamplings of the frames in which the shift chosen
    for the view scores strictly lowest (1 for the first view): a flat cost, as with a person who
    hardly moves or a view that sees the motion along its line of sight, gives a low one, and so does
    a true offset between two frames (each of the two wins about half). spread: the shifts that won.
    Raises InvalidInput when no shift makes a view agree with the first (different takes, or a
    calibration that does not belong to these videos).
    """
    f = xy.shape[1]
    max_lag = max(1, min(round(MAX_LAG_S * fps), f // 3))
    lags = np.arange(-max_lag, max_lag + 1)
    offsets, costs_v = [0], [0.0]
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
        best = int(np.nanargmin(costs)) if np.isfinite(costs).any() else max_lag
        offsets.append(int(lags[best]))
        costs_v.append(float(costs[best]) if np.isfinite(costs).any() else np.inf)
    bad = [cams[v].name for v in range(1, len(cams))
           if not costs_v[v] < epipolar.SAME_PERSON_PER_HEIGHT * cams[v].camera.height]
    if bad:
        raise InvalidInput(f"{', '.join(bad)} cannot be synchronised with {cams[0].name}: at no frame offset up to "
                           f"{max_lag} frames does the person there line up with the person in {cams[0].name}. "
                           "Check that the videos are one take and that the calibration belongs to these cameras, "
                           "or give the offsets yourself (--offsets).")
    conf_v = [1.0] * len(cams)
    spread = [(0, 0)] * len(cams)
    tables: dict[int, np.ndarray] = {}
    for _ in range(SWEEPS):
        moved = False
        for v in range(1, len(cams)):
            tables[v] = np.stack([joint_cost(cams, xy, conf, offsets[:v] + [int(lag)] + offsets[v + 1:])
                                  for lag in lags])  # (lags, F): NaN where a frame is outside the overlap
            best = _best(tables[v])
            moved |= int(lags[best]) != offsets[v]
            offsets[v] = int(lags[best])
        if not moved:
            break
    for v, table in tables.items():
        conf_v[v], (low, high) = _bootstrap(table, int(np.searchsorted(lags, offsets[v])))
        spread[v] = (int(lags[low]), int(lags[high]))
    # View v's frame t + offsets[v] shows what the first view's frame t does.
    first = min(offsets)
    return Sync(normalize(offsets), float(min(conf_v)), "motion", conf_v,
                [(lo - first, hi - first) for lo, hi in spread])


# Coordinate sweeps over the views in the joint search (each view's shift with the others held).
SWEEPS = 3
# Frame resamplings for the confidence.
BOOTSTRAP = 200
# Points scored in the joint search: the body from the shoulders down (MediaPipe's face points on a
# head seen from behind are guesses, and 11 of them would outvote the limbs).
LIMBS = np.arange(11, 33)


def joint_cost(cams: list[VideoCamera], xy: np.ndarray, conf: np.ndarray, offsets: list[int]) -> np.ndarray:
    """(F,) per frame of the first view: the median reprojection error in pixels of the limb points
    triangulated from all views at once with these offsets (triangulate.joint_errors); NaN where a
    view's shifted frame is outside its clip or fewer than 4 points were seen by two views."""
    v, f = xy.shape[:2]
    out = np.full(f, np.nan)
    off = np.asarray(offsets)
    t = np.arange(max(0, -off.min()), min(f, f - off.max()))
    if len(t) == 0:
        return out
    pts = np.stack([xy[i, t + off[i]][:, LIMBS] for i in range(v)])  # (V, T, L, 2)
    c = np.stack([conf[i, t + off[i]][:, LIMBS] for i in range(v)])
    w = np.where((c >= epipolar.MIN_CONFIDENCE) & np.isfinite(pts).all(axis=-1), c, 0.0)
    err = joint_errors(cams, pts.reshape(v, -1, 2), w.reshape(v, -1)).reshape(v, len(t), len(LIMBS))
    err = np.where(np.isfinite(err), err, np.nan).transpose(1, 0, 2).reshape(len(t), -1)
    rows = np.isfinite(err).sum(axis=1) >= 4
    if rows.any():
        out[t[rows]] = np.nanmedian(err[rows], axis=1)
    return out


def _best(per_frame: np.ndarray) -> int:
    """The shift (row) whose median over its frames is lowest."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row: a shift with no overlap
        med = np.nanmedian(per_frame, axis=1)
    return int(np.nanargmin(np.where(np.isfinite(med), med, np.inf)))


def _bootstrap(per_frame: np.ndarray, best: int) -> tuple[float, tuple[int, int]]:
    """Over resamplings of the frames (with replacement): the share in which the shift (row) best
    scores strictly lower than every other (a tie, as for a person who does not move, is no win),
    and the lowest and highest rows among those that won (all the tied ones where several tie),
    from the 5th to the 95th percentile."""
    rng = np.random.default_rng(0)
    f = per_frame.shape[1]
    wins, low, high = 0, [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(BOOTSTRAP):
            med = np.nanmedian(per_frame[:, rng.integers(0, f, f)], axis=1)
            med = np.where(np.isfinite(med), med, np.inf)
            winners = np.flatnonzero(med == med.min())
            wins += bool(len(winners) == 1 and winners[0] == best)
            low.append(winners[0])
            high.append(winners[-1])
    lo = int(np.percentile(low, 5, method="inverted_cdf"))
    hi = int(np.percentile(high, 95, method="inverted_cdf"))
    return wins / BOOTSTRAP, (lo, hi)
