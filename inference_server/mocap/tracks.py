"""Person detections of each frame linked into tracks with stable ids (numpy + SciPy, no MediaPipe).

A detection is a person's hip centre and body radius in pixels (what MediaPipe's pose detector
gives, see people.py) with a colour histogram of their torso. Each frame, every live track predicts
where its person is now (constant velocity from its last sightings), and detections are assigned to
tracks by scipy's linear_sum_assignment on a cost that mixes how far a detection lies from the
prediction (in body radii) with how different its colours are. Distance gates the match: during a
crossing two people can stand on the same spot, and there the colours decide. As in DeepSORT,
confirmed tracks (seen on CONFIRM_FRAMES frames) choose before new ones, the most recently seen
first, and a new track that misses frames at once is ended (a flicker, unless seen on enough frames).

A track unseen for more than `max_gap` frames is closed; a later detection whose colours match a
closed track (and no live one) takes that track's id again: re-identification when someone walks
back in. Tracks seen on fewer than `min_frames` frames are dropped (detector flicker), and ids are
numbered 1, 2, ... in order of first appearance, so that the same frames give the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

# A detection further from a track's prediction than JUMP_RADII + JUMP_RADII_PER_S * (seconds since
# the track was last seen), in body radii (half a body height), up to MAX_JUMP_RADII, cannot be that
# person: the prediction carries the steady motion, the gate only the detector's noise (about 0.1-0.2)
# and changes of pace.
JUMP_RADII = 0.3
JUMP_RADII_PER_S = 2.0
MAX_JUMP_RADII = 1.0
# Bhattacharyya distance between torso colour histograms: below this a closed track is re-identified.
REID_MAX_COLOUR = 0.35
# How much colour weighs against position in the assignment cost.
COLOUR_WEIGHT = 1.0
# A confirmed track never takes a detection whose torso colours differ more than this (measured on
# the distractor clips: the same person 0.0-0.45 across a clip, another person 0.55-1.0).
MAX_COLOUR = 0.6
# What a track pays for taking no detection on a frame: a detection costing more is someone else.
UNMATCHED_COST = 1.2
# A track is confirmed after this many sightings; before that, missing this many frames ends it.
CONFIRM_FRAMES = 5
TENTATIVE_MAX_MISS = 3


@dataclass
class Detection:
    """One person in one frame. x, y: hip centre in pixels; radius: half the body's height (pixels);
    score: detector confidence; colour: a normalised torso histogram (float32, any length)."""

    x: float
    y: float
    radius: float
    score: float
    colour: np.ndarray

    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in pixels: the body, as wide as its radius."""
        return (self.x - 0.5 * self.radius, self.y - self.radius, self.x + 0.5 * self.radius, self.y + self.radius)


@dataclass
class Track:
    """A person through the clip. frames: the frame numbers where they were detected, ascending,
    with one detection each."""

    id: int
    frames: list[int] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    colour: np.ndarray | None = None  # running mean of the torso histograms

    @property
    def confirmed(self) -> bool:
        return len(self.frames) >= CONFIRM_FRAMES

    def add(self, frame: int, det: Detection) -> None:
        self.frames.append(frame)
        self.detections.append(det)
        self.colour = det.colour.copy() if self.colour is None else 0.9 * self.colour + 0.1 * det.colour

    def predict(self, frame: int) -> tuple[float, float, float]:
        """Where the person is expected on `frame`: (x, y, radius), constant velocity over the last sightings."""
        last = self.detections[-1]
        if len(self.frames) < 2:
            return last.x, last.y, last.radius
        k = max(0, len(self.frames) - 5)
        dt = self.frames[-1] - self.frames[k]
        vx = (last.x - self.detections[k].x) / dt
        vy = (last.y - self.detections[k].y) / dt
        gap = frame - self.frames[-1]
        return last.x + vx * gap, last.y + vy * gap, last.radius

    def centres(self) -> np.ndarray:
        """(N, 3) x, y, radius in pixels per detected frame."""
        return np.array([(d.x, d.y, d.radius) for d in self.detections], np.float64)


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two normalised histograms: 0 same, 1 nothing in common."""
    bc = float(np.sum(np.sqrt(np.maximum(a, 0) * np.maximum(b, 0))))
    return float(np.sqrt(max(0.0, 1.0 - bc)))


class Linker:
    """Links per-frame detections into tracks, one frame at a time (frames in ascending order).

    max_gap: frames a track may go unseen (an occlusion, a missed detection) and still continue.
    max_people: at most this many tracks live at once; further detections are ignored and counted
        in `ignored` (a crowd stays bounded in memory and time).
    stride: frames between the frames given (1: every frame); misses are counted in these steps.
    fps: the clip's frame rate (how far a person may move between frames).
    """

    def __init__(self, max_gap: int, max_people: int, stride: int = 1, fps: float = 30.0) -> None:
        self.max_gap = max_gap
        self.stride = stride
        self.fps = fps
        self.max_people = max_people
        self.live: list[Track] = []
        self.closed: list[Track] = []
        self.ignored = 0
        self._next_id = 1

    def step(self, frame: int, detections: list[Detection]) -> None:
        # A track unseen too long ends; a new one that misses looks right after it started ends
        # sooner (it was likely a flicker, and must not take someone else's detection later on).
        # Ended tracks count if they were seen often enough (finish) and may come back (re-identified).
        for t in [t for t in self.live if frame - t.frames[-1] > self.max_gap
                  or (not t.confirmed and frame - t.frames[-1] > TENTATIVE_MAX_MISS * self.stride)]:
            self.live.remove(t)
            self.closed.append(t)
        unmatched = list(range(len(detections)))
        # Established people choose first, those seen most recently before those missing for a while,
        # so that a flicker next to someone cannot take their detection.
        confirmed = sorted((t for t in self.live if t.confirmed), key=lambda t: frame - t.frames[-1])
        tentative = [t for t in self.live if not t.confirmed]
        for group in (confirmed, tentative):
            unmatched = self._assign(frame, group, detections, unmatched)
        for j in sorted(unmatched, key=lambda j: -detections[j].score):
            d = detections[j]
            revived = self._reidentify(d)
            if revived is not None:
                self.closed.remove(revived)
                self.live.append(revived)
                revived.add(frame, d)
            elif len(self.live) < self.max_people:
                t = Track(self._next_id)
                self._next_id += 1
                t.add(frame, d)
                self.live.append(t)
            else:
                self.ignored += 1

    def _assign(self, frame: int, tracks: list[Track], detections: list[Detection], free: list[int]) -> list[int]:
        """Give detections (indices `free`) to `tracks` at the least total cost; returns those left.

        Each track may also stay unmatched at UNMATCHED_COST, so that no track is handed a poor
        detection just because every track must get one."""
        if not tracks or not free:
            return free
        n = len(tracks)
        cost = np.full((n, len(free) + n), np.inf)
        cost[np.arange(n), len(free) + np.arange(n)] = UNMATCHED_COST
        for i, t in enumerate(tracks):
            px, py, pr = t.predict(frame)
            gate = min(MAX_JUMP_RADII, JUMP_RADII + JUMP_RADII_PER_S * (frame - t.frames[-1]) / self.fps)
            for k, j in enumerate(free):
                d = detections[j]
                dist = np.hypot(d.x - px, d.y - py) / max(pr, 1.0)
                colour = colour_distance(t.colour, d.colour) if t.colour is not None else 0.0
                if dist <= gate and (colour <= MAX_COLOUR or not t.confirmed):
                    cost[i, k] = dist + COLOUR_WEIGHT * colour
        rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6))
        taken = set()
        for i, k in zip(rows, cols, strict=True):
            if k < len(free) and np.isfinite(cost[i, k]):
                tracks[i].add(frame, detections[free[k]])
                taken.add(free[k])
        return [j for j in free if j not in taken]

    def _reidentify(self, d: Detection) -> Track | None:
        """The closed track whose colours match this detection best, if close enough (and room for it)."""
        if len(self.live) >= self.max_people:
            return None
        best, best_dist = None, REID_MAX_COLOUR
        for t in self.closed:
            if not t.confirmed or t.colour is None:
                continue  # a flicker has no reliable colours
            dist = colour_distance(t.colour, d.colour)
            if dist < best_dist:
                best, best_dist = t, dist
        return best

    def finish(self, min_frames: int) -> list[Track]:
        """The tracks seen on at least min_frames frames, numbered 1.. by first appearance."""
        tracks = [t for t in self.live + self.closed if len(t.frames) >= min_frames]
        tracks.sort(key=lambda t: (t.frames[0], t.id))
        for n, t in enumerate(tracks, 1):
            t.id = n
        return tracks


def interpolate(track: Track, frames: np.ndarray, max_gap: int, hold: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The track's (x, y, radius) on each of `frames` and whether it is known there.

    Between sightings at most max_gap frames apart the values are interpolated linearly (a short
    occlusion); up to `hold` frames before the first and after the last sighting the nearest
    sighting holds; elsewhere (across longer gaps, further out) the person is unknown: NaN and False.
    """
    seen = np.asarray(track.frames, np.int64)
    values = track.centres()
    out = np.full((len(frames), 3), np.nan)
    known = np.zeros(len(frames), bool)
    pos = np.searchsorted(seen, frames)
    for k, (f, p) in enumerate(zip(frames, pos, strict=True)):
        if p < len(seen) and seen[p] == f:
            out[k], known[k] = values[p], True
        elif 0 < p < len(seen) and seen[p] - seen[p - 1] <= max_gap:
            w = (f - seen[p - 1]) / (seen[p] - seen[p - 1])
            out[k], known[k] = (1 - w) * values[p - 1] + w * values[p], True
        elif p == 0 and seen[0] - f <= hold:
            out[k], known[k] = values[0], True
        elif p == len(seen) and f - seen[-1] <= hold:
            out[k], known[k] = values[-1], True
    return out, known
