"""Capturing one chosen person in a shot with several: which track the request means, where that
person is on each frame, and the capture's frames kept only where they show that person.

Pose runs on each frame with everything outside the subject's box blacked out (inference.detect's
`subject` boxes), so that MediaPipe cannot find anyone far from them; where the subject is hidden
or gone the whole frame is black and nobody is found. Inside the box during a crossing another
body can still be picked up, so afterwards every frame whose pose's hips lie off the subject's
track is dropped as well: those frames are bridged by the solver (flagged INTERPOLATED or
MISSING), never filled with the other person.

A pose can also be mixed: its hips on the subject, an arm or a leg the other body's (or guessed
where the other body covers the subject's). MediaPipe's own visibility of that limb then falls well
below its usual level; on frames where someone else stands within the subject's region, such a limb
is taken as hidden: its landmarks are bridged from the subject's frames around it and its
visibility set to 0, so that the solver's joint confidence says so (mixed_limbs, bridge_limbs).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.ndimage import median_filter

from inference_server.errors import FailedPrecondition, InvalidInput
from inference_server.mocap.filters import fill_gaps
from inference_server.mocap.landmarks import Landmarks
from inference_server.mocap.people import People
from inference_server.mocap.tracks import Track, body_box, interpolate
from keygrip.v1 import mocap_pb2

# A box drawn around someone must cover this share of their body's box (or of itself, when smaller).
MIN_BOX_OVERLAP = 0.3
# The pose's hip centre may lie this many body radii from the track's and still be the subject.
MAX_HIP_OFFSET_RADII = 0.25
# The subject's path is a running median over this many sightings (see _path).
PATH_MEDIAN = 5
Box = tuple[float, float, float, float]
# The limbs as MediaPipe Pose landmarks, elbow or knee first, then wrist or ankle, then hand or foot.
LIMBS = {"left arm": (13, 15, 17, 19, 21), "right arm": (14, 16, 18, 20, 22),
         "left leg": (25, 27, 29, 31), "right leg": (26, 28, 30, 32)}
# A limb is mixed when the visibility of its first two landmarks falls this far below its median over
# the clip while someone else is near. Measured on the distractor clips: a limb taken from (or hidden
# by) the crossing person drops from about 0.9 to 0.3-0.75; a drop of 0.1 flagged legitimate dips too.
MIXED_VISIBILITY_DROP = 0.15
# Someone else is near the subject when their hip centre lies within the subject's box (mask_boxes:
# 1 body radius across, 1.3 high) widened by their own reach: 0.8 of their radius across (arms), 1 high.
NEAR_REACH = (0.8, 1.0)


def choose(people: People, subject: mocap_pb2.Subject) -> Track:
    """The track a Subject names. Raises InvalidInput (an unknown id, a point on nobody, a frame
    outside the range) or FailedPrecondition (nobody in the shot) with the people there are."""
    name = people.name
    span = f"frames {people.start}-{people.end - 1}"
    if not people.tracks:
        raise FailedPrecondition(f"no person found in {span} of {name}; pick a frame range that shows someone.",
                                 reason="NO_PERSON")
    kind = subject.WhichOneof("choice")
    if kind == "track_id":
        track = people.track(subject.track_id)
        if track is None:
            ids = ", ".join(str(t.id) for t in people.tracks)
            raise InvalidInput(f"there is no person {subject.track_id} in {span} of {name}: the people there are "
                               f"{ids} ({people.describe()}). Run DetectPeople (keygrip people) over the same "
                               "frame range and pick one of its ids.")
        return track
    if kind == "point":
        return _at_point(people, subject.point, name)
    if kind == "box":
        return _in_box(people, subject.box, name)
    return max(people.tracks, key=lambda t: (len(t.frames), -t.id))


def _at_point(people: People, point: mocap_pb2.SubjectPoint, name: str) -> Track:
    frame = int(point.frame)
    if not people.start <= frame < people.end:
        raise InvalidInput(f"subject frame {frame} is outside the captured frames "
                           f"{people.start}-{people.end - 1} of {name}; pick a frame inside them.")
    hits: list[tuple[float, Track]] = []  # the people the point lies on, with its distance from their centre
    for t in people.tracks:
        where, known = interpolate(t, np.array([frame]), people.max_gap, hold(people))
        x, y, r = where[0]
        if known[0] and abs(point.x - x) <= 0.6 * r and abs(point.y - y) <= 1.1 * r:
            hits.append((float(np.hypot(point.x - x, point.y - y)), t))
    if hits:
        return min(hits, key=lambda hit: hit[0])[1]
    raise InvalidInput(f"no person at ({point.x:.0f}, {point.y:.0f}) on frame {frame} of {name}: "
                       f"{_nearest(people, point)} Pick a point on the person's body, or a track id from DetectPeople.")


def _nearest(people: People, point: mocap_pb2.SubjectPoint) -> str:
    """"the nearest are person 2 at (x, y), 40 px away, ..." on the point's frame, for messages."""
    found = []
    for t in people.tracks:
        where, known = interpolate(t, np.array([int(point.frame)]), people.max_gap, hold(people))
        if known[0]:
            found.append((float(np.hypot(point.x - where[0][0], point.y - where[0][1])), t, where[0]))
    found.sort(key=lambda n: n[0])
    seen = ", ".join(f"person {t.id} at ({w[0]:.0f}, {w[1]:.0f}), {d:.0f} px away" for d, t, w in found[:3])
    return f"the nearest are {seen}." if seen else "nobody is seen on that frame."


def _in_box(people: People, box: mocap_pb2.SubjectBox, name: str) -> Track:
    """The person whose body (Detection.box) a box drawn on a frame overlaps most, as a share of the
    smaller of the two; InvalidInput naming the nearest people when it overlaps nobody by MIN_BOX_OVERLAP."""
    frame = int(box.frame)
    if not people.start <= frame < people.end:
        raise InvalidInput(f"subject frame {frame} is outside the captured frames "
                           f"{people.start}-{people.end - 1} of {name}; pick a frame inside them.")
    best: tuple[float, Track | None] = (0.0, None)
    for t in people.tracks:
        where, known = interpolate(t, np.array([frame]), people.max_gap, hold(people))
        if not known[0]:
            continue
        bx0, by0, bx1, by1 = body_box(*where[0])
        w = min(box.x1, bx1) - max(box.x0, bx0)
        h = min(box.y1, by1) - max(box.y0, by0)
        smaller = min((box.x1 - box.x0) * (box.y1 - box.y0), (bx1 - bx0) * (by1 - by0))
        overlap = max(w, 0.0) * max(h, 0.0) / max(smaller, 1e-9)
        if overlap > best[0]:
            best = (overlap, t)
    if best[1] is not None and best[0] >= MIN_BOX_OVERLAP:
        return best[1]
    centre = mocap_pb2.SubjectPoint(x=(box.x0 + box.x1) / 2, y=(box.y0 + box.y1) / 2, frame=frame)
    try:
        return _at_point(people, centre, name)  # its centre on someone is as good as a point there
    except InvalidInput:
        raise InvalidInput(
            f"no person in the box ({box.x0:.0f}, {box.y0:.0f}, {box.x1:.0f}, {box.y1:.0f}) on frame {frame} of "
            f"{name}: {_nearest(people, centre)} Draw the box around the person's body, or give their id.") from None


def hold(people: People) -> int:
    """Frames a person's box is kept past their first and last sightings: the detector misses some
    frames (at a clip's ends too), while the pose tracker, given the region, still finds them."""
    return people.max_gap // 3


def _path(people: People, track: Track, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The subject's (x, y, radius) on each of `frames` and whether it is known there, as
    tracks.interpolate, through a running median of PATH_MEDIAN sightings: where another body
    stands over the subject the detector reports one centre between the two, and a single such
    sighting must not pull the subject's box (and the check of whose pose it is) towards the other."""
    values = median_filter(track.centres(), size=(min(PATH_MEDIAN, len(track.frames)), 1), mode="nearest")
    detections = [replace(d, x=x, y=y, radius=r) for d, (x, y, r) in zip(track.detections, values, strict=True)]
    steady = Track(track.id, frames=list(track.frames), detections=detections)
    return interpolate(steady, frames, people.max_gap, hold(people))


def mask_boxes(people: People, track: Track, frames: np.ndarray) -> dict[int, Box]:
    """Per frame, the subject's region as a normalised (x0, y0, x1, y1) box: 2.6 body radii high
    and 2 wide (room for outstretched arms and the detector's noise; as wide as MediaPipe Pose's
    square crop let a crossing person in on more frames of the distractor clips); an empty box
    where the subject is not known."""
    where, known = _path(people, track, frames)
    w, h = people.image_size
    boxes: dict[int, Box] = {}
    for f, (x, y, r), k in zip(frames.tolist(), where, known, strict=True):
        boxes[f] = ((x - 1.0 * r) / w, (y - 1.3 * r) / h, (x + 1.0 * r) / w, (y + 1.3 * r) / h) if k else (0, 0, 0, 0)
    return boxes


def off_subject(box: Box, hips: tuple[float, float], size: tuple[int, int]) -> bool:
    """Whether a pose's hip centre (normalised) lies off the subject whose box (mask_boxes) this is:
    further from its centre than MAX_HIP_OFFSET_RADII body radii (the box is 2 radii wide); an
    empty box has nobody on it."""
    x0, y0, x1, y1 = box
    r = 0.5 * (x1 - x0) * size[0]
    if r <= 0:
        return True
    dx, dy = (hips[0] - 0.5 * (x0 + x1)) * size[0], (hips[1] - 0.5 * (y0 + y1)) * size[1]
    return bool(np.hypot(dx, dy) > MAX_HIP_OFFSET_RADII * r)


def keep_subject(landmarks: Landmarks, people: People, track: Track) -> tuple[Landmarks, list[str]]:
    """The landmarks with every frame that does not show the subject emptied (NaN, not present),
    and warnings for the frames where the subject was hidden or had left the shot."""
    frames = landmarks.frame_indices
    where, known = _path(people, track, frames)
    w, h = landmarks.image_size
    hips = landmarks.pose_image[:, [23, 24], :2].mean(axis=1) * np.array([w, h])
    offset = np.hypot(*(hips - where[:, :2]).T) / np.maximum(where[:, 2], 1.0)
    on_subject = known & landmarks.pose_present & (np.nan_to_num(offset, nan=np.inf) <= MAX_HIP_OFFSET_RADII)
    drop = landmarks.pose_present & ~on_subject
    out = landmarks
    if drop.any():
        values = {}
        for name in ("pose_image", "pose_world", "left_hand_image", "right_hand_image", "face_image"):
            arr = getattr(landmarks, name)
            if arr is not None:
                arr = arr.copy()
                arr[drop] = np.nan
                values[name] = arr
        vis = landmarks.pose_visibility.copy()
        vis[drop] = 0
        out = replace(landmarks, pose_visibility=vis, pose_present=on_subject, **values)
    warnings = []
    name = people.name
    last_seen = track.frames[-1]
    if last_seen < frames[-1] - hold(people):
        warnings.append(f"person {track.id} leaves the shot after frame {last_seen} of {name}: frames "
                        f"{last_seen + 1}-{frames[-1]} hold no motion of theirs and are flagged MISSING")
    first_seen = track.frames[0]
    if first_seen > frames[0] + hold(people):
        warnings.append(f"person {track.id} enters the shot at frame {first_seen} of {name}: frames "
                        f"{frames[0]}-{first_seen - 1} hold no motion of theirs")
    hidden = int((~on_subject).sum())
    if hidden and not warnings:
        warnings.append(f"person {track.id} is hidden or not recognised on {hidden} of {len(frames)} frames of "
                        f"{name}; those frames are bridged from the frames around them")
    mixed = mixed_limbs(out, people, track)
    if mixed.any():
        out = bridge_limbs(out, mixed)
        warnings.append(f"person {track.id} is partly hidden by someone else on {int(mixed.any(axis=1).sum())} of "
                        f"{len(frames)} frames of {name}; the limbs hidden there are bridged from the frames "
                        "around them (their confidence is 0)")
    return out, warnings


def near_others(people: People, track: Track, frames: np.ndarray) -> np.ndarray:
    """Per frame, whether someone else's body reaches into the subject's region (NEAR_REACH)."""
    where, known = _path(people, track, frames)
    near = np.zeros(len(frames), bool)
    for other in people.tracks:
        if other.id == track.id:
            continue
        at, seen = interpolate(other, frames, people.max_gap, hold(people))
        dx, dy = np.abs(at[:, 0] - where[:, 0]), np.abs(at[:, 1] - where[:, 1])
        near |= (seen & known & (dx < where[:, 2] + NEAR_REACH[0] * at[:, 2])
                 & (dy < 1.3 * where[:, 2] + NEAR_REACH[1] * at[:, 2]))
    return near


def mixed_limbs(landmarks: Landmarks, people: People, track: Track) -> np.ndarray:
    """(F, len(LIMBS)) bool: per frame and limb, whether the pose's limb is not the subject's own
    as seen: someone else is near (near_others) and MediaPipe's visibility of the limb has fallen
    MIXED_VISIBILITY_DROP below its median over the frames with a pose."""
    present = landmarks.pose_present
    mixed = np.zeros((len(present), len(LIMBS)), bool)
    if not present.any():
        return mixed
    near = near_others(people, track, landmarks.frame_indices) & present
    for k, joints in enumerate(LIMBS.values()):
        seen = np.nan_to_num(landmarks.pose_visibility[:, list(joints[:2])]).min(axis=1)
        mixed[:, k] = near & (seen < np.median(seen[present]) - MIXED_VISIBILITY_DROP)
    return mixed


def bridge_limbs(landmarks: Landmarks, mixed: np.ndarray) -> Landmarks:
    """The landmarks with each mixed limb (mixed_limbs) bridged: its image and world landmarks
    interpolated from the frames around where the limb is the subject's own (held at the clip's
    ends, as filters.fill_gaps does), its visibility 0."""
    image, world = landmarks.pose_image.copy(), landmarks.pose_world.copy()
    visibility = landmarks.pose_visibility.copy()
    for k, joints in enumerate(LIMBS.values()):
        own = landmarks.pose_present & ~mixed[:, k]
        if not mixed[:, k].any() or not own.any():
            continue
        cols = list(joints)
        image[:, cols] = fill_gaps(image[:, cols], own, len(own))[0]
        world[:, cols] = fill_gaps(world[:, cols], own, len(own))[0]
        visibility[np.ix_(mixed[:, k], np.asarray(cols))] = 0
    return replace(landmarks, pose_image=image, pose_world=world, pose_visibility=visibility)
