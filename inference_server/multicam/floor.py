"""The floor and the up axis of a multi-camera world, found from the person's feet.

A calibration's world is only as level as what defined it: a board that did not lie on the floor,
or an OpenCV TOML whose world is one camera's frame, leaves the capture tilted or floating. The
feet say where the floor is, where they stand still on it:

1. Contacts: the triangulated heel and toe points (MediaPipe 29-32) that are still (slower than
   CONTACT_SPEED) and low: within CONTACT_BAND of their kind's level along the current up (first a
   low percentile of its still points, then its fitted plane), runs shorter than MIN_BLIP_S left
   out. Heels and toes are fitted with one normal and a height each: MediaPipe's heel point sits a
   few centimetres higher than its toe point on a flat foot, so one plane through both would tilt.
   Each run of a point's contact is one place (its median); places off the plane by OUTLIER_SDS
   contact spreads are left out. Up is refined over a few rounds, from the ankle-to-shoulder line.
2. The normal: the direction along which the contacts vary least. Contacts spread over a floor in
   one direction only (a person walking a straight line, feet one before the other) cannot say how
   the floor rolls about that line, so the fit leans on a second, physical cue there: a person who
   stands or balances keeps their centre of mass over their feet, so the line from the feet in
   contact to the body's centre of mass (segment masses of the usual anthropometric tables) is
   vertical on average. On the Pose2Sim balancing trial (feet in line, the trunk leaning up to
   24 degrees) that line came within about 1 degree of the calibrated vertical sideways, where the
   ankle-to-shoulder line of root_motion.estimate_up was 7 degrees off. The contacts weigh in by
   how far apart they lie, the centre-of-mass line with a spread of PRIOR_SD_DEG.
3. The floor: under the lowest contacts (root_motion.floor_height, as a single view's floor is
   found), so the solver's contact points stand on y = 0 as in a single-view capture. The
   landmarks sit above the sole (see the README for what was measured on the Pose2Sim trial), so
   the feet's floor lies that much above the physical one.

The world is then turned and shifted (points and cameras alike) so the floor is y = 0 and Y is up,
keeping the yaw: the new X axis is the old X projected onto the floor.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from inference_server.mocap import root_motion

# The modes of MulticamOptions.floor: "auto" takes the feet where the calibration does not say where
# the floor is or its floor is far from the feet's, "calibration" keeps the calibration's world,
# "feet" always takes the feet's floor (when they show one).
MODES = ("auto", "calibration", "feet")
# A contact: slower than this (m/s) and within this band (m) of its kind's level.
CONTACT_SPEED = 0.3
CONTACT_BAND = 0.06
# The fit needs contacts on this much of a second, spread over this many metres along the floor.
MIN_CONTACT_S = 0.2
MIN_SPREAD_M = 0.3
# How well the contacts' heights are known (m), and the centre-of-mass line's spread (degrees).
CONTACT_SD_M = 0.015
PRIOR_SD_DEG = 2.0
# Places this many contact spreads off the floor are outliers; contact runs under this many seconds
# are glitches.
OUTLIER_SDS = 3.0
MIN_BLIP_S = 0.05
# "auto" takes the feet's floor over a calibration's that is this far from it (degrees, metres).
AUTO_TILT_DEG = 10.0
AUTO_HEIGHT_M = 0.25

HEELS, TOES = (29, 30), (31, 32)  # MediaPipe: left, right
_FEET = [*HEELS, *TOES]
_KIND = np.array([0, 0, 1, 1])  # heel, heel, toe, toe
# Body segments (start, end, fraction of the way, fraction of the body's mass), after Winter's
# anthropometric tables; the head at the nose and ears, the trunk between shoulders and hips.
_SEGMENTS = [((11, 13), 0.436, 0.028), ((12, 14), 0.436, 0.028), ((13, 15), 0.682, 0.022),
             ((14, 16), 0.682, 0.022), ((23, 25), 0.433, 0.100), ((24, 26), 0.433, 0.100),
             ((25, 27), 0.606, 0.061), ((26, 28), 0.606, 0.061)]
_HEAD_MASS, _TRUNK_MASS = 0.081, 0.497


@dataclass
class FloorFit:
    """The feet's floor in the world the points are in: normal (3,) pointing up, height (the plane
    is normal . x = height), tilt_deg (the normal from +Y), contacts (F, 4) the heel and toe points
    taken as standing (left heel, right heel, left toe, right toe), spread_m (how far apart along
    the floor they lie)."""

    normal: np.ndarray
    height: float
    tilt_deg: float
    contacts: np.ndarray
    spread_m: float

    def transform(self) -> np.ndarray:
        """(4, 4) world -> levelled world: the floor onto y = 0, its normal onto +Y, the old X axis
        projected onto the floor as the new X (the yaw kept)."""
        n = self.normal / np.linalg.norm(self.normal)
        x = np.array([1.0, 0.0, 0.0]) - n[0] * n
        if np.linalg.norm(x) < 1e-6:  # the old X points straight up: keep the old Z instead
            z = np.array([0.0, 0.0, 1.0]) - n[2] * n
            z /= np.linalg.norm(z)
            x = np.cross(n, z)
        x /= np.linalg.norm(x)
        m = np.eye(4)
        m[:3, :3] = np.stack([x, n, np.cross(x, n)])
        m[1, 3] = -self.height
        return m

    def describe(self) -> str:
        """Where the feet's floor lies against the world's own, in words."""
        return f"tilt {self.tilt_deg:.1f}°, {100 * self.height:.1f} cm"


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _median_direction(vectors: np.ndarray) -> np.ndarray | None:
    """The geometric median (Weiszfeld's iterations) of unit vectors (N, 3), normalised; rows with a
    NaN left out; None without any. Unlike a median per axis it turns with the world, so the floor
    found in a turned world is the same floor turned."""
    v = vectors[np.isfinite(vectors).all(axis=1)]
    if not len(v):
        return None
    m = v.mean(axis=0)
    for _ in range(20):
        w = 1.0 / np.maximum(np.linalg.norm(v - m, axis=1), 1e-6)
        m = (v * w[:, None]).sum(axis=0) / w.sum()
    n = float(np.linalg.norm(m))
    return m / n if n > 1e-9 else None


def body_up(points: np.ndarray) -> np.ndarray | None:
    """A first guess of up (3,): the median line from the lower ankle to the shoulders; None when
    no frame has them."""
    shoulders = 0.5 * (points[:, 11] + points[:, 12])
    ankles = points[:, [27, 28]]
    line = _unit(shoulders[:, None] - ankles)  # (F, 2, 3)
    # The lower ankle is the one farthest from the shoulders along the line's mean.
    mean = _median_direction(line.reshape(-1, 3))
    if mean is None:
        return None
    lower = np.argmax(np.nan_to_num(np.einsum("fki,i->fk", shoulders[:, None] - ankles, mean), nan=-np.inf), axis=1)
    return _median_direction(line[np.arange(len(line)), lower])


def centre_of_mass(points: np.ndarray) -> np.ndarray:
    """(F, 3) the body's centre of mass from its 33 points (NaN where a point is missing)."""
    with _quiet():  # the nose and ears, those there are
        head = np.nanmean(points[:, [0, 7, 8]], axis=1)
    trunk = 0.25 * (points[:, 11] + points[:, 12] + points[:, 23] + points[:, 24])
    total = _HEAD_MASS * head + _TRUNK_MASS * trunk
    mass = _HEAD_MASS + _TRUNK_MASS
    for (a, b), along, m in _SEGMENTS:
        total = total + m * (points[:, a] + along * (points[:, b] - points[:, a]))
        mass += m
    return total / mass


def _balance_up(points: np.ndarray, feet: np.ndarray, contacts: np.ndarray) -> np.ndarray | None:
    """The median line from the feet in contact to the centre of mass (3,), or None."""
    centres = []
    for side in (0, 1):  # a foot's contact points: its heel (side) and its toe (side + 2)
        pts = np.where(contacts[:, [side, side + 2], None], feet[:, [side, side + 2]], np.nan)
        with _quiet():
            centres.append(np.nanmean(pts, axis=1))
    with _quiet():
        support = np.nanmean(np.stack(centres), axis=0)  # (F, 3): between the feet that stand
    return _median_direction(_unit(centre_of_mass(points) - support))


@contextmanager
def _quiet() -> Iterator[None]:
    """nanmean / nanmedian of all-NaN slices warn; those frames are simply left out."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def fit_floor(points: np.ndarray, fps: float) -> FloorFit | str:
    """The floor the feet stand on, from triangulated points (F, 33, 3) in any world (metres), or
    the reason there is none (a sentence, for a warning)."""
    feet = points[:, _FEET]
    never = "the feet were never seen standing still on the floor"
    if len(feet) < 2:
        return never
    speed = np.linalg.norm(np.gradient(feet, axis=0), axis=-1) * fps
    still = np.isfinite(speed) & (speed < CONTACT_SPEED)
    min_frames = max(3, math.ceil(MIN_CONTACT_S * fps))
    up = body_up(points)
    if up is None or still.any(axis=1).sum() < min_frames:
        return never
    # Each kind's floor level along up: first a low percentile of its still points, then its plane.
    base: list[float] | None = None
    contacts = still
    for _ in range(4):
        height = np.einsum("fki,i->fk", np.nan_to_num(feet), up)
        contacts = np.zeros_like(still)
        levels = []
        for kind in (0, 1):
            cols = kind == _KIND
            h = np.where(still[:, cols], height[:, cols], np.nan)
            if not np.isfinite(h).any():
                levels.append(np.nan)
                continue
            level = float(np.nanpercentile(h, 10)) if base is None else base[kind]
            levels.append(level)
            contacts[:, cols] = still[:, cols] & (np.abs(h - level) < CONTACT_BAND)
        contacts = _without_blips(contacts, max(2, math.ceil(MIN_BLIP_S * fps)))
        if contacts.any(axis=1).sum() < min_frames:
            return never
        prior = _balance_up(points, feet, contacts)
        places = _places(feet, contacts)
        up = _normal(places, prior if prior is not None else up)
        base = _levels(places, up, levels)
    pts = feet[contacts]
    flat = pts - pts.mean(axis=0)
    flat -= np.outer(flat @ up, up)
    spread = float(np.ptp(flat @ np.linalg.svd(flat, full_matrices=False)[2][0])) if len(flat) > 1 else 0.0
    if spread < MIN_SPREAD_M:
        return (f"the feet stood on the floor at one place only ({100 * spread:.0f} cm apart; the floor needs "
                f"{100 * MIN_SPREAD_M:.0f} cm at least)")
    # The floor under the lowest contacts, as the solver finds a single view's floor.
    standing = contacts.any(axis=1)
    floor = root_motion.floor_height(np.where(contacts, np.einsum("fki,i->fk", np.nan_to_num(feet), up),
                                              np.nan)[standing])
    tilt = math.degrees(math.acos(float(np.clip(up[1], -1.0, 1.0))))
    return FloorFit(normal=up, height=floor, tilt_deg=tilt, contacts=contacts, spread_m=spread)


def _without_blips(contacts: np.ndarray, frames: int) -> np.ndarray:
    """Contacts (F, 4) without runs shorter than frames (a point triangulated wrong for a moment)."""
    from scipy import ndimage

    return np.asarray(ndimage.binary_opening(contacts, structure=np.ones((frames, 1), bool)), dtype=bool)


def _places(feet: np.ndarray, contacts: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Each run of a point's contact as one place: (kind, its median position)."""
    out = []
    for k in range(feet.shape[1]):
        idx = np.flatnonzero(contacts[:, k])
        for run in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1) if len(idx) else []:
            out.append((int(_KIND[k]), np.median(feet[run, k], axis=0)))
    return out


def _levels(places: list[tuple[int, np.ndarray]], up: np.ndarray, fallback: list[float]) -> list[float]:
    """Each kind's height along up: the median of its places (the fallback where it has none)."""
    out = []
    for kind in (0, 1):
        h = [float(x @ up) for k, x in places if k == kind]
        out.append(float(np.median(h)) if h else fallback[kind])
    return out


def _normal(places: list[tuple[int, np.ndarray]], prior: np.ndarray) -> np.ndarray:
    """The floor's normal (3,): least squares over the places the feet stood (each kind of point
    about its own height), pulled towards prior in the directions the places do not pin down. A
    place is a run of frames of one point's contact, taken at its median: the frames of one stance
    are not independent measurements, and a long stance must not outweigh the others. Places off
    the first plane by more than OUTLIER_SDS contact spreads (a point triangulated wrong for a
    while) are left out of a second fit."""
    pull = (np.eye(3) - np.outer(prior, prior)) / math.radians(PRIOR_SD_DEG) ** 2
    keep = np.ones(len(places), bool)
    normal = prior
    for _ in range(2):
        scatter = np.zeros((3, 3))
        for kind in (0, 1):
            pts = np.array([x for (k, x), ok in zip(places, keep, strict=True) if k == kind and ok]).reshape(-1, 3)
            if len(pts) > 1:
                d = pts - pts.mean(axis=0)
                scatter += d.T @ d
        normal = np.linalg.eigh(scatter / CONTACT_SD_M**2 + pull)[1][:, 0]
        normal = normal if normal @ prior > 0 else -normal
        levels = _levels([pk for pk, ok in zip(places, keep, strict=True) if ok], normal, [np.nan, np.nan])
        keep = np.array([abs(x @ normal - levels[k]) < OUTLIER_SDS * CONTACT_SD_M for k, x in places])
    return normal


@dataclass
class Levelled:
    """What choose() decided: transform (4, 4) world -> the clip's world (None: the calibration's
    kept), used ("calibration" or "feet (tilt ..., ... cm)", for the clip's metadata), warning (a
    sentence, or None)."""

    transform: np.ndarray | None
    used: str
    warning: str | None = None


def choose(points: np.ndarray, fps: float, mode: str, calibration_has_floor: bool) -> Levelled:
    """The clip's world for a mode of MODES, from triangulated points (F, 33, 3) in the
    calibration's world. calibration_has_floor: the calibration says where the floor is (its up is
    known); "auto" takes the feet's floor where it does not, or where its floor lies more than
    AUTO_TILT_DEG or AUTO_HEIGHT_M from the feet's."""
    if mode not in MODES:
        raise ValueError(f"floor mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "calibration":
        return Levelled(None, "calibration")
    fit = fit_floor(points, fps)
    if isinstance(fit, str):
        if mode == "auto" and calibration_has_floor:
            return Levelled(None, "calibration")
        why = "the calibration does not say where the floor is" if mode == "auto" else "the feet's floor was asked for"
        return Levelled(None, "calibration", f"{why}, but {fit}: the calibration's world was kept, and the floor may "
                        "be tilted or off y = 0 (film the person standing and stepping on the floor, or calibrate "
                        "with the board on the floor)")
    far = fit.tilt_deg > AUTO_TILT_DEG or abs(fit.height) > AUTO_HEIGHT_M
    if mode == "auto" and calibration_has_floor and not far:
        return Levelled(None, f"calibration (the feet's floor: {fit.describe()})")
    return Levelled(fit.transform(), f"feet ({fit.describe()})")
