"""The calibrate job through the real server over gRPC, the SDK's board and camera naming, and the
`keygrip calibrate` command, on Pose2Sim's real cam01 photos (tests/data/pose2sim_intrinsics_cam01)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

import keygrip
from keygrip import calibrate, events
from keygrip.v1 import calibrate_pb2

REPO = Path(__file__).resolve().parents[1]
PHOTOS = Path(__file__).parent / "data" / "pose2sim_intrinsics_cam01"
FILES = sorted(PHOTOS.glob("*.jpg"))
BOARD = calibrate.parse_board("4x7", "60mm")


def test_a_calibrate_job_writes_keygrips_calibration(client: keygrip.Client, tmp_path: Path) -> None:
    job = client.calibrate(BOARD, {"cam01": FILES})
    stages = {ev.stage for ev in job.watch() if isinstance(ev, events.ProgressEvent)}
    result = job.result()
    assert "finding the board" in stages
    (cam,) = result.cameras
    assert cam.name == "cam01" and (cam.width, cam.height) == (544, 960)
    assert cam.matrix[0] == pytest.approx(1671.5 / 2, rel=0.01)  # Pose2Sim's own calibration, at half size
    assert list(cam.intrinsics_views) == [f.name for f in FILES] and not cam.not_found
    assert 0 < cam.reprojection_error_px < 0.5
    assert any("no board view to place it" in w for w in result.warnings)
    client.download(result.calibration.id, tmp_path / "calib.json")
    doc = json.loads((tmp_path / "calib.json").read_text())
    assert doc["format"] == "keygrip.calibration" and doc["up"] == "y"
    assert doc["cameras"][0]["matrix"][0][0] == pytest.approx(cam.matrix[0])


def test_a_board_in_no_image_fails_the_job_naming_the_files(client: keygrip.Client) -> None:
    wrong = calibrate.parse_board("5x8", "60mm")  # the squares, not the inner corners
    job = client.calibrate(wrong, {"cam01": FILES[:2]})
    with pytest.raises(keygrip.JobFailed, match=r"cam01: .* none of its 2 images \(cam01_01_int.jpg, "
                                                r"cam01_02_int.jpg\).*inner corners"):
        job.result(timeout=120)


def test_bad_requests_are_refused_at_submit(client: keygrip.Client) -> None:
    with pytest.raises(keygrip.InvalidArgument, match="no camera to calibrate"):
        client.calibrate(BOARD, {})
    with pytest.raises(keygrip.InvalidArgument, match="at least 2x2 inner corners"):
        client.calibrate(calibrate_pb2.CalibrationBoard(columns=1, rows=7, square_m=0.06), {"cam01": FILES[:1]})


def test_cancel_stops_a_calibration(client: keygrip.Client) -> None:
    job = client.calibrate(BOARD, {"cam01": FILES})
    for ev in job.watch():
        if isinstance(ev, events.ProgressEvent) and ev.stage == "finding the board":
            job.cancel()
            break
    job.wait(timeout=60)
    assert job.state == "cancelled"
    with pytest.raises(keygrip.JobCancelled):
        job.result()


def test_cameras_are_named_as_people_lay_out_their_files(tmp_path: Path) -> None:
    (tmp_path / "cam02").mkdir()
    (tmp_path / "cam02" / "a.jpg").write_bytes(b"")
    (tmp_path / "cam03.mp4").write_bytes(b"")
    groups = calibrate.group_cameras([str(FILES[0]), str(FILES[1]), str(tmp_path / "cam02"),
                                      str(tmp_path / "cam03.mp4"), f"left={tmp_path / 'cam03.mp4'}"])
    assert list(groups) == ["pose2sim_intrinsics_cam01", "cam02", "cam03", "left"]
    assert groups["pose2sim_intrinsics_cam01"] == FILES[:2]
    assert calibrate.parse_board("charuco:5x7", "40mm", "30mm").kind == calibrate_pb2.CalibrationBoard.KIND_CHARUCO
    with pytest.raises(ValueError, match="give a number with its unit"):
        calibrate.parse_board("4x7", "60")
    with pytest.raises(ValueError, match="COLUMNSxROWS"):
        calibrate.parse_board("four by seven", "60mm")
    with pytest.raises(ValueError, match="needs its marker size"):
        calibrate.parse_board("charuco:5x7", "40mm")


def _keygrip(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", address, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=180)


def test_keygrip_calibrate_command(shared_server, tmp_path: Path) -> None:
    out = _keygrip(shared_server.address, "calibrate", "--board", "4x7", "--square", "60mm",
                   *[f"cam01={f}" for f in FILES], "--out", str(tmp_path / "calib.json"))
    assert out.returncode == 0, out.stderr
    assert "cam01: 544x960, f 8" in out.stdout and f"calibration written to {tmp_path / 'calib.json'}" in out.stdout
    assert json.loads((tmp_path / "calib.json").read_text())["cameras"][0]["name"] == "cam01"
    bad = _keygrip(shared_server.address, "calibrate", "--board", "4x7", "--square", "60", str(FILES[0]),
                   "--out", str(tmp_path / "x.json"))
    assert bad.returncode == 1 and "INVALID_ARGUMENT: square size '60': give a number with its unit" in bad.stderr


def test_keygrip_calibrate_places_rendered_cameras_on_the_floor(shared_server, tmp_path: Path) -> None:
    """A take rendered through three known cameras (scripts/board_scene.py): lens close-ups per camera,
    then the board on the floor and held at 9 places, filmed as numbered frames by all three at once
    (folders of frames: uploaded as image sequences)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import numpy as np
    from board_scene import board_poses, ring_cameras, write_take

    from inference_server.multicam.boards import Board
    from keygrip.projection import Camera

    # A 4x7 board of 100 mm squares: at 640x480 (about 535 px focal length) a 60 mm one on the floor 2 m
    # away is too small to find.
    board, rng = Board(4, 7, 0.1), np.random.default_rng(2)
    cams = ring_cameras(3, rng, radius=2.0, size=(640, 480), focal=(520, 550), target_height=0.6, distorted=False)
    folders = write_take(board, cams, board_poses(10, board, rng), tmp_path / "take", 5, rng)
    out = _keygrip(shared_server.address, "calibrate", "--board", "4x7", "--square", "10cm",
                   *[f"{n}={lens}" for n, (lens, _take) in folders.items()],
                   "--extrinsics", *[f"{n}={take}" for n, (_lens, take) in folders.items()],
                   "--out", str(tmp_path / "calib.json"))
    assert out.returncode == 0, out.stderr
    assert "world: the board at frame 0, seen by cam1, cam2, cam3; bundle adjustment RMS" in out.stdout
    doc = json.loads((tmp_path / "calib.json").read_text())
    for truth, entry in zip(cams, doc["cameras"], strict=True):
        got = Camera.from_opencv(entry["matrix"], entry["rotation"], entry["translation"], 640, 480)
        assert entry["name"] == truth.name and got.focal_x == pytest.approx(truth.matrix[0, 0], rel=0.01)
        # In the floor board's world (Y up, metres), as the truth: no alignment.
        assert np.linalg.norm(got.position - truth.centre) < 0.03 and got.position[1] > 1.0


def test_calibrating_from_videos_through_the_sdk(client: keygrip.Client, tmp_path: Path) -> None:
    """The same kind of take as H.264 videos, one for each camera's lens and one synchronised take each,
    cropped 8 px at the right as Pose2Sim's 1080-wide videos of its 1088-wide cameras."""
    sys.path.insert(0, str(REPO / "scripts"))
    import numpy as np
    from board_scene import board_poses, ring_cameras, write_take

    from inference_server.multicam.boards import Board

    board, rng = Board(4, 7, 0.1), np.random.default_rng(2)
    cams = ring_cameras(3, rng, radius=2.0, size=(640, 480), focal=(520, 550), target_height=0.6, distorted=False)
    videos = write_take(board, cams, board_poses(10, board, rng), tmp_path, 5, rng, video=True, crop_take=8)
    lens = calibrate.group_cameras([str(v[0]) for v in videos.values()])
    take = calibrate.group_cameras([str(v[1]) for v in videos.values()])
    assert list(lens) == list(take) == ["cam1", "cam2", "cam3"]  # named by the videos' stems
    result = client.calibrate(calibrate.parse_board("4x7", "100mm"), lens, take).result(timeout=120)
    assert [w.split(":")[0] for w in result.warnings] == ["cam1", "cam2", "cam3"]
    assert "cam1.mp4 frame 0 is 632x480, its lens views 640x480; taken as the same lens cropped" in result.warnings[0]
    for truth, cam in zip(cams, result.cameras, strict=True):
        assert cam.intrinsics_views[0] == f"{truth.name}.mp4 frame 0" and (cam.width, cam.height) == (640, 480)
        r = cv2.Rodrigues(np.array(cam.rotation))[0]
        assert np.linalg.norm(-r.T @ np.array(cam.translation) - truth.centre) < 0.03
