"""Hands triangulated where two views see them: cam01 and cam02 of the Pose2Sim trial with real
MediaPipe hand tracking, in the Qualisys calibration's world."""

from __future__ import annotations

import numpy as np
from pose2sim_trial import CAM01, CAM02, TOML

from inference_server.jobs.context import NullContext
from inference_server.mocap.options import SolveOptions
from inference_server.multicam import seen_parts
from inference_server.multicam.calibration_files import read_calibration
from inference_server.multicam.capture import MulticamOptions, detect_views, reconstruct


def test_hands_seen_by_two_views_are_triangulated_near_the_wrists() -> None:
    cams = read_calibration(TOML).cameras[:2]
    options = MulticamOptions(solve=SolveOptions(hands=True), offsets=[0, 0], max_side=640)
    # Frames 24-54: the man lifts his right leg, both hands in sight of both cameras on many frames.
    found = detect_views([CAM01, CAM02], ["cam01", "cam02"], [(24, 54), (24, 54)], options, NullContext())
    views = [lm for lm in found if lm is not None]
    out = reconstruct(views, cams, ["cam01", "cam02"], 60.0, options)
    clip = out.clip
    assert "leftIndexProximal" in clip.skeleton.names and np.isfinite(clip.rotations).all()
    said = dict(part.rsplit(" ", 1) for part in clip.metadata["triangulated_parts"].split(", "))
    assert set(said) == {"left hand", "right hand"}
    body = out.points.points
    for name, wrist in (("left_hand_image", 15), ("right_hand_image", 16)):
        part = seen_parts.triangulate_part(out.views, clip.cameras, name, np.nan_to_num(body))
        assert part is not None and part.used.sum() >= 10, name
        assert said[name.removesuffix("_image").replace("_", " ")] == f"{part.used.sum()}/{clip.num_frames}"
        used = part.used
        # The triangulated hand hangs on the body's wrist, triangulated on its own from the pose.
        gap = np.linalg.norm(part.points[used, 0] - body[used, wrist], axis=-1)
        assert np.median(gap) < 0.04 and gap.max() < seen_parts.MAX_WRIST_GAP_M, gap
        # Through each camera it lies on that view's 2D hand, where one view's hand, placed at the
        # body's wrist at the depth MediaPipe guessed, misses the other view's by far more.
        for best in (0, 1):
            single = seen_parts.lifted(out.views[best], clip.cameras[best], name, np.nan_to_num(body))
            other = 1 - best
            detected = getattr(out.views[other], name)[used, :, :2] * out.views[other].image_size
            tri = np.linalg.norm(seen_parts.pixels_of(clip.cameras[other], part.points[used]) - detected, axis=-1)
            one = np.linalg.norm(seen_parts.pixels_of(clip.cameras[other], single[used]) - detected, axis=-1)
            assert np.nanmean(tri) < 6.0 and np.nanmean(tri) < 0.5 * np.nanmean(one), (name, best, tri, one)
        for v in (0, 1):  # and on each view's own hand
            detected = getattr(out.views[v], name)[used, :, :2] * out.views[v].image_size
            tri = np.linalg.norm(seen_parts.pixels_of(clip.cameras[v], part.points[used]) - detected, axis=-1)
            assert np.nanmean(tri) < 6.0
    # What the hand solver reads: the view's own landmarks where no two views agree, and elsewhere
    # the triangulated hand as that view sees it: on its 2D hand, the depth now from the triangulation.
    view, parts = seen_parts.seen_view(out.views, clip.cameras, 0, np.nan_to_num(body))
    for name in ("left_hand_image", "right_hand_image"):
        used, own, read = parts[name].used, getattr(out.views[0], name), getattr(view, name)
        np.testing.assert_array_equal(read[~used], own[~used])
        px = (read[used, :, :2] - own[used, :, :2]) * out.views[0].image_size
        assert np.nanmean(np.linalg.norm(px, axis=-1)) < 6.0
        assert not np.allclose(read[used, :, 2], own[used, :, 2])
