"""A pinhole Camera as a DCC camera describes it: focal length and sensor in millimetres, which image
side the sensor spans (its fit), lens shift, and pixel aspect. Host-neutral, so that every host turns
a clip's cameras into its own the same way (Blender's camera data takes these numbers as they are; a
Nuke Camera takes `film_back_mm` as its apertures).

    lens = Lens.from_camera(clip_camera.camera)          # -> focal_mm, sensor_mm, fit, shift, pixel aspect
    camera = Lens.resolve(focal_mm=50, sensor_width=36, sensor_height=24, fit="AUTO",
                          shift_x=0, shift_y=0, width=1920, height=1080).to_camera(matrix)

The projection follows Blender's view plane (BKE_camera_params_compute_viewplane): with
ycor = pixel_aspect_y / pixel_aspect_x and `side` the fitted side in pixels (the width, or the height
times ycor),

    focal_x = focal_mm / sensor_mm * side        focal_y = focal_x / ycor
    center_x = width / 2 - shift_x * side         center_y = height / 2 + shift_y * side / ycor

Pure Python (Python 3.9 compatible); numpy only through Camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keygrip.projection import Camera

FULL_FRAME_MM = 36.0  # a 35 mm still camera's sensor width, the focal lengths people know


@dataclass(frozen=True)
class Lens:
    """focal_mm over a sensor_mm wide sensor that spans the image's width (fit "HORIZONTAL") or its
    height ("VERTICAL"); shift_x, shift_y in units of that side (+x right, +y up); pixel aspect x:y
    (Blender's pixel_aspect_x / _y, each at least 1); the image in pixels."""

    focal_mm: float
    sensor_mm: float
    fit: str
    shift_x: float
    shift_y: float
    pixel_aspect_x: float
    pixel_aspect_y: float
    width: int
    height: int

    @property
    def ycor(self) -> float:
        """How much taller than wide a pixel is."""
        return self.pixel_aspect_y / self.pixel_aspect_x

    @property
    def side(self) -> float:
        """The fitted side in square (x) pixels: what the sensor spans."""
        return float(self.width) if self.fit == "HORIZONTAL" else self.height * self.ycor

    @property
    def film_back_mm(self) -> tuple[float, float]:
        """(width, height) of the image on the sensor, millimetres (Nuke's haperture, vaperture)."""
        per_pixel = self.sensor_mm / self.side
        return self.width * per_pixel, self.height * self.ycor * per_pixel

    @classmethod
    def from_camera(cls, camera: Camera, sensor_mm: float = FULL_FRAME_MM) -> Lens:
        """The lens of a pinhole Camera, its sensor spanning the longer side (as Blender's AUTO fit
        does), so that focal_mm reads like a full-frame focal length for sensor_mm = 36."""
        if not (camera.focal_x > 0 and camera.focal_y > 0 and camera.width > 0 and camera.height > 0):
            raise ValueError(f"a camera needs positive focal lengths and size, not {camera.focal_x}, "
                             f"{camera.focal_y}, {camera.width}x{camera.height}")
        ycor = camera.focal_x / camera.focal_y
        aspect_x, aspect_y = (1.0, ycor) if ycor >= 1.0 else (1.0 / ycor, 1.0)
        fit = "HORIZONTAL" if camera.width * aspect_x >= camera.height * aspect_y else "VERTICAL"
        side = float(camera.width) if fit == "HORIZONTAL" else camera.height * ycor
        return cls(focal_mm=camera.focal_x * sensor_mm / side, sensor_mm=sensor_mm, fit=fit,
                   shift_x=(0.5 * camera.width - camera.center_x) / side,
                   shift_y=(camera.center_y - 0.5 * camera.height) * ycor / side,
                   pixel_aspect_x=aspect_x, pixel_aspect_y=aspect_y, width=camera.width, height=camera.height)

    @classmethod
    def resolve(cls, *, focal_mm: float, sensor_width: float, sensor_height: float, fit: str, shift_x: float,
                shift_y: float, width: int, height: int, pixel_aspect_x: float = 1.0,
                pixel_aspect_y: float = 1.0) -> Lens:
        """A host camera's settings with its fit made explicit: Blender's AUTO fits sensor_width to
        the longer side (in pixel-aspect-corrected size); HORIZONTAL takes sensor_width across the
        width, VERTICAL sensor_height across the height."""
        if fit == "AUTO":
            fit = "HORIZONTAL" if width * pixel_aspect_x >= height * pixel_aspect_y else "VERTICAL"
            sensor = sensor_width
        elif fit in ("HORIZONTAL", "VERTICAL"):
            sensor = sensor_width if fit == "HORIZONTAL" else sensor_height
        else:
            raise ValueError(f"sensor fit must be AUTO, HORIZONTAL or VERTICAL, not {fit!r}")
        return cls(focal_mm=focal_mm, sensor_mm=sensor, fit=fit, shift_x=shift_x, shift_y=shift_y,
                   pixel_aspect_x=pixel_aspect_x, pixel_aspect_y=pixel_aspect_y, width=width, height=height)

    def to_camera(self, camera_to_world: Any) -> Camera:
        """The pinhole Camera this lens makes at a world matrix ((4, 4), no scale, looking down -Z)."""
        side, ycor = self.side, self.ycor
        focal_x = self.focal_mm / self.sensor_mm * side
        return Camera(width=self.width, height=self.height, focal_x=focal_x, focal_y=focal_x / ycor,
                      center_x=0.5 * self.width - self.shift_x * side,
                      center_y=0.5 * self.height + self.shift_y * side / ycor, camera_to_world=camera_to_world)
