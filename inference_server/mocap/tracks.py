"""Person detections of each frame linked into tracks with stable ids (numpy, OpenCV, SciPy; no MediaPipe).

A detection is a person's hip centre and body radius in pixels (what MediaPipe's pose detector
gives, see people.py) with a colour histogram of their torso. Each track carries a constant-velocity
Kalman filter (cv2.KalmanFilter) of its hip centre; each frame it predicts where its person is, and
detections are assigned to tracks by scipy's linear_sum_assignment on a cost that mixes the
Mahalanobis distance from that prediction (the filter's own uncertainty, which grows while a person
is unseen), how different the torso colours are and how different the body sizes are. A detection
beyond the gate (GATE_SIGMAS, and at most MAX_JUMP_RADII body radii from the prediction) cannot be
that person. As in DeepSORT, confirmed tracks (seen on CONFIRM_FRAMES frames) choose before new
ones, and a new track that misses frames at once is ended (a flicker, unless seen on enough frames).

Crossings: while two people overlap, the detector often reports one body for both, at a hip centre
between them, and the torso colours it samples mix both people. Such an ambiguous detection (its box
overlaps another detection's or another track's predicted box) still counts as a sighting, but it
moves the filter less (a larger measurement noise, so that the track keeps its own velocity through
the crossing instead of taking on the other person's), does not update the track's colours, and is
not refused for its colours. Away from others, a confirmed track never takes a detection whose
colours differ more than MAX_COLOUR: that is someone else.

A track unseen for more than `max_gap` frames is closed; a later detection whose colours match a
closed track (and no live one) takes that track's id again: re-identification when someone walks
back in. Tracks seen on fewer than `min_frames` frames are dropped (detector flicker), and ids are
numbered 1, 2, ... in order of first appearance, so that the same frames give the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

# Kalman filter of a hip centre, in pixels, scaled by the person's body radius (half their height):
# the detector's noise (about 0.1-0.2 radii) and how fast a person changes pace (radii per s^2).
MEASURE_RADII = 0.12
ACCEL_RADII_PER_S2 = 3.0
# An ambiguous detection (overlapping someone else) is trusted this many times less (noise x this).
AMBIGUOUS_NOISE = 3.0
# A detection further than this many standard deviations from a track's prediction is not that person,
# nor one further than MAX_JUMP_RADII body radii, however long the person was unseen.
GATE_SIGMAS = 4.0
MAX_JUMP_RADII = 1.2
# Two people whose hip centres lie closer than this many body radii overlap (a crossing).
AMBIGUOUS_RADII = 0.6
# Bhattacharyya distance between torso colour histograms: below this a closed track is re-identified.
REID_MAX_COLOUR = 0.35
# A person's body radius changes by at most this factor (as |log|) between sightings: about 1.4x.
MAX_SIZE_CHANGE = 0.35
# How much colour and body size (|log of the radius ratio|) weigh against the distance in sigmas.
COLOUR_WEIGHT = 2.0
SIZE_WEIGHT = 2.0
# A confirmed track never takes an unambiguous detection whose torso colours differ more than this
# (measured on the distractor clips: the same person 0.0-0.45 across a clip when apart from others,
# another person 0.55-1.0; overlapping, the same person reads up to 0.9), unless it lies within
# COLOUR_GATE_SIGMAS of the prediction: there it is the person, with someone else's colours in view
# (a crossing the linker had not seen coming).
MAX_COLOUR = 0.6
COLOUR_GATE_SIGMAS = 2.0
# What a track pays for taking no detection on a frame: a detection costing more is someone else.
UNMATCHED_COST = GATE_SIGMAS
# What a stretch pays for continuing no other (Linker.finish): a link costing more is someone else.
UNLINKED_COST = 2.5
# Stitching stretches (Linker.finish): a new stretch starts after this long unseen; a stretch's
# motion is fitted over up to MOTION_S of its ends; a stretch continues another when each one's
# motion, carried across the gap, lands within STITCH_RADII + STITCH_RADII_PER_S * (gap in s) of the
# other's end; stretches with fewer than MIN_STRETCH sightings are not stitched, and ambiguous
# sightings join the person whose path passes within ATTACH_RADII of them.
SPLIT_GAP_S = 0.25
MOTION_S = 0.3
STITCH_RADII = 0.35
STITCH_RADII_PER_S = 1.0
MIN_STRETCH = 3
ATTACH_RADII = 0.4
# Stitching considers a stretch continuing another only when it starts within this long of the
# other's end (a window that keeps a long clip's stitching linear in its stretches); a person back
# after longer was re-identified by the online linker, and its stretches stay candidates whatever the gap.
STITCH_WINDOW_S = 10.0
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
        """(x0, y0, x1, y1) in pixels: the body (body_box)."""
        return body_box(self.x, self.y, self.radius)

    @classmethod
    def from_box(cls, box: tuple[float, float, float, float], score: float = 1.0) -> Detection:
        """The detection whose box() is `box`, without a colour (one no longer linked into tracks)."""
        x0, y0, x1, y1 = box
        return cls((x0 + x1) / 2, (y0 + y1) / 2, (y1 - y0) / 2, score, np.zeros(0, np.float32))


def body_box(x: float, y: float, radius: float) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a body with its hip centre at (x, y): twice its radius high, as wide as it."""
    return (x - 0.5 * radius, y - radius, x + 0.5 * radius, y + radius)


@dataclass
class Track:
    """A person through the clip. frames: the frame numbers where they were detected, ascending,
    with one detection each."""

    id: int
    frames: list[int] = field(default_factory=list)
    detections: list[Detection] = field(default_factory=list)
    colour: np.ndarray | None = None  # running mean of the torso histograms seen apart from others
    ambiguous: list[bool] = field(default_factory=list)  # per detection: overlapping someone else
    # Per detection, the stretch it belongs to: sightings apart from others, without a long gap
    # (-1: an ambiguous sighting). Stretches are what Linker.finish stitches into people.
    stretch: list[int] = field(default_factory=list)
    pieces: list[tuple[int, int]] = field(default_factory=list)  # after finish: (online id, stretch) joined
    split_gap: int = 0  # frames unseen after which a new stretch starts (0: never)
    radius: float = 0.0  # running mean of the body radius
    _kalman: cv2.KalmanFilter | None = field(default=None, repr=False)
    _at: int = 0  # the frame the filter has predicted to

    @property
    def confirmed(self) -> bool:
        return len(self.frames) >= CONFIRM_FRAMES

    @property
    def last_apart(self) -> int:
        """The last frame where the person was seen apart from others (-1: never)."""
        return next((f for f, a in zip(reversed(self.frames), reversed(self.ambiguous), strict=True) if not a), -1)

    def predict(self, frame: int, fps: float) -> None:
        """Move the filter on to `frame` (after the last frame it was at): constant velocity, with
        an uncertainty that grows with the time unseen."""
        assert self._kalman is not None
        dt = float(frame - self._at)
        if dt <= 0:
            return
        kf = self._kalman
        kf.transitionMatrix = np.array([[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]], np.float32)
        q = (ACCEL_RADII_PER_S2 * self.radius / fps**2) ** 2
        block = np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]]) * q
        noise = np.zeros((4, 4))
        noise[np.ix_([0, 2], [0, 2])] = block
        noise[np.ix_([1, 3], [1, 3])] = block
        kf.processNoiseCov = noise.astype(np.float32)
        kf.predict()
        self._at = frame

    def where(self) -> tuple[float, float]:
        """The predicted hip centre (pixels) on the frame the filter was last moved to."""
        assert self._kalman is not None
        state = self._kalman.statePost  # OpenCV copies the prediction here until a correction
        return float(state[0, 0]), float(state[1, 0])

    def distance(self, det: Detection, ambiguous: bool) -> float:
        """How many standard deviations a detection lies from the prediction (Mahalanobis)."""
        assert self._kalman is not None
        px, py = self.where()
        cov = self._kalman.errorCovPost[:2, :2].astype(np.float64) + np.eye(2) * self._noise(ambiguous)
        r = np.array([det.x - px, det.y - py])
        return float(np.sqrt(r @ np.linalg.solve(cov, r)))

    def _noise(self, ambiguous: bool) -> float:
        sigma = MEASURE_RADII * self.radius * (AMBIGUOUS_NOISE if ambiguous else 1.0)
        return sigma * sigma

    def add(self, frame: int, det: Detection, ambiguous: bool = False) -> None:
        last = next((k for k in reversed(self.stretch) if k >= 0), -1)
        if ambiguous:
            self.stretch.append(-1)
        elif self.stretch and (self.stretch[-1] < 0 or 0 < self.split_gap < frame - self.frames[-1]):
            self.stretch.append(last + 1)
        else:
            self.stretch.append(max(last, 0))
        self.frames.append(frame)
        self.detections.append(det)
        self.ambiguous.append(ambiguous)
        if self._kalman is None:
            self.radius = det.radius
            kf = cv2.KalmanFilter(4, 2)
            kf.measurementMatrix = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], np.float32)
            kf.statePost = np.array([[det.x], [det.y], [0], [0]], np.float32)
            # Unknown speed at first: up to about a body radius a second.
            kf.errorCovPost = np.diag([self._noise(False)] * 2 + [(det.radius / 60.0) ** 2] * 2).astype(np.float32)
            self._kalman, self._at = kf, frame
        else:
            self.radius = 0.9 * self.radius + 0.1 * det.radius
            self._kalman.measurementNoiseCov = (np.eye(2) * self._noise(ambiguous)).astype(np.float32)
            self._kalman.correct(np.array([[det.x], [det.y]], np.float32))
        if self.colour is None:
            self.colour = det.colour.copy()
        elif not ambiguous:  # colours sampled over someone else would drag the model towards them
            self.colour = 0.9 * self.colour + 0.1 * det.colour

    def box(self) -> tuple[float, float, float, float]:
        """The predicted body box, as Detection.box."""
        x, y = self.where()
        return body_box(x, y, self.radius)

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
    fps: the clip's frame rate (how fast a person's pace may change between frames).
    """

    def __init__(self, max_gap: int, max_people: int, stride: int = 1, fps: float = 30.0) -> None:
        self.max_gap = max_gap
        self.stride = stride
        self.fps = fps
        self.max_people = max_people
        self.live: list[Track] = []
        self.closed: list[Track] = []
        self.ignored = 0
        self.split_gap = round(SPLIT_GAP_S * fps)
        self._next_id = 1
        self._frame = 0

    def step(self, frame: int, detections: list[Detection]) -> None:
        # A track unseen too long ends; a new one that misses looks right after it started ends
        # sooner (it was likely a flicker, and must not take someone else's detection later on).
        # Ended tracks count if they were seen often enough (finish) and may come back (re-identified).
        for t in [t for t in self.live if frame - t.frames[-1] > self.max_gap
                  or (not t.confirmed and frame - t.frames[-1] > TENTATIVE_MAX_MISS * self.stride)]:
            self.live.remove(t)
            self.closed.append(t)
        self._frame = frame
        for t in self.live:
            t.predict(frame, self.fps)
        ambiguous = [self._ambiguous(j, detections) for j in range(len(detections))]
        unmatched = list(range(len(detections)))
        # Established people choose first, so that a flicker next to someone cannot take their detection.
        for group in ([t for t in self.live if t.confirmed], [t for t in self.live if not t.confirmed]):
            unmatched = self._assign(frame, group, detections, ambiguous, unmatched)
        for j in sorted(unmatched, key=lambda j: -detections[j].score):
            d = detections[j]
            revived = None if ambiguous[j] else self._reidentify(d)
            if revived is not None:
                self.closed.remove(revived)
                self.live.append(revived)
                revived.predict(frame, self.fps)
                revived.add(frame, d)
            elif len(self.live) < self.max_people:
                t = Track(self._next_id, split_gap=self.split_gap)
                self._next_id += 1
                t.add(frame, d)
                self.live.append(t)
            else:
                self.ignored += 1

    def _ambiguous(self, j: int, detections: list[Detection]) -> bool:
        """Whether detection j lies close to the predicted hip centres of more than one confirmed
        track (within AMBIGUOUS_RADII): two people overlap there, and its colours and its centre
        may be partly the other's. Tracks not seen apart from others for longer than a stretch's gap
        do not count: where they are is a guess (one that took stray detections beside someone
        would otherwise leave that person ambiguous for good)."""
        d = detections[j]
        near = [np.hypot(d.x - x, d.y - y) < AMBIGUOUS_RADII * max(d.radius, t.radius)
                for t in self.live if t.confirmed and t.last_apart >= self._frame - self.split_gap
                for x, y in [t.where()]]
        return sum(near) > 1

    def _assign(self, frame: int, tracks: list[Track], detections: list[Detection], ambiguous: list[bool],
                free: list[int]) -> list[int]:
        """Give detections (indices `free`) to `tracks` at the least total cost; returns those left.

        Each track may also stay unmatched at UNMATCHED_COST, so that no track is handed a poor
        detection just because every track must get one."""
        if not tracks or not free:
            return free
        n = len(tracks)
        cost = np.full((n, len(free) + n), np.inf)
        cost[np.arange(n), len(free) + np.arange(n)] = UNMATCHED_COST
        for i, t in enumerate(tracks):
            px, py = t.where()
            for k, j in enumerate(free):
                d, amb = detections[j], ambiguous[j]
                sigmas = t.distance(d, amb)
                jump = np.hypot(d.x - px, d.y - py) / max(t.radius, 1.0)
                colour = colour_distance(t.colour, d.colour) if t.colour is not None else 0.0
                size = abs(np.log(max(d.radius, 1.0) / max(t.radius, 1.0)))
                if sigmas > GATE_SIGMAS or jump > MAX_JUMP_RADII or size > MAX_SIZE_CHANGE:
                    continue
                if t.confirmed and not amb and colour > MAX_COLOUR and sigmas > COLOUR_GATE_SIGMAS:
                    continue
                cost[i, k] = sigmas + COLOUR_WEIGHT * colour + SIZE_WEIGHT * size
        rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, 1e6))
        taken = set()
        for i, k in zip(rows, cols, strict=True):
            if k < len(free) and np.isfinite(cost[i, k]):
                tracks[i].add(frame, detections[free[k]], ambiguous[free[k]])
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

    def finish(self, min_frames: int, min_stretch: int = MIN_STRETCH) -> list[Track]:
        """The people: each track's stretches seen apart from others stitched across crossings and
        occlusions by their motion, colours and size (one assignment over all ends and starts), the
        ambiguous sightings joined to the person whose path passes through them; those seen on at
        least min_frames frames, numbered 1.. by first appearance (new Track objects; `pieces` says
        which stretches each is made of). Stretches of fewer than min_stretch sightings are not
        stitched (their sightings are joined like ambiguous ones)."""
        stretches: list[Track] = []
        pool: list[tuple[int, Detection]] = []
        for t in self.live + self.closed:
            groups: dict[int, list[int]] = {}
            for n, k in enumerate(t.stretch):
                groups.setdefault(k, []).append(n)
            for k, rows in sorted(groups.items()):
                if k < 0 or len(rows) < min_stretch:
                    pool.extend((t.frames[n], t.detections[n]) for n in rows)
                else:
                    stretches.append(_stretch(t, k, rows))
        tracks = [_join(chain) for chain in self._chains(stretches)]
        _attach(tracks, pool, self.max_gap)
        tracks = [t for t in tracks if len(t.frames) >= min_frames]
        tracks.sort(key=lambda t: (t.frames[0], t.pieces[0]))
        for n, t in enumerate(tracks, 1):
            t.id = n
        return tracks

    def _chains(self, stretches: list[Track]) -> list[list[Track]]:
        """Stretches in chains, one per person: which stretch continues which, by a minimum-cost
        matching of every end to a start or to nobody (the person went; a start matched to nobody:
        they came). Only the starts within STITCH_WINDOW_S of an end are weighed (and the next
        stretch of the same online track), so that the matching is sparse and a long clip's cost grows
        with its stretches, not with their square."""
        n = len(stretches)
        if n == 0:
            return []
        order = sorted(range(n), key=lambda i: stretches[i].frames[0])
        firsts = np.array([stretches[i].frames[0] for i in order])
        window = round(STITCH_WINDOW_S * self.fps)
        pairs: set[tuple[int, int]] = set()
        for i, a in enumerate(stretches):
            end = a.frames[-1]
            lo = int(np.searchsorted(firsts, end + 1, side="left"))
            hi = int(np.searchsorted(firsts, end + window, side="right"))
            pairs.update((i, order[k]) for k in range(lo, hi))
        # The online linker's own next stretch of a track (re-identified after any gap) stays a candidate.
        by_track: dict[int, list[int]] = {}
        for i in order:
            by_track.setdefault(stretches[i].pieces[0][0], []).append(i)
        for same in by_track.values():
            pairs.update(zip(same[:-1], same[1:], strict=True))
        links = [(i, j, c) for i, j in sorted(pairs) if np.isfinite(c := self._link_cost(stretches[i], stretches[j]))]
        # Rows: the ends, then each start's "came from nobody"; columns: the starts, then each end's
        # "went to nobody". A link i -> j pairs end i with start j, and start j's dummy with end i's.
        # Every full matching has 2n edges, so the weights are shifted by 1 (the matcher reads a zero
        # as no edge) without changing which matching wins.
        link_rows = [i for i, _, _ in links] + [n + j for _, j, _ in links]
        link_cols = [j for _, j, _ in links] + [n + i for i, _, _ in links]
        rows = link_rows + list(range(n)) + list(range(n, 2 * n))
        cols = link_cols + list(range(n, 2 * n)) + list(range(n))
        weights = [c + 1 for _, _, c in links] + [1.0] * len(links) + [UNLINKED_COST + 1] * (2 * n)
        graph = coo_matrix((weights, (rows, cols)), shape=(2 * n, 2 * n)).tocsr()
        ends, starts = min_weight_full_bipartite_matching(graph)
        after = {int(i): int(j) for i, j in zip(ends, starts, strict=True) if i < n and j < n}
        first = sorted(set(range(n)) - set(after.values()), key=lambda i: stretches[i].frames[0])
        chains = []
        for i in first:
            chain = [stretches[i]]
            while i in after:
                i = after[i]
                chain.append(stretches[i])
            chains.append(chain)
        return chains

    def _link_cost(self, a: Track, b: Track) -> float:
        """What it costs to say stretch b is stretch a's person later on (inf: it cannot be)."""
        gap = b.frames[0] - a.frames[-1]
        if gap <= 0:
            return np.inf
        colour = colour_distance(a.colour, b.colour) if a.colour is not None and b.colour is not None else 1.0
        size = abs(np.log(b.radius / a.radius))
        if gap > self.max_gap:  # someone coming back after long: re-identified by colours alone
            return 2 * UNLINKED_COST - 1.0 + colour if colour <= REID_MAX_COLOUR else np.inf
        (ax, ay), (avx, avy) = _motion(a, end=True, frames=round(MOTION_S * self.fps))
        (bx, by), (bvx, bvy) = _motion(b, end=False, frames=round(MOTION_S * self.fps))
        r = 0.5 * (a.radius + b.radius)
        forward = np.hypot(ax + avx * gap - bx, ay + avy * gap - by) / r
        back = np.hypot(bx - bvx * gap - ax, by - bvy * gap - ay) / r
        miss = 0.5 * (forward + back) / (STITCH_RADII + STITCH_RADII_PER_S * gap / self.fps)
        if miss > 1 or colour > MAX_COLOUR or size > MAX_SIZE_CHANGE:
            return np.inf
        return miss + COLOUR_WEIGHT * colour + SIZE_WEIGHT * size


def _stretch(track: Track, k: int, rows: list[int]) -> Track:
    """Stretch k of an online track as a track of its own (colours and size: the stretch's means)."""
    dets = [track.detections[n] for n in rows]
    return Track(track.id, frames=[track.frames[n] for n in rows], detections=dets,
                 colour=np.mean([d.colour for d in dets], axis=0), radius=float(np.median([d.radius for d in dets])),
                 ambiguous=[False] * len(rows), stretch=[k] * len(rows), pieces=[(track.id, k)])


def _join(chain: list[Track]) -> Track:
    """The stretches of one person as one track."""
    out = Track(0, pieces=[p for s in chain for p in s.pieces], colour=chain[0].colour, radius=chain[0].radius)
    for s in chain:
        out.frames += s.frames
        out.detections += s.detections
        out.ambiguous += s.ambiguous
        out.stretch += s.stretch
    return out


def _motion(track: Track, end: bool, frames: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """A stretch's position at its end (or start) and velocity (pixels per frame), from a straight
    line fitted to its sightings within `frames` of there."""
    f = np.asarray(track.frames, np.float64)
    xy = track.centres()[:, :2]
    near = f >= f[-1] - frames if end else f <= f[0] + frames
    f, xy = f[near], xy[near]
    at = f[-1] if end else f[0]
    if len(f) < 3 or f[-1] == f[0]:
        return (float(xy[-1 if end else 0, 0]), float(xy[-1 if end else 0, 1])), (0.0, 0.0)
    (vx, x0), (vy, y0) = np.polyfit(f - at, xy[:, 0], 1), np.polyfit(f - at, xy[:, 1], 1)
    # A speed fitted to few noisy sightings is shrunk towards standing still.
    trust = len(f) / (len(f) + 5)
    return (float(x0), float(y0)), (float(vx) * trust, float(vy) * trust)


def _attach(tracks: list[Track], pool: list[tuple[int, Detection]], max_gap: int) -> None:
    """Give each ambiguous sighting to the person whose path (between their sightings around it,
    at most max_gap apart) passes closest, within ATTACH_RADII; one sighting per person and frame."""
    options = []
    pool = sorted(pool, key=lambda p: p[0])
    pool_frames = np.array([f for f, _ in pool], np.int64)
    for n, t in enumerate(tracks):
        order = np.argsort(t.frames)
        seen = np.asarray(t.frames)[order]
        values = t.centres()[order]
        # Only the sightings within the person's span can lie on their path (a long clip stays linear).
        lo, hi = np.searchsorted(pool_frames, [seen[0], seen[-1]], side="left")
        for m in range(int(lo), int(hi)):
            f, d = pool[m]
            p = int(np.searchsorted(seen, f))
            if p == 0 or p == len(seen) or seen[p] == f or seen[p] - seen[p - 1] > max_gap:
                continue
            w = (f - seen[p - 1]) / (seen[p] - seen[p - 1])
            x, y, r = (1 - w) * values[p - 1] + w * values[p]
            dist = np.hypot(d.x - x, d.y - y) / r
            if dist <= ATTACH_RADII:
                options.append((dist, n, m))
    used, taken = set(), set()
    for _, n, m in sorted(options):
        f = pool[m][0]
        if m in used or (n, f) in taken:
            continue
        used.add(m)
        taken.add((n, f))
        t = tracks[n]
        t.frames.append(f)
        t.detections.append(pool[m][1])
        t.ambiguous.append(True)
        t.stretch.append(-1)
    for t in tracks:
        order = np.argsort(t.frames, kind="stable")
        t.frames = [t.frames[k] for k in order]
        t.detections = [t.detections[k] for k in order]
        t.ambiguous = [t.ambiguous[k] for k in order]
        t.stretch = [t.stretch[k] for k in order]


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
