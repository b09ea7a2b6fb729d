"""Calibrating cameras from a board (inference_server/multicam): real OpenCV on Pose2Sim's real cam01
photos (intrinsics), a synthetic four-camera take with known poses (extrinsics and bundle
adjustment, scripts/board_scene.py), and the bad input users give."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inference_server.errors import FailedPrecondition, InvalidInput
from inference_server.jobs.context import NullContext
from inference_server.multicam.boards import Board, Detection, detect
from inference_server.multicam.calibrate import (
    BOARD_TO_WORLD,
    BoardView,
    CameraSources,
    Intrinsics,
    Source,
    bundle_adjust,
    calibrate,
    calibrate_intrinsics,
    calibration_json,
    place_cameras,
)
from keygrip.projection import Camera

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from board_scene import TrueCamera, board_scene, closeup_poses, closeups, render  # noqa: E402

PHOTOS = Path(__file__).parent / "data" / "pose2sim_intrinsics_cam01"  # 544x960, half of the originals
BOARD = Board(4, 7, 0.06)
# Pose2Sim's own checkerboard calibration of this camera (Calib_scene.toml), at half size.
POSE2SIM_F, POSE2SIM_C = 1671.5 / 2, (564.6 / 2, 933.0 / 2)


def _photos(*numbers: int) -> tuple[Source, ...]:
    names = [f"cam01_{n:02d}_int.jpg" for n in numbers]
    return tuple(Source(PHOTOS / n, n) for n in names)


@pytest.fixture(scope="module")
def cam01() -> tuple[object, str]:
    cal = calibrate(BOARD, [CameraSources("cam01", intrinsics=(Source(PHOTOS, "intrinsics_cam01/"),))], NullContext())
    return cal, calibration_json(cal)


def test_intrinsics_of_the_real_photos_agree_with_pose2sims(cam01) -> None:
    cal, _ = cam01
    (cam,) = cal.cameras
    c = cam.camera.camera
    assert len(cam.intrinsics_views) == 7 and cam.not_found == ()  # OpenCV's classic detector misses _02
    assert c.focal_x == pytest.approx(POSE2SIM_F, rel=0.01) and c.focal_y == pytest.approx(POSE2SIM_F, rel=0.01)
    assert abs(c.center_x - 0.5 - POSE2SIM_C[0]) < 6 and abs(c.center_y - 0.5 - POSE2SIM_C[1]) < 6
    assert cam.intrinsics_error_px < 0.5
    assert (c.width, c.height) == (544, 960)
    assert len(cam.camera.distortion) == 4 and -0.1 < cam.camera.distortion[0] < 0
    assert any("no board view to place it" in w for w in cal.warnings)


def test_the_calibration_file_is_keygrips_json(cam01) -> None:
    cal, text = cam01
    doc = json.loads(text)
    assert {k: doc[k] for k in ("format", "version", "units", "up")} == {
        "format": "keygrip.calibration", "version": 1, "units": "m", "up": "y"}
    (entry,) = doc["cameras"]
    assert set(entry) == {"name", "width", "height", "matrix", "distortion", "rotation", "translation",
                          "reprojection_error_px"}
    back = Camera.from_opencv(entry["matrix"], entry["rotation"], entry["translation"], entry["width"], entry["height"])
    mine = cal.cameras[0].camera.camera
    assert back.focal_x == pytest.approx(mine.focal_x) and back.center_y == pytest.approx(mine.center_y)
    assert entry["reprojection_error_px"] == pytest.approx(cal.cameras[0].reprojection_error_px)


def test_corners_are_numbered_from_the_same_physical_corner_whichever_way_up() -> None:
    gray = cv2.imread(str(PHOTOS / "cam01_03_int.jpg"), cv2.IMREAD_GRAYSCALE)
    upright, turned = detect(BOARD, gray), detect(BOARD, cv2.rotate(gray, cv2.ROTATE_180))
    assert upright is not None and turned is not None
    h, w = gray.shape
    back = np.stack([w - 1 - turned.points[:, 0], h - 1 - turned.points[:, 1]], axis=1)
    assert np.abs(back - upright.points).max() < 0.5


def test_extrinsics_and_bundle_adjustment_recover_the_cameras() -> None:
    scene = board_scene(BOARD, cameras=4, poses=30, noise_px=0.3, seed=3)
    intrinsics = {c.name: calibrate_intrinsics(BOARD, c.name, closeups(BOARD, c, 12, seed=i))
                  for i, c in enumerate(scene.cameras)}
    cal = place_cameras(BOARD, intrinsics, scene.views, NullContext())
    assert cal.floor.startswith("the board at frame 0")
    for truth, got in zip(scene.cameras, cal.cameras, strict=True):
        assert got.camera.name == truth.name
        # The world is the floor board's, as the truth's: no alignment.
        assert np.linalg.norm(got.camera.camera.position - truth.centre) < 0.02
        assert got.reprojection_error_px < 0.6 and got.extrinsics_views >= 2
    assert 0.3 < cal.bundle_rms_px < 0.6  # the noise: 0.3 px per axis


def test_bundle_adjustment_pulls_disturbed_poses_back() -> None:
    scene = board_scene(BOARD, cameras=4, poses=30, noise_px=0.3, seed=5)
    truth = {c.name: Intrinsics(c.matrix, c.distortion, c.size, 0.0, (), ()) for c in scene.cameras}
    rng = np.random.default_rng(0)
    poses = {}
    for c in scene.cameras:  # each camera 2 degrees and about 10 cm off
        m = np.eye(4)
        m[:3, :3] = cv2.Rodrigues(rng.normal(0, 0.02, 3))[0] @ c.rotation
        m[:3, 3] = c.translation + rng.normal(0, 0.06, 3)
        poses[c.name] = m
    boards = {0: np.block([[BOARD_TO_WORLD, np.zeros((3, 1))], [np.zeros((1, 3)), np.ones((1, 1))]])}
    seen = {v.key for vs in scene.views.values() for v in vs}
    for key in seen - {0}:  # each board pose from the first camera that saw it, through its disturbed pose
        v = next(v for vs in scene.views.values() for v in vs if v.key == key)
        ok, r, t = cv2.solvePnP(BOARD.object_points(), v.detection.points, truth[v.camera].matrix,
                                truth[v.camera].distortion)
        in_cam = np.eye(4)
        in_cam[:3, :3], in_cam[:3, 3] = cv2.Rodrigues(r)[0], t.ravel()
        boards[key] = np.linalg.inv(poses[v.camera]) @ in_cam
    observations = [(v.camera, v.key) for vs in scene.views.values() for v in vs]
    detections = {(v.camera, v.key): v.detection for vs in scene.views.values() for v in vs}
    fit = bundle_adjust(BOARD, truth, detections, observations, poses, boards, 0, NullContext())
    for c in scene.cameras:
        before = np.linalg.norm(-poses[c.name][:3, :3].T @ poses[c.name][:3, 3] - c.centre)
        after = np.linalg.norm(-fit.poses[c.name][:3, :3].T @ fit.poses[c.name][:3, 3] - c.centre)
        assert after < 0.015 and after < before / 3  # what the views allow: the same as from chained poses
    assert fit.rms_px < 0.5


def test_a_board_found_in_no_image_is_named() -> None:
    wrong = Board(5, 8, 0.06)  # the squares, not the inner corners
    with pytest.raises(FailedPrecondition, match=r"cam01: a checkerboard of 5x8 .* none of its 2 images "
                                                 r"\(cam01_01_int.jpg, cam01_03_int.jpg\).*inner corners"):
        calibrate(wrong, [CameraSources("cam01", intrinsics=_photos(1, 3))], NullContext())


def test_too_few_views_with_the_board() -> None:
    with pytest.raises(FailedPrecondition, match=r"cam01: .* found in only 2 of 2 images .* at least 3") as err:
        calibrate(BOARD, [CameraSources("cam01", intrinsics=_photos(1, 3))], NullContext())
    assert err.value.reason == "TOO_FEW_VIEWS"


def test_images_of_different_sizes_for_one_camera(tmp_path: Path) -> None:
    for n in (1, 3, 4):
        shutil.copy(PHOTOS / f"cam01_{n:02d}_int.jpg", tmp_path)
    small = cv2.imread(str(tmp_path / "cam01_04_int.jpg"))
    cv2.imwrite(str(tmp_path / "cam01_04_int.jpg"), cv2.resize(small, (272, 480)))
    sources = tuple(Source(p, p.name) for p in sorted(tmp_path.glob("*.jpg")))
    with pytest.raises(InvalidInput, match=r"cam01: its images differ in size \(cam01_04_int.jpg is 272x480, "
                                           r"cam01_01_int.jpg 544x960\)"):
        calibrate(BOARD, [CameraSources("cam01", intrinsics=sources)], NullContext())


def test_a_camera_that_shares_no_board_view_is_named() -> None:
    scene = board_scene(BOARD, cameras=3, poses=20, noise_px=0.3, seed=7)
    truth = {c.name: Intrinsics(c.matrix, c.distortion, c.size, 0.0, (), ()) for c in scene.cameras}
    views = dict(scene.views)
    # cam3 alone filmed other moments: its keys are nobody else's.
    views["cam3"] = [v.__class__(v.camera, 1000 + v.key, v.label, v.size, v.detection) for v in views["cam3"]]
    with pytest.raises(FailedPrecondition, match=r"cam3 \(it found the board in frames 10\d\d.*\) shares no board "
                                                 r"view with cam1, cam2"):
        place_cameras(BOARD, truth, views, NullContext())


def test_several_cameras_without_shared_views_and_symmetric_boards_are_refused() -> None:
    two = [CameraSources("a", intrinsics=_photos(1)), CameraSources("b", intrinsics=_photos(3))]
    with pytest.raises(InvalidInput, match="2 cameras: placing them needs views of the board that several"):
        calibrate(BOARD, two, NullContext())
    both = [CameraSources("a", extrinsics=_photos(1)), CameraSources("b", extrinsics=_photos(3))]
    with pytest.raises(InvalidInput, match="looks the same turned half a turn"):
        calibrate(Board(4, 6, 0.06), both, NullContext())


def test_charuco_boards_are_found_by_their_ids() -> None:
    board = Board(5, 7, 0.04, kind="charuco", marker_m=0.03)
    image = board._charuco().generateImage((500, 700), marginSize=30)
    # Seen at an angle: a homography of the printed board, on a grey background.
    src = np.float32([[0, 0], [500, 0], [500, 700], [0, 700]])
    dst = np.float32([[120, 80], [560, 140], [520, 760], [90, 700]])
    seen = cv2.warpPerspective(image, cv2.getPerspectiveTransform(src, dst), (700, 900), borderValue=128)
    found = detect(board, seen)
    assert found is not None and sorted(found.ids.tolist()) == list(range(board.corner_count))
    # Each id's pixel is where the homography puts that corner of the printed board.
    objp = board.object_points()[found.ids, :2]
    square = min((500 - 60) / 5, (700 - 60) / 7)  # printed pixels of a square: the board centred in the margin
    # Less half a pixel: the board's edge is the left edge of its first pixel column (centres on integers).
    printed = objp / 0.04 * square + [(500 - 5 * square) / 2 - 0.5, (700 - 7 * square) / 2 - 0.5]
    expected = cv2.perspectiveTransform(printed.reshape(-1, 1, 2).astype(np.float32),
                                        cv2.getPerspectiveTransform(src, dst)).reshape(-1, 2)
    assert np.abs(expected - found.points).mean() < 0.15 and np.abs(expected - found.points).max() < 0.5


# Board poses (Rodrigues, translation in m) in front of a 640x480 pinhole: whole near the bottom edge;
# and two that the image cuts off, where OpenCV's detector alone returns a full grid with false corners
# along the cut (found by a random search over cut-off poses).
WHOLE = ([0.5, 0.1, 0.05], [-0.1, 0.25, 1.6])
CUT = [([-0.5117, -0.5156, 0.4426], [-0.0396, -0.4836, 1.0594]),
       ([0.2354, -0.2064, -0.3895], [-0.3364, -0.2990, 0.8699])]


@pytest.mark.parametrize(("pose", "cut"), [(WHOLE, False), (CUT[0], True), (CUT[1], True)])
def test_a_board_cut_off_by_the_frame_is_not_taken_for_one(pose: tuple[list[float], list[float]], cut: bool) -> None:
    """Rendered through a pinhole (scripts/board_scene.render): found with its true corners while whole,
    never with false corners once the image cuts it off."""
    board = Board(4, 7, 0.1)
    k = np.array([[535.0, 0, 320], [0, 535.0, 240], [0, 0, 1]])
    cam = TrueCamera("c", k, np.zeros(4), np.eye(3), np.zeros(3), (640, 480))
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = cv2.Rodrigues(np.array(pose[0]))[0], pose[1]
    found = detect(board, render(board, cam, m))
    if cut:
        assert found is None
    else:
        truth, _ = cv2.projectPoints(board.object_points().astype(np.float64) @ m[:3, :3].T + m[:3, 3],
                                     np.zeros(3), np.zeros(3), k, np.zeros(4))
        assert found is not None and np.abs(found.points - truth.reshape(-1, 2)).max() < 0.5


def test_views_at_odds_with_the_rest_are_left_out_by_name() -> None:
    """A board found turned half a turn in one camera's view (it fits that camera alone, not the others),
    and a made-up grid in another (it fits no board through the lens): both left out, with a warning."""
    scene = board_scene(BOARD, cameras=4, poses=30, noise_px=0.3, seed=3)
    truth = {c.name: Intrinsics(c.matrix, c.distortion, c.size, 0.0, (), ()) for c in scene.cameras}
    views = {n: list(vs) for n, vs in scene.views.items()}
    shared = {v.key for v in views["cam2"] if v.key > 0} & {v.key for v in views["cam1"]}
    turned_key = min(shared)
    views["cam2"] = [v if v.key != turned_key else
                     BoardView(v.camera, v.key, v.label, v.size, Detection(v.detection.ids, v.detection.points[::-1]))
                     for v in views["cam2"]]
    bent = next(v for v in views["cam3"] if v.key > 0)
    points = bent.detection.points.copy()
    points[::3] += 6.0  # every third corner 6 px off: no plane looks like that
    views["cam3"] = [v if v is not bent else BoardView(v.camera, v.key, v.label, v.size,
                                                       Detection(v.detection.ids, points)) for v in views["cam3"]]
    cal = place_cameras(BOARD, truth, views, NullContext())
    assert any(w.startswith(f"frame {turned_key}: the cameras' views of the board disagree") and "cam2" in w
               for w in cal.warnings), cal.warnings
    assert any(w.startswith(f"cam3: the board found in frame {bent.key} does not fit its lens") for w in cal.warnings)
    for t, got in zip(scene.cameras, cal.cameras, strict=True):
        assert np.linalg.norm(got.camera.camera.position - t.centre) < 0.01


def test_a_charuco_camera_is_calibrated_from_rendered_photos(tmp_path: Path) -> None:
    """Ten close-ups of a ChArUco board rendered through a known 640x480 pinhole, written as photos and
    calibrated from their folder: the focal length and principal point come back."""
    board = Board(5, 7, 0.04, kind="charuco", marker_m=0.03)
    k = np.array([[535.0, 0, 322], [0, 535.0, 236], [0, 0, 1]])
    cam = TrueCamera("c", k, np.zeros(4), np.eye(3), np.zeros(3), (640, 480))
    for i, pose in enumerate(closeup_poses(board, cam, 10, np.random.default_rng(1))):
        cv2.imwrite(str(tmp_path / f"charuco_{i:02d}.png"), render(board, cam, pose))
    cal = calibrate(board, [CameraSources("c", intrinsics=(Source(tmp_path, "charuco_##.png"),))], NullContext())
    (got,) = cal.cameras
    c = got.camera.camera
    assert got.not_found == () and len(got.intrinsics_views) == 10 and got.intrinsics_error_px < 0.2
    assert c.focal_x == pytest.approx(535.0, rel=0.005) and c.focal_y == pytest.approx(535.0, rel=0.005)
    assert abs(c.center_x - 0.5 - 322) < 2 and abs(c.center_y - 0.5 - 236) < 2


def test_a_view_far_worse_than_the_rest_is_left_out_of_the_lens() -> None:
    cam = board_scene(BOARD, cameras=1, poses=1, seed=4).cameras[0]
    views = closeups(BOARD, cam, 10, seed=2)
    points = views[3].detection.points.copy()
    points[:7] += (5.0, -4.0)  # a row of corners pulled off (a smear, a reflection)
    views[3] = BoardView(cam.name, views[3].key, views[3].label, cam.size, Detection(views[3].detection.ids, points))
    got = calibrate_intrinsics(BOARD, cam.name, views)
    assert len(got.left_out) == 1 and got.left_out[0].startswith(f"{views[3].label} (") and len(got.used) == 9
    assert got.matrix[0, 0] == pytest.approx(cam.matrix[0, 0], rel=0.005) and got.rms_px < 0.5
