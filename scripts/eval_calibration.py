"""How good our calibration is.

1. Intrinsics of Pose2Sim's cam01 from its 7 sample checkerboard photos (1088x1920, 4x7 inner
   corners, 60 mm), against the two calibrations the trial ships: Pose2Sim's own checkerboard
   calibration (Calib_scene.toml) and the Qualisys one converted by Pose2Sim
   (Calib_qualisys_converted_by_pose2sim.toml, whose distortion Pose2Sim divided by 64).
2. Extrinsics and bundle adjustment on a synthetic four-camera take (scripts/board_scene.py: known
   cameras in a ring, a board on the floor then held at 30 places, corners with 0.3 px noise): error
   of each recovered camera centre in mm, with the true intrinsics and with intrinsics calibrated from
   12 synthetic close-ups per camera. The real data has no board seen by several cameras at once (only
   cam01's intrinsics photos), so the extrinsics cannot be measured on it.

    python scripts/eval_calibration.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import cv2  # noqa: E402
from board_scene import board_poses, board_scene, closeups, ring_cameras, write_take  # noqa: E402

from inference_server.errors import KeygripError  # noqa: E402
from inference_server.jobs.context import NullContext  # noqa: E402
from inference_server.multicam.boards import Board  # noqa: E402
from inference_server.multicam.calibrate import (  # noqa: E402
    BoardView,
    CameraSources,
    Intrinsics,
    Source,
    calibrate,
    calibrate_intrinsics,
    place_cameras,
    read_board_views,
)


def photo_rms(board: Board, views: list[BoardView], matrix: np.ndarray, distortion: np.ndarray) -> float:
    """RMS reprojection error (px) of a lens on the photos' detected corners: each photo's board pose
    fitted (solvePnP) through that lens, so every calibration is scored on the same corners."""
    objp = board.object_points().astype(np.float64)
    squared, count = 0.0, 0
    for v in views:
        if v.detection is None:
            continue
        d = np.asarray(distortion, dtype=np.float64)
        _ok, r, t = cv2.solvePnP(objp, v.detection.points, matrix, d)
        _ok, r, t = cv2.solvePnP(objp, v.detection.points, matrix, d, r, t, useExtrinsicGuess=True,
                                 flags=cv2.SOLVEPNP_ITERATIVE)
        px, _ = cv2.projectPoints(objp, r, t, matrix, d)
        squared += float(np.sum((px.reshape(-1, 2) - v.detection.points) ** 2))
        count += len(objp)
    return float(np.sqrt(squared / count))


def intrinsics_table(data: Path) -> None:
    folder = data / "video" / "pose2sim_balancing" / "calibration"
    board = Board(4, 7, 0.06)
    sources = tuple(Source(p, p.name) for p in sorted((folder / "intrinsics_cam01").glob("*.jpg")))
    t0 = time.perf_counter()
    cal = calibrate(board, [CameraSources("cam01", intrinsics=sources)], NullContext())
    seconds = time.perf_counter() - t0
    views = read_board_views(board, [CameraSources("cam01", intrinsics=sources)], NullContext())["cam01"]
    (cam,) = cal.cameras
    k, _r, _t = cam.camera.camera.to_opencv()
    rows = [("ours (7 photos)", k, np.array(cam.camera.distortion))]
    for name, label in (("Calib_scene.toml", "Pose2Sim checkerboard"),
                        ("Calib_qualisys_converted_by_pose2sim.toml", "Qualisys (via Pose2Sim)")):
        doc = tomllib.loads((folder / name).read_text())
        entry = next(v for v in doc.values() if isinstance(v, dict) and "matrix" in v)
        rows.append((label, np.array(entry["matrix"]), np.array(entry["distortions"])))
        if name.startswith("Calib_qualisys"):  # Pose2Sim divided the QCA's distortion by 64: undone
            rows.append(("Qualisys, distortion x64", np.array(entry["matrix"]), 64 * np.array(entry["distortions"])))
    print(f"cam01 intrinsics: board found in {len(cam.intrinsics_views)} of 7 photos "
          f"(not in: {', '.join(cam.not_found) or 'none'}); {seconds:.1f} s. RMS: each lens on the same "
          "detected corners, a board pose per photo fitted through it")
    heads = ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "RMS px")
    print(f"{'':26s} " + " ".join(f"{h:>{w}s}" for h, w in zip(heads, (8, 8, 7, 7, 8, 8, 9, 9, 7), strict=True)))
    for label, m, d in rows:
        rms = photo_rms(board, views, m, d)
        print(f"{label:26s} {m[0, 0]:8.1f} {m[1, 1]:8.1f} {m[0, 2]:7.1f} {m[1, 2]:7.1f} {d[0]:8.4f} {d[1]:8.4f} "
              f"{d[2]:9.5f} {d[3]:9.5f} {rms:7.3f}")
    ours = rows[0][1]
    for label, m, _d in rows[1:3]:
        print(f"ours - {label}: focal {100 * (ours[0, 0] / m[0, 0] - 1):+.2f} %, principal point "
              f"({ours[0, 2] - m[0, 2]:+.1f}, {ours[1, 2] - m[1, 2]:+.1f}) px")


def rendered_table(seeds: int) -> None:
    """The whole path on images: rendered photos and frames, the board found by OpenCV, calibrated."""
    import shutil
    import tempfile

    board = Board(4, 7, 0.1)
    print(f"\nrendered 3-camera take, detection included ({seeds} seeds; 960x720 pinholes about 800 px focal "
          "length in a 2.5 m ring; 100 mm squares; 6 lens close-ups and 12 board poses per camera)")
    errors, focal, seconds = [], [], 0.0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        cams = ring_cameras(3, rng, radius=2.5, size=(960, 720), focal=(780, 820), target_height=0.6,
                            distorted=False)
        folder = Path(tempfile.mkdtemp())
        try:
            files = write_take(board, cams, board_poses(12, board, rng), folder, 6, rng)
            t0 = time.perf_counter()
            cal = calibrate(board, [CameraSources(n, (Source(lens, "lens"),), (Source(take, "take"),))
                                    for n, (lens, take) in files.items()], NullContext())
            seconds += time.perf_counter() - t0
        except KeygripError as exc:
            print(f"  seed {seed}: {exc.message}")
            continue
        finally:
            shutil.rmtree(folder)
        errors += [1000 * np.linalg.norm(c.camera.camera.position - t.centre)
                   for c, t in zip(cal.cameras, cams, strict=True)]
        focal += [100 * abs(c.camera.camera.focal_x / t.matrix[0, 0] - 1)
                  for c, t in zip(cal.cameras, cams, strict=True)]
    if errors:
        e = np.array(errors)
        print(f"camera centre error median {np.median(e):.1f} mm, mean {e.mean():.1f}, max {e.max():.1f}; focal length "
              f"error mean {np.mean(focal):.2f} %; {seconds / seeds:.1f} s per take")


def extrinsics_table(seeds: int) -> None:
    board = Board(4, 7, 0.06)
    print(f"\nsynthetic 4-camera take ({seeds} seeds; 30 board poses, 0.3 px noise): camera centre error, mm")
    print(f"{'intrinsics':12s} {'median':>7s} {'mean':>7s} {'max':>7s} {'BA RMS px':>10s} {'seconds':>8s}")
    for how in ("true", "close-ups"):
        errors, rms, seconds = [], [], 0.0
        for seed in range(seeds):
            scene = board_scene(board, cameras=4, poses=30, noise_px=0.3, seed=seed)
            t0 = time.perf_counter()
            if how == "true":
                intr = {c.name: Intrinsics(c.matrix, c.distortion, c.size, 0.0, (), ()) for c in scene.cameras}
            else:
                intr = {c.name: calibrate_intrinsics(board, c.name, closeups(board, c, 12, seed=100 * seed + i))
                        for i, c in enumerate(scene.cameras)}
            cal = place_cameras(board, intr, scene.views, NullContext())
            seconds += time.perf_counter() - t0
            rms.append(cal.bundle_rms_px)
            errors += [1000 * np.linalg.norm(c.camera.camera.position - t.centre)
                       for c, t in zip(cal.cameras, scene.cameras, strict=True)]
        e = np.array(errors)
        print(f"{how:12s} {np.median(e):7.1f} {e.mean():7.1f} {e.max():7.1f} {np.mean(rms):10.2f} "
              f"{seconds / seeds:8.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    intrinsics_table(args.data)
    extrinsics_table(args.seeds)
    rendered_table(args.seeds)
    print("\nThe real data has no board seen by several cameras at once: extrinsics are measured on the synthetic "
          "take only.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
