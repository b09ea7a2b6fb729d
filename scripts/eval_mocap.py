"""Evaluate single-camera mocap against the Pose2Sim four-camera reconstruction.

For each of the four Pose2Sim balancing-trial cameras alone, compares the raw MediaPipe world
landmarks and our solved skeleton (forward kinematics of the MotionClip) with the reference .trc:

  PA-MPJPE    mean joint error after a per-frame similarity (Procrustes) alignment, mm
  accel err   mean |second difference| error of the aligned joints vs the reference, mm/frame^2
  bone CV     coefficient of variation of thigh, shin, upper-arm and forearm lengths, %
  foot slide  ankle travel per frame on the reference's foot-contact frames, mm/frame
  overlay     median distance, in % of the image height, between the joints seen through the camera
              (raw: MediaPipe's landmarks placed through the pinhole; solved: the clip's joints through
              the camera the clip carries) and MediaPipe's 2D landmarks: how well the rig sits on the
              person when a host looks through that camera (target: at most 2%)

over hips, knees, ankles, shoulders, elbows and wrists. Then where the solved PA-MPJPE comes from,
each camera's solved joints in that camera's frame with one part taken from the reference (seen
through the calibration): its depth along the view axis (what is left is the 2D error), its image
rays (what is left is depth), or only the depth order of each limb joint against its parent (what
priors that pick a limb's depth sign, such as joint limits, could at best reach).

The reference is Pose2Sim's own markerless triangulation (OpenPose BODY_25B, Butterworth-filtered),
not marker ground truth, and its keypoints are defined differently from MediaPipe's, so part of
every error is definition, not accuracy.
Frame n of the .trc (Frame# n+1) is video frame n in every camera (see the data MANIFEST).

    python scripts/eval_mocap.py [--data ../shared/data] [--smoothing 0.5] [--cache DIR]

--cache keeps each camera's MediaPipe landmarks in DIR (<trial>_camNN_<size>_<hash>.npz, named for the
video's content) and reuses them on the next run while the video is the same: detection is the slow
part, and the solver's experiments need the same landmarks each time.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tomllib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference_server.jobs.context import NullContext  # noqa: E402
from inference_server.mocap import root_motion, skeleton_fit  # noqa: E402
from inference_server.mocap.inference import detect  # noqa: E402
from inference_server.mocap.landmarks import Landmarks  # noqa: E402
from inference_server.mocap.options import SolveOptions  # noqa: E402
from inference_server.mocap.solve import solve  # noqa: E402
from keygrip.projection import Camera  # noqa: E402

TRIAL = Path("video") / "pose2sim_balancing"
REFERENCE = "reference_3d/S00_P00_T01_BalancingTrial_0-100_filt_butterworth.trc"
CALIBRATION = "calibration/Calib_qualisys_converted_by_pose2sim.toml"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CAMERAS = ["cam01", "cam02", "cam03", "cam04"]
# The .trc's Y-up axes (x, y, z) are the calibration's Z-up world axes (y, z, x).
TRC_TO_CALIBRATION = [2, 0, 1]

# (reference keypoint, MediaPipe landmark, canonical joint) for the joints all three share.
JOINTS = [
    ("LHip", 23, "leftUpperLeg"), ("RHip", 24, "rightUpperLeg"),
    ("LKnee", 25, "leftLowerLeg"), ("RKnee", 26, "rightLowerLeg"),
    ("LAnkle", 27, "leftFoot"), ("RAnkle", 28, "rightFoot"),
    ("LShoulder", 11, "leftUpperArm"), ("RShoulder", 12, "rightUpperArm"),
    ("LElbow", 13, "leftLowerArm"), ("RElbow", 14, "rightLowerArm"),
    ("LWrist", 15, "leftHand"), ("RWrist", 16, "rightHand"),
]
# Bones as index pairs into JOINTS.
BONES = [(0, 2), (1, 3), (2, 4), (3, 5), (6, 8), (7, 9), (8, 10), (9, 11)]
# Limbs as chains of indices into JOINTS, from the body outwards.
LIMBS = [(0, 2, 4), (1, 3, 5), (6, 8, 10), (7, 9, 11)]
# A limb joint's depth order against its parent counts only where the reference puts them this far
# apart along the view axis, m.
DEPTH_ORDER_MIN = 0.05
ANKLES = [4, 5]


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """--data, the shared data folder, for the scripts that evaluate on the Pose2Sim trial."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")


def balancing_trial(data: Path) -> Path | None:
    """The Pose2Sim balancing trial's folder under the shared data folder; None, having said so, when
    it is not there (the scripts then skip, as CI does without ../shared)."""
    trial = data / TRIAL
    if not (trial / REFERENCE).exists():
        print(f"skipped: the Pose2Sim balancing trial is not under {data} (pass --data)")
        return None
    return trial


def load_trc(path: Path) -> tuple[list[str], np.ndarray]:
    """Keypoint names and positions (F, K, 3) in metres from an OpenSim .trc file."""
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()]
    names = [n for n in rows[3][2:] if n]
    data = np.array([[float(v) for v in r[2:2 + 3 * len(names)]] for r in rows[5:] if r and r[0].strip()])
    return names, data.reshape(len(data), len(names), 3)


def procrustes_align(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """pred (F, K, 3) moved onto ref by the best similarity transform of each frame (Umeyama)."""
    mp, mr = pred.mean(axis=1, keepdims=True), ref.mean(axis=1, keepdims=True)
    p, r = pred - mp, ref - mr
    u, s, vt = np.linalg.svd(np.einsum("fki,fkj->fij", r, p))
    d = np.sign(np.linalg.det(u @ vt))
    s[:, 2] *= d
    u[:, :, 2] *= d[:, None]
    rot = u @ vt
    scale = s.sum(axis=1) / np.sum(p**2, axis=(1, 2))
    return scale[:, None, None] * np.einsum("fij,fkj->fki", rot, p) + mr


def reference_contacts(ref: np.ndarray, fps: float) -> np.ndarray:
    """(F, 2) foot contacts of the reference ankles: slow and near their lowest height."""
    ankles = ref[:, ANKLES]
    speed = np.linalg.norm(np.gradient(ankles, axis=0), axis=-1) * fps
    low = ankles[..., 1] < np.percentile(ankles[..., 1], 5, axis=0) + 0.04
    return low & (speed < 0.25)


def in_view(points: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """World points (..., 3) as (image rays (..., 2) x / depth, y / depth; depth (...,)) of a camera."""
    m = camera.world_to_camera
    cam = points @ m[:3, :3].T + m[:3, 3]
    depth = -cam[..., 2]
    return cam[..., :2] / depth[..., None], depth


def from_view(rays: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) from image rays and depths (the inverse of in_view's split)."""
    return np.concatenate([rays * depth[..., None], -depth[..., None]], axis=-1)


def error_sources(ours: np.ndarray, camera: Camera, ref: np.ndarray, ref_camera: Camera
                  ) -> dict[str, float]:
    """PA-MPJPE, mm, of the solved joints (F, 12, 3) seen through their camera with one part from the
    reference joints (F, 12, 3) seen through theirs: the reference's depth, its rays, or each limb
    joint's depth order against its parent (a wrong order mirrors the rest of the limb's depth
    about that parent)."""
    rays, depth = in_view(ours, camera)
    ref_rays, ref_depth = in_view(ref, ref_camera)
    truth = from_view(ref_rays, ref_depth)
    ordered = depth.copy()
    for limb in LIMBS:
        for parent, child in zip(limb[:-1], limb[1:], strict=False):
            step, ref_step = ordered[:, child] - ordered[:, parent], ref_depth[:, child] - ref_depth[:, parent]
            wrong = (np.sign(step) != np.sign(ref_step)) & (np.abs(ref_step) > DEPTH_ORDER_MIN)
            below = list(limb[limb.index(child):])
            ordered[:, below] -= np.where(wrong, 2 * step, 0.0)[:, None]

    def error(points: np.ndarray) -> float:
        return float(per_joint(points, truth).mean())

    return {"as solved": error(from_view(rays, depth)),
            "reference depth": error(from_view(rays, ref_depth)),
            "reference rays": error(from_view(ref_rays, depth)),
            "reference depth order": error(from_view(rays, ordered))}


def overlay(world: np.ndarray, camera: Camera, seen: np.ndarray) -> float:
    """Median distance (% of the image height) between world joints (F, 12, 3) through the camera and
    the 2D landmarks (F, 12, 2) in pixels."""
    u, v, _ = camera.project(world)
    return 100 * float(np.nanmedian(np.hypot(u - seen[..., 0], v - seen[..., 1]))) / camera.height


def metrics(pred: np.ndarray, ref: np.ndarray, world: np.ndarray, contact: np.ndarray, overlay_pct: float
            ) -> dict[str, float]:
    """pred (F, 12, 3) body-frame joints, ref (F, 12, 3), world (F, 12, 3) placed in space."""
    aligned = procrustes_align(pred, ref)
    accel = np.diff(aligned, 2, axis=0) - np.diff(ref, 2, axis=0)
    lengths = np.stack([np.linalg.norm(pred[:, a] - pred[:, b], axis=-1) for a, b in BONES], axis=1)
    step = np.linalg.norm(np.diff(world[:, ANKLES], axis=0), axis=-1)
    both = contact[1:] & contact[:-1]
    return {
        "PA-MPJPE mm": 1000 * float(np.linalg.norm(aligned - ref, axis=-1).mean()),
        "accel err mm/f2": 1000 * float(np.linalg.norm(accel, axis=-1).mean()),
        "bone CV %": 100 * float((lengths.std(axis=0) / lengths.mean(axis=0)).mean()),
        "foot slide mm/f": 1000 * float(step[both].mean()) if both.any() else float("nan"),
        "overlay %H": overlay_pct,
    }


def cache_path(video: Path, cache: Path) -> Path:
    """Where the cache keeps a video's landmarks: named for the trial, the camera and the video's
    content (its size and a hash of its first MiB), so that another video under the same name (a trial
    re-exported, another take copied in) is detected again instead of reusing another clip's landmarks."""
    with video.open("rb") as f:
        head = hashlib.sha256(f.read(2**20)).hexdigest()
    return cache / f"{video.parent.parent.name}_{video.stem}_{video.stat().st_size}_{head[:16]}.npz"


def landmarks(video: Path, cache: Path | None) -> Landmarks:
    """MediaPipe landmarks of a video, from the cache folder when it holds this video's (then kept there;
    what it held for a former video of that trial and camera is removed)."""
    cached = None if cache is None else cache_path(video, cache)
    if cached is not None and cached.exists():
        return Landmarks.load_npz(cached)
    lm = detect(video, workers=1, ctx=NullContext())
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        for stale in cached.parent.glob(f"{video.parent.parent.name}_{video.stem}_*.npz"):
            stale.unlink()
        lm.save_npz(cached)
    return lm


def per_joint(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(12,) mean error of each joint after the per-frame Procrustes alignment, mm."""
    return 1000 * np.linalg.norm(procrustes_align(pred, ref) - ref, axis=-1).mean(axis=0)


def evaluate_camera(trial: Path, cam: str, calib: dict, ref: np.ndarray, contact: np.ndarray,
                    options: SolveOptions, cache: Path | None = None
                    ) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray], dict[str, float]]:
    lm = landmarks(trial / "videos" / f"{cam}.mp4", cache)
    n = min(lm.num_frames, len(ref))
    ref, contact = ref[:n], contact[:n]
    focal = float(calib[f"cam_{cam[-2:]}"]["matrix"][0][0])
    mp_idx = [j[1] for j in JOINTS]

    raw = skeleton_fit.to_y_up(lm.pose_world[:n, mp_idx])
    cam_t = root_motion.camera_translation(lm.pose_image, lm.pose_world, lm.pose_visibility,
                                           lm.image_size, focal)
    raw_world = raw + skeleton_fit.to_y_up(cam_t[:n])[:, None]

    clip = solve(lm, SolveOptions(**{**vars(options), "focal_length_px": focal}))
    _, pos = clip.global_transforms()
    ours = pos[:n, [clip.skeleton.index(j[2]) for j in JOINTS]]
    w, h = lm.image_size
    seen = lm.pose_image[:n, mp_idx, :2] * (w, h)
    # The raw placement's camera: the pinhole at the origin of the Y-up camera frame.
    pinhole = Camera(width=w, height=h, focal_x=focal, focal_y=focal, center_x=w / 2, center_y=h / 2,
                     camera_to_world=np.eye(4))
    c = calib[f"cam_{cam[-2:]}"]
    ref_camera = Camera.from_opencv(c["matrix"], c["rotation"], c["translation"], *c["size"])
    sources = error_sources(ours, clip.cameras[0].camera, ref[..., TRC_TO_CALIBRATION], ref_camera)
    return ({"raw MediaPipe": metrics(raw, ref, raw_world, contact, overlay(raw_world, pinhole, seen)),
             "solved": metrics(ours, ref, ours, contact, overlay(ours, clip.cameras[0].camera, seen))},
            {"raw MediaPipe": per_joint(raw, ref), "solved": per_joint(ours, ref)}, sources)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--smoothing", type=float, default=0.5)
    parser.add_argument("--no-foot-lock", action="store_true")
    parser.add_argument("--cache", type=Path, help="a folder to keep and reuse MediaPipe's landmarks in")
    args = parser.parse_args()
    trial = balancing_trial(args.data)
    if trial is None:
        return 0
    names, ref_all = load_trc(trial / REFERENCE)
    ref = ref_all[:, [names.index(j[0]) for j in JOINTS]]
    fps = 60.0
    contact = reference_contacts(ref, fps)
    calib = tomllib.loads((trial / CALIBRATION).read_text())
    options = SolveOptions(smoothing=args.smoothing, foot_lock=not args.no_foot_lock)
    print(f"reference: {REFERENCE} ({len(ref)} frames); contact frames left/right: "
          f"{contact[:, 0].sum()}/{contact[:, 1].sum()}; options: {options}")

    both = {cam: evaluate_camera(trial, cam, calib, ref, contact, options, args.cache) for cam in CAMERAS}
    results = {cam: r[0] for cam, r in both.items()}
    keys = list(next(iter(results.values()))["solved"])
    header = f"{'':8} {'':14}" + "".join(f"{k:>18}" for k in keys)
    for cam, res in [*results.items(), ("mean", None)]:
        print(f"\n{cam}\n{header}")
        for kind in ("raw MediaPipe", "solved"):
            vals = res[kind] if res else {k: np.mean([r[kind][k] for r in results.values()]) for k in keys}
            print(f"{'':8} {kind:14}" + "".join(f"{vals[k]:>18.2f}" for k in keys))
    ratios = [results[c]["solved"]["PA-MPJPE mm"] / results[c]["raw MediaPipe"]["PA-MPJPE mm"] for c in CAMERAS]
    print("\nPA-MPJPE solved / raw: " + ", ".join(f"{c} {r:.2f}x" for c, r in zip(CAMERAS, ratios, strict=True))
          + " (target: at most 0.80x on each)")
    print("\nPA-MPJPE per joint, mm, raw -> solved")
    print(f"{'joint':10}" + "".join(f"{c:>16}" for c in CAMERAS))
    for j, (name, _, _) in enumerate(JOINTS):
        print(f"{name:10}" + "".join(f"{both[c][1]['raw MediaPipe'][j]:>8.1f}{both[c][1]['solved'][j]:>8.1f}"
                                     for c in CAMERAS))
    print("\nWhere the solved error is: PA-MPJPE mm in each camera's frame, with one part from the reference")
    print(f"{'':24}" + "".join(f"{c:>10}" for c in CAMERAS))
    for key in both[CAMERAS[0]][2]:
        print(f"{key:24}" + "".join(f"{both[c][2][key]:>10.1f}" for c in CAMERAS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
