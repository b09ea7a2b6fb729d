"""keygrip.lens: a pinhole Camera as a DCC camera's focal length, sensor, fit, shift and pixel aspect,
and back (the numbers Blender's own view plane uses; tests/blender checks them in Blender itself)."""

from __future__ import annotations

import numpy as np
import pytest

from keygrip.lens import Lens
from keygrip.projection import Camera

# cam01 of the Pose2Sim balancing trial (OpenCV: K, Rodrigues rotation, translation): a portrait
# 1088x1920 image, principal point off centre, focal_x and focal_y a little apart.
K = np.array([[1671.5012042021037, 0.0, 564.6403499852015], [0.0, 1671.3866928599075, 933.0074897877159],
              [0.0, 0.0, 1.0]])
RVEC = np.array([1.678784562972848, 1.031972654261743, -0.3910235872501538])
TVEC = np.array([0.2609476905995074, 0.9641586618892432, 2.932963441842366])


def test_a_calibrated_camera_round_trips() -> None:
    cam = Camera.from_opencv(K, RVEC, TVEC, width=1088, height=1920)
    lens = Lens.from_camera(cam)
    # Portrait: the 36 mm sensor spans the height, as Blender's AUTO fit would put it.
    assert lens.fit == "VERTICAL" and lens.sensor_mm == 36.0
    assert lens.focal_mm == pytest.approx(1671.3866928599075 * 36.0 / 1920.0, rel=1e-6)
    # focal_x > focal_y: pixels a hair taller than wide.
    assert lens.pixel_aspect_x == 1.0 and lens.pixel_aspect_y == pytest.approx(1671.5012 / 1671.3867, rel=1e-6)
    # The principal point sits 21 px right of and 27 px above the image centre: the frame is shifted
    # left and down of the lens axis, in units of the fitted side.
    side = 1920.0 * lens.pixel_aspect_y
    assert lens.shift_x == pytest.approx((544.0 - 565.1403499852015) / side, rel=1e-9)
    assert lens.shift_y == pytest.approx((933.5074897877159 - 960.0) * lens.pixel_aspect_y / side, rel=1e-9)
    back = lens.to_camera(cam.camera_to_world)
    for name in ("width", "height", "focal_x", "focal_y", "center_x", "center_y"):
        assert getattr(back, name) == pytest.approx(getattr(cam, name), rel=1e-12), name
    points = np.random.default_rng(1).uniform(-0.8, 0.8, (20, 3)) + [0.0, 0.0, 0.9]
    np.testing.assert_allclose(np.stack(back.project(points)), np.stack(cam.project(points)), atol=1e-9)


def test_blender_defaults() -> None:
    """Blender's default camera (50 mm, 36 x 24 mm sensor, AUTO) at 1920x1080: 2667 px focal length."""
    lens = Lens.resolve(focal_mm=50.0, sensor_width=36.0, sensor_height=24.0, fit="AUTO", shift_x=0.1,
                        shift_y=-0.05, width=1920, height=1080)
    assert lens.fit == "HORIZONTAL"
    cam = lens.to_camera(np.eye(4))
    assert cam.focal_x == cam.focal_y == pytest.approx(50.0 / 36.0 * 1920.0)
    # Shift is in units of the fitted side (the width), +y up: rows count down.
    assert (cam.center_x, cam.center_y) == pytest.approx((960.0 - 192.0, 540.0 - 96.0))
    assert lens.film_back_mm == pytest.approx((36.0, 20.25))
    # VERTICAL takes the sensor height across the image's height.
    vertical = Lens.resolve(focal_mm=50.0, sensor_width=36.0, sensor_height=24.0, fit="VERTICAL", shift_x=0.0,
                            shift_y=0.0, width=1920, height=1080).to_camera(np.eye(4))
    assert vertical.focal_y == pytest.approx(50.0 / 24.0 * 1080.0)
    # A wide pixel (anamorphic 2:1): the same focal length in mm covers half as many pixels across.
    wide = Lens.resolve(focal_mm=50.0, sensor_width=36.0, sensor_height=24.0, fit="HORIZONTAL", shift_x=0.0,
                        shift_y=0.0, width=1000, height=1000, pixel_aspect_x=2.0).to_camera(np.eye(4))
    assert wide.focal_y == pytest.approx(2.0 * wide.focal_x)
    assert Lens.from_camera(wide).pixel_aspect_x == pytest.approx(2.0)


def test_bad_values_are_named() -> None:
    with pytest.raises(ValueError, match="sensor fit must be AUTO, HORIZONTAL or VERTICAL, not 'DIAGONAL'"):
        Lens.resolve(focal_mm=50.0, sensor_width=36.0, sensor_height=24.0, fit="DIAGONAL", shift_x=0.0,
                     shift_y=0.0, width=10, height=10)
    flat = Camera(width=10, height=10, focal_x=0.0, focal_y=10.0, center_x=5.0, center_y=5.0,
                  camera_to_world=np.eye(4))
    with pytest.raises(ValueError, match="positive focal lengths"):
        Lens.from_camera(flat)
