"""The floor and up axis of a multi-camera world from the person's feet: on the Pose2Sim trial's
reference 3D (OpenPose's feet, a second detector) and on the trial's real cam01 and cam02 videos
through real MediaPipe, in the Qualisys calibration's own world (its floor at y = 0) and in that
world turned and shifted by a known amount."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from pose2sim_trial import CAM01, CAM02, TOML, reference_body

from inference_server.errors import InvalidInput
from inference_server.jobs.context import NullContext
from inference_server.mocap.options import SolveOptions
from inference_server.multicam import floor
from inference_server.multicam.calibration_files import read_calibration, write_json
from inference_server.multicam.capture import MulticamOptions, check_options, detect_views, reconstruct
from keygrip.projection import Camera, VideoCamera

# A known turn and shift of the calibration's world: 25 degrees about a slanted axis, then moved.
_AXIS = np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8])


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return reference_body()


def _turn() -> np.ndarray:
    import cv2

    m = np.eye(4)
    m[:3, :3] = cv2.Rodrigues(_AXIS * math.radians(25.0))[0]
    m[:3, 3] = (0.4, -1.3, 0.7)
    return m


def _up_and_height(m: np.ndarray) -> tuple[float, float]:
    """How far a world transform tilts +Y (degrees) and shifts y = 0 (metres)."""
    tilt = math.degrees(math.acos(float(np.clip((m[:3, :3] @ [0.0, 1.0, 0.0])[1], -1.0, 1.0))))
    return tilt, float(m[1, 3])


def _is_yaw(m: np.ndarray, deg: float, metres: float) -> None:
    tilt, height = _up_and_height(m)
    assert tilt < deg and abs(height) < metres, (tilt, height)


def test_the_floor_of_the_reference_feet_and_a_turned_world(reference: np.ndarray) -> None:
    fit = floor.fit_floor(reference, 60.0)
    assert isinstance(fit, floor.FloorFit), fit
    # OpenPose's feet on the lab's floor: its level within about 2 degrees, its toe points 1-2 cm up.
    assert fit.tilt_deg < 2.5 and 0.0 < fit.height < 0.03 and fit.spread_m > 0.9
    levelled = fit.transform()
    # The same body in a world turned and shifted by a known amount: the fit finds the same floor,
    # so levelling the turned world gives the first levelled world again, up to a turn about Y.
    turn = _turn()
    turned = reference @ turn[:3, :3].T + turn[:3, 3]
    again = floor.fit_floor(turned, 60.0)
    assert isinstance(again, floor.FloorFit) and again.tilt_deg > 20
    _is_yaw(again.transform() @ turn @ np.linalg.inv(levelled), 0.05, 0.001)


def test_feet_that_never_stand_at_two_places_keep_the_calibration(reference: np.ndarray) -> None:
    # Balancing on the left foot only: one place, the floor's roll about it unknown.
    one = floor.choose(reference[20:75], 60.0, "feet", True)
    assert one.transform is None and one.used == "calibration"
    assert one.warning is not None and "one place only" in one.warning and "calibration's world was kept" in one.warning
    # Never still (the whole body gliding at 1 m/s): no contact at all.
    gliding = reference + np.arange(len(reference))[:, None, None] / 60.0 * np.array([1.0, 0.0, 0.0])
    never = floor.choose(gliding, 60.0, "auto", False)
    assert never.transform is None and never.warning is not None
    assert "never seen standing still" in never.warning and "does not say where the floor is" in never.warning
    # The calibration's own floor, known, is kept quietly in "auto" when the feet say nothing.
    assert floor.choose(gliding, 60.0, "auto", True).warning is None
    with pytest.raises(InvalidInput, match="floor 'ground' is not one of auto, calibration, feet"):
        check_options(MulticamOptions(floor="ground"), 2)


def _moved(cam: VideoCamera, m: np.ndarray) -> VideoCamera:
    c = cam.camera
    return VideoCamera(name=cam.name, distortion=cam.distortion, camera=Camera(
        width=c.width, height=c.height, focal_x=c.focal_x, focal_y=c.focal_y, center_x=c.center_x,
        center_y=c.center_y, camera_to_world=m @ c.camera_to_world))


@pytest.fixture(scope="module")
def views() -> list:
    """cam01 and cam02's landmarks over the whole trial (the feet stand at three places)."""
    options = MulticamOptions(solve=SolveOptions(), offsets=[0, 0], max_side=640)
    found = detect_views([CAM01, CAM02], ["cam01", "cam02"], [(0, None), (0, None)], options, NullContext())
    assert all(lm is not None for lm in found)
    return found


def test_two_real_views_find_the_calibration_floor_and_a_turned_one(views: list, tmp_path: Path) -> None:
    cams = read_calibration(TOML).cameras[:2]
    names = ["cam01", "cam02"]

    def capture(cameras: list[VideoCamera], mode: str = "auto", has_floor: bool = True):
        return reconstruct(views, cameras, names, 60.0, MulticamOptions(offsets=[0, 0], floor=mode),
                           calibration_has_floor=has_floor)

    # The calibration says where its floor is and the feet agree: kept, with the feet's floor noted.
    kept = capture(cams)
    assert kept.clip.metadata["floor"].startswith("calibration (the feet's floor: tilt ")
    np.testing.assert_allclose(kept.clip.cameras[0].camera.camera_to_world, cams[0].camera.camera_to_world)
    # Asked for, the feet's floor: within 3 degrees of the lab's (a pair of views fits to 1-2.5
    # degrees, README), its y = 0 a few cm above the lab's floor (MediaPipe's toe and heel points sit
    # above the sole), the cameras moved with it.
    feet = capture(cams, "feet")
    assert feet.clip.metadata["floor"].startswith("feet (tilt ")
    to_feet = feet.clip.cameras[0].camera.camera_to_world @ np.linalg.inv(cams[0].camera.camera_to_world)
    np.testing.assert_allclose(feet.clip.cameras[1].camera.camera_to_world,
                               to_feet @ cams[1].camera.camera_to_world, atol=1e-9)
    tilt, height = _up_and_height(to_feet)
    assert tilt < 3.0 and -0.10 < height < 0.0, (tilt, height)
    # The body's lowest contact points stand on the new floor, as in a single-view capture (within
    # 5 cm on these two views at 640 px: 4 cm with cam02's left/right labels right on every frame).
    assert abs(float(feet.clip.metadata["floor_height_m"])) < 0.05
    # The calibration turned and shifted by a known amount, in a JSON that does not know its up:
    # "auto" takes the feet's floor and lands on the same world, up to a turn about Y.
    turn = _turn()
    turned = [_moved(c, turn) for c in cams]
    path = write_json(turned, tmp_path / "turned.json", up="unknown")
    assert not read_calibration(path).has_floor
    found = capture(turned, has_floor=False)
    said = re.fullmatch(r"feet \(tilt ([\d.]+)°, (-?[\d.]+) cm\)", found.clip.metadata["floor"])
    assert said is not None and 18 < float(said[1]) < 26, found.clip.metadata["floor"]  # the turn (21.6°), found
    to_found = found.clip.cameras[0].camera.camera_to_world @ np.linalg.inv(cams[0].camera.camera_to_world)
    _is_yaw(to_found @ np.linalg.inv(to_feet), 0.1, 0.002)
    # The triangulated points moved with the cameras: the hips as high as in the feet-floor capture.
    assert np.nanmax(np.abs(found.points.points[:, 23, 1] - feet.points.points[:, 23, 1])) < 0.01
