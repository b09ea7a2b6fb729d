"""Multi-camera capture: calibration files, epipolar labels and timing, triangulation with an outlier
view (synthetic points projected by the real Pose2Sim calibration), and capture on the real Pose2Sim
videos with real MediaPipe, in process and through the CLI against the real server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from pose2sim_trial import CAM01, CAM02, QCA, TOML, reference_body

from inference_server.errors import InvalidInput
from inference_server.jobs.context import NullContext
from inference_server.mocap.landmarks import Landmarks
from inference_server.mocap.options import SolveOptions
from inference_server.motion.wire import clip_from_proto, clip_to_proto
from inference_server.multicam import epipolar, sync
from inference_server.multicam.calibration_files import Z_UP_TO_Y_UP, read_calibration, write_json
from inference_server.multicam.capture import MulticamOptions, run_multicam
from inference_server.multicam.triangulate import triangulate
from keygrip.projection import Camera, VideoCamera
from keygrip.v1 import motion_pb2

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return reference_body()


def project_opencv(points_y_up: np.ndarray, table: dict) -> np.ndarray:
    """Pixels (N, 2) of Y-up points through a Pose2Sim TOML camera with OpenCV itself (Z-up world,
    integer pixel centres), in the projection model's convention (+0.5)."""
    z_up = points_y_up @ Z_UP_TO_Y_UP  # the inverse of a permutation is its transpose
    px = cv2.projectPoints(z_up, np.array(table["rotation"]), np.array(table["translation"]),
                           np.array(table["matrix"]), np.array(table["distortions"]))[0].reshape(-1, 2)
    return px + 0.5


def views_of(reference: np.ndarray) -> tuple[list[VideoCamera], np.ndarray, np.ndarray]:
    """The 4 calibrated cameras and the reference body's pixels (4, F, 33, 2) and confidences in them."""
    import tomllib

    tables = [t for t in tomllib.loads(TOML.read_text()).values() if isinstance(t, dict) and "matrix" in t]
    f = len(reference)
    flat = np.nan_to_num(reference.reshape(-1, 3))
    pixels = np.stack([project_opencv(flat, t).reshape(f, 33, 2) for t in tables])
    seen = np.isfinite(reference[..., 0])
    pixels[:, ~seen] = np.nan
    conf = np.broadcast_to(np.where(seen, 0.9, 0.0), pixels.shape[:3]).copy()
    return read_calibration(TOML).cameras, pixels, conf


def test_qca_and_its_pose2sim_conversion_give_the_same_cameras() -> None:
    qca, toml = read_calibration(QCA), read_calibration(TOML)
    assert qca.names() == ["cam01", "cam02", "cam03", "cam04"]
    assert toml.names() == ["cam_01", "cam_02", "cam_03", "cam_04"]
    assert qca.up == toml.up == "z"
    for a, b in zip(qca.cameras, toml.cameras, strict=True):
        np.testing.assert_allclose(a.camera.camera_to_world, b.camera.camera_to_world, atol=1e-6)
        for attr in ("focal_x", "focal_y", "center_x", "center_y", "width", "height"):
            assert getattr(a.camera, attr) == pytest.approx(getattr(b.camera, attr), abs=1e-5)
        np.testing.assert_allclose(a.distortion, b.distortion, atol=1e-9)
        assert (a.camera.width, a.camera.height) == (1088, 1920)
    # The QCA's camera centre (mm, Z-up lab) is where the camera sits in the Y-up world.
    np.testing.assert_allclose(qca.cameras[0].camera.position, [-1.9091590, 1.8965059, 1.4602324], atol=1e-6)
    assert qca.errors[0] == pytest.approx(0.402)


def test_json_round_trip_and_z_up(tmp_path: Path) -> None:
    cal = read_calibration(TOML)
    path = write_json(cal.cameras, tmp_path / "calib.json", errors=[0.5, 0.6, 0.7, 0.8])
    data = json.loads(path.read_text())
    assert data["format"] == "keygrip.calibration" and data["up"] == "y" and data["units"] == "m"
    assert set(data["cameras"][0]) == {"name", "width", "height", "matrix", "distortion", "rotation", "translation",
                                       "reprojection_error_px"}
    back = read_calibration(path)
    assert back.errors == [0.5, 0.6, 0.7, 0.8]
    for a, b in zip(cal.cameras, back.cameras, strict=True):
        np.testing.assert_allclose(a.camera.camera_to_world, b.camera.camera_to_world, atol=1e-9)
        assert a.camera.center_x == pytest.approx(b.camera.center_x) and a.distortion == b.distortion
    # The same cameras written Z-up, as the TOML is: the reader turns them Y-up alike.
    import tomllib

    tables = [t for t in tomllib.loads(TOML.read_text()).values() if isinstance(t, dict) and "matrix" in t]
    z_up = {"format": "keygrip.calibration", "version": 1, "units": "m", "up": "z", "cameras": [
        {"name": t["name"], "width": 1088, "height": 1920, "matrix": t["matrix"], "distortion": t["distortions"],
         "rotation": t["rotation"], "translation": t["translation"]} for t in tables]}
    (tmp_path / "z.json").write_text(json.dumps(z_up))
    for a, b in zip(cal.cameras, read_calibration(tmp_path / "z.json").cameras, strict=True):
        np.testing.assert_allclose(a.camera.camera_to_world, b.camera.camera_to_world, atol=1e-9)


@pytest.mark.parametrize("text, says", [
    ("not a calibration at all", "not a readable TOML"),
    ('{"format": "keygrip.calibration", "version": 2, "cameras": []}', "version 2"),
    ('[cam]\nname = "cam"\nsize = [10.0, 10.0]\nmatrix = [[0, 0, 5], [0, 0, 5], [0, 0, 1]]\n'
     "distortions = [0, 0, 0, 0]\nrotation = [0, 0, 0]\ntranslation = [0, 0, 1]\n", "non-positive"),
    ("[metadata]\nadjusted = false\n", "holds no camera"),
])
def test_a_bad_calibration_is_refused_by_name(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "studio_calib.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=says) as err:
        read_calibration(path)
    assert "studio_calib.toml" in err.value.message


def test_triangulation_recovers_the_reference_and_rejects_an_outlier_view(reference: np.ndarray) -> None:
    cams, pixels, conf = views_of(reference[:20])
    rng = np.random.default_rng(1)
    noisy = pixels + rng.normal(0.0, 1.0, pixels.shape)
    # cam03 is wrong on every point (another person, 200 px away) and sure of itself.
    noisy[2] += [200.0, -120.0]
    conf[2] = 1.0
    out = triangulate(cams, noisy, conf)
    seen = np.isfinite(reference[0, :, 0])
    err = np.linalg.norm(out.points[:, seen] - reference[:20, seen], axis=-1)
    assert np.median(err) < 0.003 and err.max() < 0.015
    assert not out.inliers[2].any() and out.inliers[[0, 1, 3]][:, :, seen].all()
    assert np.isnan(out.points[:, ~seen]).all()
    # Without the rejection (a gate that takes every view), the outlier drags the points far off.
    dragged = triangulate(cams, noisy, conf, gate_px=1e9)
    assert np.median(np.linalg.norm(dragged.points[:, seen] - reference[:20, seen], axis=-1)) > 0.05
    # A point one view alone sees is not triangulated.
    conf[1:, :, 23] = 0.0
    assert np.isnan(triangulate(cams, noisy, conf).points[:, 23]).all()


def test_mirrored_labels_and_frame_offsets_are_found(reference: np.ndarray) -> None:
    from inference_server.mocap.swaps import MIRROR
    from inference_server.multicam.triangulate import normalized_points

    cams, pixels, conf = views_of(reference)
    pixels[1, 30:50] = pixels[1, 30:50][:, MIRROR]  # cam02 takes the man's left for his right
    xy = np.stack([normalized_points(c, p) for c, p in zip(cams, pixels, strict=True)])
    swapped = epipolar.fix_labels(cams, xy, conf)
    assert swapped[1, 30:50].all() and swapped.sum() == 20

    # cam04 started recording 5 frames later: its frame t shows what cam01's frame t + 5 does.
    late = np.concatenate([xy[3, 5:], np.full_like(xy[3, :5], np.nan)])
    shifted = np.stack([xy[0], xy[2], late])
    found = sync.from_views([cams[0], cams[2], cams[3]], shifted[:, :90], conf[[0, 2, 3], :90], 60.0)
    assert found.offsets == [5, 5, 0] and found.method == "motion" and found.confidence > 0.5

    # A view of another take (the man's motion played backwards, a metre away) cannot be synchronised.
    other = reference[::-1] + [1.0, 0.0, 0.0]
    _, other_px, _ = views_of(other)
    other_xy = normalized_points(cams[1], other_px[1])
    with pytest.raises(InvalidInput, match="cannot be synchronised"):
        sync.from_views([cams[0], cams[1]], np.stack([xy[0], other_xy]), conf[[0, 1]], 60.0)


def test_offsets_are_found_with_all_views_at_once_and_a_still_person_is_flagged(reference: np.ndarray) -> None:
    from inference_server.multicam.triangulate import normalized_points

    cams, pixels, conf = views_of(reference)
    noise = np.random.default_rng(2).normal(0.0, 2.0, pixels.shape)
    noise[0] *= 10.0  # cam01, the first view, is a poor one (20 px): each view against it alone gets cam04 wrong
    noisy = pixels + noise
    xy = np.stack([normalized_points(c, p) for c, p in zip(cams, noisy, strict=True)])
    # cam03 (facing cam01: their epipolar lines run through the man) started 4 frames late (its frame t shows
    # cam01's t + 4), cam04 2 frames early (its frame t + 2 shows cam01's t).
    shifted = xy.copy()
    shifted[2, :-4] = xy[2, 4:]
    shifted[3, 2:] = xy[3, :-2]
    found = sync.from_views(cams, shifted[:, :90], conf[:, :90], 60.0)
    assert found.offsets == [4, 4, 0, 6] and found.confidence > 0.8
    # A man who does not move: every shift fits as well, so the offsets found are not to be trusted.
    still = np.broadcast_to(xy[:, :1], xy.shape).copy()
    unsure = sync.from_views(cams, still[:, :60], conf[:, :60], 60.0)
    assert unsure.confidence == 0.0 and unsure.doubts() == [1, 2, 3]
    assert all(high - low >= 10 for low, high in unsure.spread[1:])


def test_a_view_whose_shift_is_in_doubt_is_not_called_sure(reference: np.ndarray) -> None:
    from inference_server.multicam.triangulate import normalized_points

    cams, pixels, conf = views_of(reference)
    xy = np.stack([normalized_points(c, p) for c, p in zip(cams, pixels, strict=True)])
    # cam04 started 2.5 frames late: its frames lie halfway between two of the others' instants.
    t = np.arange(xy.shape[1], dtype=float)
    late = np.stack([np.interp(t + 2.5, t, xy[3, :, j, k]) for j in range(33) for k in range(2)], axis=-1)
    xy[3] = late.reshape(xy.shape[1], 33, 2)
    found = sync.from_views([cams[0], cams[1], cams[3]], xy[[0, 1, 3], :60], conf[[0, 1, 3], :60], 60.0)
    # Shifts of 2 and 3 fit alike: the one chosen wins about half the resamplings of the frames, and
    # the spread says which (counting a neighbour's win as agreement called such a view sure).
    assert found.offsets[2] - found.offsets[0] in (-2, -3)
    assert 0.2 < found.per_view[2] < 0.8 and found.confidence == min(found.per_view)
    low, high = found.spread[2]
    assert high - low == 1 and found.doubts() == []


def _encode(path: Path, frames: int, size: tuple[int, int], rate: int) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((size[1], size[0], 3), np.uint8), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _small(cam: VideoCamera, factor: int, name: str) -> VideoCamera:
    c = cam.camera
    return VideoCamera(name=name, camera=Camera(
        width=c.width // factor, height=c.height // factor, focal_x=c.focal_x / factor, focal_y=c.focal_y / factor,
        center_x=c.center_x / factor, center_y=c.center_y / factor, camera_to_world=c.camera_to_world),
        distortion=cam.distortion)


@pytest.fixture(scope="module")
def take(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """cam01 and cam02 of the trial, a black third view (nobody in it, shorter) and their calibration."""
    folder = tmp_path_factory.mktemp("take")
    cams = read_calibration(TOML).cameras
    black = _encode(folder / "empty_corner.mp4", 20, (272, 480), 60)
    calib = write_json([cams[0], cams[1], _small(cams[2], 4, "corner")], folder / "studio.json")
    return {"black": black, "calib": calib, "folder": folder}


def test_capture_from_two_real_views_and_an_empty_one(take: dict[str, Path], reference: np.ndarray) -> None:
    options = MulticamOptions(solve=SolveOptions(), offsets=[0, 0, 0], end_frame=12, max_side=640)
    out = run_multicam([CAM01, CAM02, take["black"]], take["calib"], options, NullContext())
    clip = out.clip
    assert clip.num_frames == 12 and out.names == ["pose2sim_cam01.mp4", "pose2sim_cam02_vp9_audio.mp4"]
    warnings = " ".join(clip.warnings)
    assert "nobody was found in empty_corner.mp4" in warnings and "differ in length" in warnings
    # The clip carries the two calibrated cameras, cropped to the 1080 px the videos decode at.
    assert [(c.name, c.video, c.camera.width, c.frame_offset) for c in clip.cameras] == [
        ("cam_01", "pose2sim_cam01.mp4", 1080, 0), ("cam_02", "pose2sim_cam02_vp9_audio.mp4", 1080, 0)]
    assert [c.camera.center_x for c in clip.cameras] == [c.camera.center_x for c in read_calibration(TOML).cameras[:2]]
    # In the calibrated world, unaligned, the hips lie on the reference's (a different detector: a few cm).
    _, pos = clip.global_transforms()
    ref_hips = 0.5 * (reference[:12, 23] + reference[:12, 24])
    assert np.linalg.norm(pos[:, clip.skeleton.index("hips")] - ref_hips, axis=-1).mean() < 0.08
    # Through each camera the triangulated points land on that view's landmarks.
    assert np.nanmedian(out.points.error_px) < 15
    wire = clip_from_proto(motion_pb2.MotionClip.FromString(clip_to_proto(clip).SerializeToString()))
    assert [c.video for c in wire.cameras] == ["pose2sim_cam01.mp4", "pose2sim_cam02_vp9_audio.mp4"]


def test_videos_and_calibration_that_do_not_fit(take: dict[str, Path], tmp_path: Path) -> None:
    options = MulticamOptions(offsets=[0, 0], end_frame=5)
    # Four calibrated cameras, two videos.
    with pytest.raises(InvalidInput, match="Calib_qualisys_converted_by_pose2sim.toml has 4 cameras .* 2 videos"):
        run_multicam([CAM01, CAM02], TOML, options)
    # A calibration for another image size (the 1080/1088 crop is fine, a quarter size is not).
    cams = read_calibration(TOML).cameras
    small = write_json([_small(cams[0], 4, "a"), cams[1]], tmp_path / "small.json")
    with pytest.raises(InvalidInput, match="pose2sim_cam01.mp4 is 1080x1920 but camera a .* is 272x480"):
        run_multicam([CAM01, CAM02], small, options)
    # Another frame rate.
    slow = _encode(tmp_path / "slow.mp4", 5, (272, 480), 30)
    both = write_json([cams[1], _small(cams[2], 4, "b")], tmp_path / "both.json")
    with pytest.raises(InvalidInput, match="slow.mp4 runs at 30 fps and pose2sim_cam02_vp9_audio.mp4 at 60 fps"):
        run_multicam([CAM02, slow], both, options)
    with pytest.raises(InvalidInput, match="3 frame offsets were given for 2 videos"):
        run_multicam([CAM01, CAM02], TOML, MulticamOptions(offsets=[0, 0, 0]))


def _cli(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", address, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_cli_captures_a_take_through_the_server(shared_server, take: dict[str, Path], tmp_path: Path) -> None:
    cams = read_calibration(TOML).cameras
    calib = write_json(cams[:2], tmp_path / "two.json")
    folder = tmp_path / "take"  # a folder of videos, taken in name order
    folder.mkdir()
    for name, video in (("a_left.mp4", CAM01), ("b_right.mp4", CAM02)):
        (folder / name).symlink_to(video)
    run = _cli(shared_server.address, "mocap", str(folder), "--calibration", str(calib),
               "--offsets", "0,0", "--end", "10", "--out", str(tmp_path / "take.bvh"), "--clip",
               str(tmp_path / "take.clip"), "--floor", "calibration")
    assert run.returncode == 0, run.stderr
    assert "captured 10 frames from 2 views" in run.stdout and "synchronised by given" in run.stdout
    assert "floor from calibration" in run.stdout
    assert (tmp_path / "take.bvh").read_text().startswith("HIERARCHY")
    clip = clip_from_proto(motion_pb2.MotionClip.FromString((tmp_path / "take.clip").read_bytes()))
    assert [(c.name, c.video) for c in clip.cameras] == [("cam_01", "a_left.mp4"), ("cam_02", "b_right.mp4")]
    assert clip.num_frames == 10
    # A calibration with more cameras than videos: the job fails naming the file and what to do.
    run = _cli(shared_server.address, "mocap", str(CAM01), str(CAM02), "--calibration", str(TOML),
               "--out", str(tmp_path / "x.bvh"))
    assert run.returncode == 1
    assert "INVALID_ARGUMENT" in run.stderr and "has 4 cameras" in run.stderr and "2 videos were given" in run.stderr
    run = _cli(shared_server.address, "mocap", str(CAM01), str(CAM02), "--out", str(tmp_path / "x.bvh"))
    assert run.returncode == 1 and "add --calibration" in run.stderr
    run = _cli(shared_server.address, "mocap", str(CAM01), "--floor", "feet", "--out", str(tmp_path / "x.bvh"))
    assert run.returncode == 1 and "--floor is for a multi-camera capture" in run.stderr


def test_hands_and_face_come_from_the_view_that_sees_them(take: dict[str, Path]) -> None:
    calib = write_json(read_calibration(TOML).cameras[:2], take["folder"] / "pair.json")
    options = MulticamOptions(solve=SolveOptions(hands=True, face=True), offsets=[0, 0], end_frame=4, max_side=480)
    clip = run_multicam([CAM01, CAM02], calib, options).clip
    assert "leftIndexProximal" in clip.skeleton.names and clip.face_curves is not None
    assert clip.face_curves.shape == (4, len(clip.face_names)) and np.isfinite(clip.rotations).all()


def _with_a_stranger(source: Path, out: Path, frames: int, hidden: int) -> Path:
    """cam01 at half size with a mirrored, smaller copy of the man standing to his right (a stranger
    who moves like him), and the man himself hidden for the first frames, so that MediaPipe's
    tracker locks onto the stranger and stays with him."""
    from inference_server.media.video import iter_frames

    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=60)
        stream.width, stream.height = 540, 960
        stream.pix_fmt = "yuv420p"
        for i, frame in enumerate(iter_frames(source, 0, frames)):
            image = frame.image.copy()
            stranger = cv2.resize(image[250:1250, 200:680], (384, 800))[:, ::-1]
            if i < hidden:
                image[250:1250, 200:680] = 90
            image[560:1360, 680:1064] = stranger
            small = np.asarray(cv2.resize(image, (540, 960), interpolation=cv2.INTER_AREA), dtype=np.uint8)
            video_frame = av.VideoFrame.from_ndarray(small, format="rgb24")
            video_frame.pts = i
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))
    return out


def test_a_view_that_followed_someone_else_is_tracked_again_on_the_subject(
        take: dict[str, Path], reference: np.ndarray) -> None:
    from inference_server.mocap.inference import detect

    clip = _with_a_stranger(CAM01, take["folder"] / "stranger.mp4", frames=10, hidden=3)
    alone = detect(clip, workers=1, max_side=640, ctx=NullContext())
    assert alone.pose_present.all() and np.nanmean(alone.pose_image[:, 23, 0]) > 0.7  # on the stranger
    cams = read_calibration(TOML).cameras
    calib = write_json([cams[1], _small(cams[0], 2, "cam_01")], take["folder"] / "stranger.json")
    out = run_multicam([CAM02, clip], calib, MulticamOptions(offsets=[0, 0], end_frame=10, max_side=640))
    assert any("MediaPipe followed someone else in stranger.mp4" in w and "captured person" in w
               for w in out.clip.warnings)
    hips = out.views[1].pose_image[:, [23, 24], 0].mean(axis=1)
    assert np.nanmax(hips) < 0.6 and out.views[1].pose_present[3:].sum() >= 5  # the man, once he shows
    _, pos = out.clip.global_transforms()
    ref_hips = 0.5 * (reference[:10, 23] + reference[:10, 24])
    assert np.linalg.norm(pos[:, out.clip.skeleton.index("hips")] - ref_hips, axis=-1).mean() < 0.1


def test_offsets_from_timecodes(tmp_path: Path) -> None:
    def record(name: str, timecode: str | None) -> Path:
        path = tmp_path / name
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=60)
            stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
            if timecode:
                stream.metadata["timecode"] = timecode
            for i in range(3):
                frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        return path

    early, late = record("a.mp4", "01:00:00:00"), record("b.mp4", "01:00:00:05")
    found = sync.from_timecodes([early, late], 60.0)
    assert found is not None and found.offsets == [5, 0] and found.method == "timecode"
    assert sync.from_timecodes([early, record("c.mp4", None)], 60.0) is None


def test_a_request_that_cannot_run_is_refused_at_submit(client) -> None:
    from keygrip import errors

    with pytest.raises(errors.InvalidArgument, match="needs two videos at least, got 1"):
        client.capture_multiview([CAM01], TOML)
    with pytest.raises(errors.InvalidArgument, match="3 frame offsets for 2 videos"):
        client.capture_multiview([CAM01, CAM02], TOML, frame_offsets=[0, 0, 0])
    with pytest.raises(ValueError, match="floor must be one of auto, calibration, feet, not 'ground'"):
        client.capture_multiview([CAM01, CAM02], TOML, floor="ground")
    # A FloorSource this server does not know (a newer client's): refused at submit, naming the field.
    import grpc

    from keygrip.v1 import common_pb2, multicam_pb2, multicam_pb2_grpc

    request = multicam_pb2.MultiViewCaptureRequest(videos=[common_pb2.MediaInput()] * 2,
                                                   calibration=common_pb2.MediaInput(), floor=7)
    with pytest.raises(grpc.RpcError) as err:
        client.stub(multicam_pb2_grpc.MultiCameraStub).CaptureMultiView(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "floor 7 is not a FloorSource" in (err.value.details() or "")


def _landmarks_of(reference: np.ndarray, cam: VideoCamera, pixels: np.ndarray, conf: np.ndarray) -> Landmarks:
    """A MediaPipe-like view of the reference body: its pixels, and world landmarks about the hips in
    the camera's MediaPipe axes (x right, y down, z away); NaN where the reference has no such point."""
    c = cam.camera
    f = len(reference)
    hips = 0.5 * (reference[:, 23] + reference[:, 24])
    in_camera = (reference - hips[:, None]) @ c.camera_to_world[:3, :3]   # world -> camera axes
    size = np.array([c.width, c.height], dtype=float)
    image = np.concatenate([pixels / size, np.zeros((f, 33, 1))], axis=-1)
    return Landmarks(times=np.arange(f) / 60.0, frame_indices=np.arange(f), image_size=(c.width, c.height), fps=60.0,
                     pose_image=image, pose_world=in_camera * [1.0, -1.0, -1.0], pose_visibility=conf,
                     pose_present=np.ones(f, bool))


def test_an_arm_only_one_view_sees_comes_from_that_view(reference: np.ndarray) -> None:
    """Elbows and wrists that no two views agree on (each is seen by cam01 alone) are placed from that
    view's world landmarks, with a warning, instead of leaving the arms without rotations."""
    from inference_server.multicam.capture import reconstruct

    ref = reference[:40]
    cams, pixels, conf = views_of(ref)
    conf[1:, :, 13:17] = 0.0
    lms = [_landmarks_of(ref, cam, px, c) for cam, px, c in zip(cams, pixels, conf, strict=True)]
    out = reconstruct(lms, cams, [c.name for c in cams], 60.0, MulticamOptions(offsets=[0, 0, 0, 0]), NullContext())
    clip = out.clip
    assert np.isfinite(clip.rotations).all()
    # (the reference, an OpenPose body, has no eyes, ears, mouth or fingers: those are named too)
    assert any(w.startswith("no two views agree on the ") and "left elbow, right elbow, left wrist, right wrist" in w
               for w in clip.warnings), clip.warnings
    _, pos = clip.global_transforms()
    for bone, point in (("leftLowerArm", 13), ("rightLowerArm", 14), ("leftHand", 15), ("rightHand", 16)):
        err = np.linalg.norm(pos[:, clip.skeleton.index(bone)] - ref[:, point], axis=-1)
        assert np.median(err) < 0.06, (bone, np.median(err))
