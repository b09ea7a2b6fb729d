"""The same person in every view: a view whose MediaPipe tracker followed someone else is captured
again following the person the other views see.

MediaPipe Pose tracks the first person it detects. In a studio with several people in view, one
camera can lock onto a bystander. That view's person then lies off the other views' epipolar lines
(epipolar.py) on most frames. For such a view, every person in it is found (mocap/people.py: tracks
with stable ids), the track whose hip centre lies closest to the epipolar lines of the other views'
hips is the subject, and the view is tracked again with everything outside that person blacked out
(mocap/subject.py, as single-view capture does for a chosen subject).

When no view agrees with another (two views that disagree), the first video's person is the one
the others are matched to: the user's first video names the subject.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference_server.jobs.context import JobContext
from inference_server.mocap.landmarks import Landmarks
from inference_server.mocap.swaps import MIRROR
from inference_server.multicam import epipolar
from inference_server.multicam.triangulate import normalized_points
from keygrip.projection import VideoCamera

# A view that lines up with no other on more than this share of the frames where it sees someone
# followed someone else.
MIN_AGREEING_SHARE = 0.5
_HIPS = [23, 24]


def wrong_views(cams: list[VideoCamera], lms: list[Landmarks]) -> list[int]:
    """Views whose person lines up with no other view's (either labelling) on most frames."""
    n = min(lm.num_frames for lm in lms)
    xy, conf = epipolar.view_points(cams, lms, n)
    v = len(cams)
    out = []
    for a in range(v):
        gate = epipolar.SAME_PERSON_PER_HEIGHT * cams[a].camera.height
        agree = np.zeros(n, dtype=bool)
        for b in range(v):
            if b != a:
                cost = np.fmin(epipolar.pair_cost(cams, xy, conf, a, b),
                               epipolar.pair_cost(cams, xy, conf, a, b, MIRROR))
                agree |= cost < gate
        seen = (conf[a] >= epipolar.MIN_CONFIDENCE).sum(axis=1) >= 4
        if seen.any() and agree[seen].mean() < MIN_AGREEING_SHARE:
            out.append(a)
    if len(out) == v:
        return out[1:]  # nobody agrees: the first video names the subject
    return out


def follow_subject(paths: list[Path], names: list[str], ranges: list[tuple[int, int | None]],
                   lms: list[Landmarks | None], cams: list[VideoCamera], hands: bool, face: bool, max_side: int,
                   ctx: JobContext) -> tuple[list[Landmarks | None], list[str]]:
    """The views' landmarks with every view that followed someone else tracked again on the person
    the other views see, and warnings saying which views and whom."""
    from inference_server.mocap.inference import detect
    from inference_server.mocap.people import find_people
    from inference_server.mocap.subject import keep_subject, mask_boxes

    seen = [i for i, lm in enumerate(lms) if lm is not None]
    if len(seen) < 2:
        return lms, []
    views = [lm for lm in lms if lm is not None]
    wrong = [seen[i] for i in wrong_views([cams[i] for i in seen], views)]
    if not wrong:
        return lms, []
    good = [i for i in seen if i not in wrong]
    out, warnings = list(lms), []
    for v in wrong:
        ctx.check_cancelled()
        start, end = ranges[v]
        people = find_people(paths[v], start=start, end=end, ctx=ctx, name=names[v])
        best, best_cost = None, np.inf
        for track in people.tracks:
            # Rows count from the first frame the range holds (1001 on a plate numbered from 1001).
            cost = _track_cost(track.frames, [(d.x, d.y) for d in track.detections], people.start, cams[v],
                               [(cams[g], out[g]) for g in good])
            if cost < best_cost:
                best, best_cost = track, cost
        gate = epipolar.SAME_PERSON_PER_HEIGHT * cams[v].camera.height
        if best is None or not best_cost < gate:
            warnings.append(f"MediaPipe followed someone else in {names[v]} than in the other videos, and nobody "
                            "there lines up with the person they see: its frames are left out where they disagree")
            continue
        frames = np.arange(people.start, people.end)
        lm = detect(paths[v], start=start, end=end, hands=hands, face=face, workers=1, max_side=max_side,
                    subject=mask_boxes(people, best, frames), ctx=ctx)
        lm, subject_warnings = keep_subject(lm, people, best)
        out[v] = lm
        warnings.append(f"MediaPipe followed someone else in {names[v]} than in the other videos: captured person "
                        f"{best.id} there instead, who lines up with them")
        warnings.extend(subject_warnings)
    return out, warnings


def _track_cost(frames: list[int], hips_px: list[tuple[float, float]], start: int, cam: VideoCamera,
                others: list[tuple[VideoCamera, Landmarks | None]]) -> float:
    """Median pixel distance of a track's hip centres from the epipolar lines of the other views'
    hip midpoints on the same frames (summed over those views' medians)."""
    idx = np.asarray(frames, dtype=np.int64) - start
    pts = normalized_points(cam, np.asarray(hips_px, dtype=np.float64))
    total = 0.0
    for other, lm in others:
        if lm is None:
            continue
        ok = (idx >= 0) & (idx < lm.num_frames)
        rows = idx[ok]
        theirs = lm.pose_image[rows][:, _HIPS, :2].mean(axis=1) * lm.image_size
        visible = np.asarray(lm.pose_present, bool)[rows]
        if not visible.any():
            return np.inf
        e = epipolar.essential(cam, other)
        d = epipolar.distance(e, pts[ok][visible], normalized_points(other, theirs[visible]),
                              0.5 * (cam.camera.focal_x + other.camera.focal_x))
        total += float(np.nanmedian(d)) if np.isfinite(d).any() else np.inf
    return total / max(1, len(others))
