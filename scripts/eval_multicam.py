"""Evaluate multi-camera capture on the Pose2Sim balancing trial against its reference 3D.

MediaPipe runs once per view (the four views side by side, as the capture job runs them); then for
all 4 views and every subset of 3 and of 2, the views are synchronised, associated, triangulated and
solved exactly as inference_server.multicam.capture does, and compared with the reference .trc:

  MPJPE      mean joint error in the calibrated world, no alignment at all, mm
  PA-MPJPE   after a per-frame similarity (Procrustes) alignment, mm
  def. part  MPJPE left after removing a constant per-joint offset in the pelvis frame: what a
             different definition of the joints (MediaPipe vs OpenPose BODY_25B) alone would
             leave; MPJPE minus this is an estimate of the definition part (an upper bound: a
             constant bias of either calibration or detector counts here too)
  slide      ankle travel per frame on the reference's foot-contact frames, mm/frame (as
             scripts/eval_mocap.py measures it: what foot locking trades against accuracy)

for the triangulated points ("points") and the solved skeleton ("solved", forward kinematics of the
MotionClip, after constant bone lengths, filtering and foot locking), per joint and in the mean. The
single-view solve of each camera alone (scripts/eval_mocap.py's path, PA-MPJPE only: one view has no
calibrated world position) is the baseline 2 views must beat.

The reference is Pose2Sim's OpenPose triangulation with the same calibration, not marker truth
(see the data MANIFEST). The videos are synchronised (MANIFEST), so offsets 0 are given; the offsets
the capture finds by itself are printed too. The floor found from the feet (multicam/floor.py) is
compared with the calibration's (the lab's floor at y = 0, Z up): its tilt and height, for all 4
views and every pair, and after the calibration's world is turned and shifted by a known amount.
Speed: the N views decoded and inferred in parallel against N bare single-view loops one after the
other, in the same run (a ratio; the machine is shared).

    python scripts/eval_multicam.py [--data ../shared/data] [--calibration qca|toml|scene]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_mocap import (  # noqa: E402
    ANKLES,
    REFERENCE,
    add_data_argument,
    balancing_trial,
    load_trc,
    procrustes_align,
    reference_contacts,
)

from inference_server.jobs.context import NullContext  # noqa: E402
from inference_server.media.video import probe  # noqa: E402
from inference_server.mocap.inference import detect  # noqa: E402
from inference_server.mocap.landmarks import Landmarks  # noqa: E402
from inference_server.mocap.options import SolveOptions  # noqa: E402
from inference_server.mocap.solve import solve  # noqa: E402
from inference_server.multicam.calibration_files import read_calibration  # noqa: E402
from inference_server.multicam.capture import (  # noqa: E402
    MulticamOptions,
    detect_views,
    fit_to_video,
    reconstruct,
    view_workers,
)
from keygrip.projection import VideoCamera  # noqa: E402

CALIBRATIONS = {"toml": "calibration/Calib_qualisys_converted_by_pose2sim.toml",
                "qca": "calibration/Calib.qca.txt", "scene": "calibration/Calib_scene.toml"}
CAMERAS = ["cam01", "cam02", "cam03", "cam04"]

# (reference keypoint, MediaPipe landmark, canonical joint or None where the skeleton has none).
JOINTS = [
    ("LHip", 23, "leftUpperLeg"), ("RHip", 24, "rightUpperLeg"),
    ("LKnee", 25, "leftLowerLeg"), ("RKnee", 26, "rightLowerLeg"),
    ("LAnkle", 27, "leftFoot"), ("RAnkle", 28, "rightFoot"),
    ("LShoulder", 11, "leftUpperArm"), ("RShoulder", 12, "rightUpperArm"),
    ("LElbow", 13, "leftLowerArm"), ("RElbow", 14, "rightLowerArm"),
    ("LWrist", 15, "leftHand"), ("RWrist", 16, "rightHand"),
    ("LHeel", 29, None), ("RHeel", 30, None), ("LBigToe", 31, None), ("RBigToe", 32, None), ("Nose", 0, None),
]
BODY: list[tuple[str, int, str]] = [(a, b, c) for a, b, c in JOINTS if c is not None]


def pelvis_frames(ref: np.ndarray, names: list[str]) -> np.ndarray:
    """(F, 3, 3) body frames of the reference: x along the hips (left - right), y up the trunk."""
    lh, rh, neck = (ref[:, names.index(n)] for n in ("LHip", "RHip", "Neck"))
    x = lh - rh
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y = neck - 0.5 * (lh + rh)
    y -= np.sum(y * x, axis=-1, keepdims=True) * x
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def errors(pred: np.ndarray, ref: np.ndarray, frames: np.ndarray, contact: np.ndarray) -> dict[str, np.ndarray]:
    """Per-joint MPJPE, PA-MPJPE and MPJPE after a constant pelvis-frame offset, mm, over finite frames;
    the ankles' (pred[:, ANKLES]) slide over the contact frames (F, 2), mm/frame."""
    ok = np.isfinite(pred).all(axis=(1, 2))
    step = np.linalg.norm(np.diff(pred[:, ANKLES], axis=0), axis=-1)
    still = contact[1:] & contact[:-1] & (ok[1:] & ok[:-1])[:, None]
    p, r, rot = pred[ok], ref[ok], frames[ok]
    diff = p - r
    offset = np.einsum("fij,fkj->fki", np.transpose(rot, (0, 2, 1)), diff).mean(axis=0)  # in the body frame
    corrected = p - np.einsum("fij,kj->fki", rot, offset)
    return {"MPJPE": 1000 * np.linalg.norm(diff, axis=-1).mean(axis=0),
            "PA-MPJPE": 1000 * np.linalg.norm(procrustes_align(p, r) - r, axis=-1).mean(axis=0),
            "def. part": 1000 * np.linalg.norm(corrected - r, axis=-1).mean(axis=0),
            "slide": np.array([1000 * step[still].mean() if still.any() else np.nan]),
            "frames": np.array([ok.sum()])}


def _tilt_height(m: np.ndarray) -> tuple[float, float]:
    """How far a world transform tilts +Y (degrees) and moves y = 0 (cm)."""
    up = m[:3, :3] @ np.array([0.0, 1.0, 0.0])
    return float(np.degrees(np.arccos(np.clip(up[1], -1.0, 1.0)))), float(-100 * m[1, 3])


def floor_lines(views: list[Landmarks], cams: list[VideoCamera], fps: float) -> None:
    """The feet's floor against the calibration's, for all views and each pair; and recovered from
    the calibration turned 25 degrees and moved, up to a turn about Y."""
    import cv2

    def feet_world(subset: Sequence[int], turn: np.ndarray) -> np.ndarray | None:
        moved = [dataclasses.replace(cams[i], camera=dataclasses.replace(
            cams[i].camera, camera_to_world=turn @ cams[i].camera.camera_to_world)) for i in subset]
        out = reconstruct([views[i] for i in subset], moved, [CAMERAS[i] for i in subset], fps,
                          MulticamOptions(offsets=[0] * len(subset), floor="feet"))
        if not out.clip.metadata["floor"].startswith("feet"):
            return None
        # The clip's world from the untouched calibration's.
        return out.clip.cameras[0].camera.camera_to_world @ np.linalg.inv(cams[subset[0]].camera.camera_to_world)

    turn = np.eye(4)
    turn[:3, :3] = cv2.Rodrigues(np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8]) * np.radians(25))[0]
    turn[:3, 3] = (0.4, -1.3, 0.7)
    parts = []
    for k in (len(CAMERAS), 2):
        for subset in itertools.combinations(range(len(CAMERAS)), k):
            m, again = feet_world(subset, np.eye(4)), feet_world(subset, turn)
            name = "+".join(CAMERAS[i][-1] for i in subset)
            if m is None or again is None:
                parts.append(f"{name} none")
                continue
            tilt, height = _tilt_height(m)
            off, moved = _tilt_height(again @ np.linalg.inv(m))
            parts.append(f"{name} {tilt:.1f}°/{height:.1f} cm (turned: {off:.2f}°/{moved:.1f} cm)")
    print("\nfloor from the feet against the calibration's floor (tilt / height of the feet's y = 0 above the lab's; "
          "turned: the same from the calibration turned 25° and moved, against the untouched fit, up to a yaw): "
          + ", ".join(parts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--calibration", choices=sorted(CALIBRATIONS), default="toml")
    parser.add_argument("--repeats", type=int, default=2, help="speed runs of each kind, alternating")
    parser.add_argument("--cache", type=Path, help="keep each view's landmarks here and reuse them (no speed test)")
    args = parser.parse_args()
    trial = balancing_trial(args.data)
    if trial is None:
        return 0
    names, ref_all = load_trc(trial / REFERENCE)
    frames = pelvis_frames(ref_all, names)
    ref_pts = ref_all[:, [names.index(j[0]) for j in JOINTS]]
    ref_body = ref_all[:, [names.index(j[0]) for j in BODY]]
    assert [BODY[i][0] for i in ANKLES] == ["LAnkle", "RAnkle"] == [JOINTS[i][0] for i in ANKLES]
    cal = read_calibration(trial / CALIBRATIONS[args.calibration])
    paths = [trial / "videos" / f"{c}.mp4" for c in CAMERAS]
    infos = [probe(p) for p in paths]
    cams = [fit_to_video(c, i, p.name, cal.source) for c, i, p in zip(cal.cameras, infos, paths, strict=True)]
    fps = infos[0].fps
    contact = reference_contacts(ref_body, fps)

    print(f"calibration: {cal.source}; reference: {REFERENCE}")
    cached = [args.cache / f"{c}.npz" for c in CAMERAS] if args.cache else []
    if cached and all(c.exists() for c in cached):
        lms: list[Landmarks | None] = [Landmarks.load_npz(c) for c in cached]
    else:
        n, total = len(paths), sum(i.frame_count for i in infos)
        names = [p.name for p in paths]
        auto = view_workers(n)
        best = {"bare": np.inf, "parallel": np.inf, "default": np.inf}
        # Alternating, best of --repeats each: the machine's load drifts between runs.
        for _ in range(args.repeats):
            t = time.perf_counter()
            for p in paths:
                detect(p, workers=1, ctx=NullContext())
            best["bare"] = min(best["bare"], time.perf_counter() - t)
            t = time.perf_counter()
            lms = detect_views(paths, names, [(0, None)] * n, MulticamOptions(offsets=[0] * n, workers=n),
                               NullContext())
            best["parallel"] = min(best["parallel"], time.perf_counter() - t)
            t = time.perf_counter()
            detect_views(paths, names, [(0, None)] * n, MulticamOptions(offsets=[0] * n), NullContext())
            best["default"] = min(best["default"], time.perf_counter() - t)
        print(f"speed, {n} views x {infos[0].frame_count} frames on {os.cpu_count()} cores, best of {args.repeats}: "
              f"{n} bare single-view loops one after the other {total / best['bare']:.1f} fps; all {n} views in "
              f"parallel {total / best['parallel']:.1f} fps ({best['bare'] / best['parallel']:.2f}x); the default "
              f"({auto} at a time) {total / best['default']:.1f} fps ({best['bare'] / best['default']:.2f}x); "
              "same run, machine shared with other work")
        for lm, c in zip(lms, cached, strict=False):
            args.cache.mkdir(parents=True, exist_ok=True)
            if lm is not None:
                lm.save_npz(c)
    views = [lm for lm in lms if lm is not None]
    assert len(views) == len(CAMERAS), "a view lost the person"

    found = reconstruct(views, cams, CAMERAS, fps, MulticamOptions(), offsets=None)
    first = found.clip.cameras[0].frame_offset  # cam01's frame at the clip's first frame: the reference's row
    _, pos = found.clip.global_transforms()
    got = errors(pos[:, [found.clip.skeleton.index(j[2]) for j in BODY]], ref_body[first:first + found.clip.num_frames],
                 frames[first:first + found.clip.num_frames], contact[first:first + found.clip.num_frames])
    print(f"offsets found from the person (no timecodes in these files): {found.sync.offsets}, confidence "
          f"{found.sync.confidence:.2f} (per view {[round(c, 2) for c in found.sync.per_view]}; the shifts that won "
          f"the resamplings {found.sync.spread}); 4 views solved with "
          f"them: MPJPE {got['MPJPE'].mean():.1f} mm, PA-MPJPE {got['PA-MPJPE'].mean():.1f} mm")

    print("\nsingle view alone, solved (PA-MPJPE mm over the 12 body joints, no calibrated position; foot slide):")
    single = {}
    for cam, lm in zip(CAMERAS, views, strict=True):
        focal = cams[CAMERAS.index(cam)].camera.focal_x
        clip = solve(lm, SolveOptions(focal_length_px=focal))
        _, pos = clip.global_transforms()
        pred = pos[:, [clip.skeleton.index(j[2]) for j in BODY]]
        e = errors(pred, ref_body, frames, contact)
        single[cam] = float(e["PA-MPJPE"].mean())
        print(f"  {cam}: {single[cam]:.1f} mm, slide {e['slide'][0]:.1f} mm/frame")

    rows = []
    for k in (4, 3, 2):
        for subset in itertools.combinations(range(len(CAMERAS)), k):
            out = reconstruct([views[i] for i in subset], [cams[i] for i in subset], [CAMERAS[i] for i in subset],
                              fps, MulticamOptions(offsets=[0] * k))
            pts = out.points.points[:, [j[1] for j in JOINTS]]
            _, pos = out.clip.global_transforms()
            solved = pos[:, [out.clip.skeleton.index(j[2]) for j in BODY]]
            body_pts = out.points.points[:, [j[1] for j in BODY]]
            rows.append(("+".join(CAMERAS[i][-1] for i in subset), errors(pts, ref_pts, frames, contact),
                         errors(solved, ref_body, frames, contact), errors(body_pts, ref_body, frames, contact)))

    def table(title: str, pick: int, joints: Sequence[tuple[str, int, str | None]]) -> None:
        print(f"\n{title}")
        print(f"{'views':10}{'frames':>7}{'MPJPE':>8}{'PA':>8}{'def.':>8}{'slide':>8}  per joint MPJPE (mm): "
              + " ".join(f"{j[0]:>9}" for j in joints))
        for name, *res in rows:
            e = res[pick]
            print(f"{name:10}{int(e['frames'][0]):>7}{e['MPJPE'].mean():>8.1f}{e['PA-MPJPE'].mean():>8.1f}"
                  f"{e['def. part'].mean():>8.1f}{e['slide'][0]:>8.1f}  " + " ".join(f"{v:>9.0f}" for v in e["MPJPE"]))

    table("triangulated points (17 keypoints)", 0, JOINTS)
    table("solved skeleton (12 body joints)", 1, BODY)
    print("\ntriangulated points, the 12 body joints alone (aligned on those 12, as the solved skeleton): "
          + ", ".join(f"{n} {r[2]['MPJPE'].mean():.1f}/{r[2]['PA-MPJPE'].mean():.1f}" for n, *r in rows)
          + " (MPJPE/PA-MPJPE mm)")
    floor_lines(views, cams, fps)
    best_single = min(single.values())
    pairs = [r for r in rows if r[0].count("+") == 1]
    print(f"\nbest single view PA-MPJPE {best_single:.1f} mm; 2-view solved PA-MPJPE "
          f"{min(r[2]['PA-MPJPE'].mean() for r in pairs):.1f}-{max(r[2]['PA-MPJPE'].mean() for r in pairs):.1f} mm")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
