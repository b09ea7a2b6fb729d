"""Camera calibrations as people already have them, read into the one camera model.

Three formats, recognised by content:

- Pose2Sim / OpenCV-style TOML: one table per camera with `size` (width, height), `matrix` (K in
  pixels), `distortions` (k1, k2, p1, p2), `rotation` (Rodrigues, world to camera) and
  `translation` (metres); a `[metadata]` table is not a camera. Pose2Sim's calibrations (Qualisys,
  checkerboard, scene points) are Z-up, so a TOML's world is taken as Z-up.
- Qualisys `.qca.txt` (XML): pose in millimetres as the camera's rotation M and centre c in the lab;
  intrinsics in 1/64 pixel sensor units. The mapping below reproduces Pose2Sim's own conversion
  exactly: R = diag(1, -1, -1) M, t = -R c / 1000, K = the intrinsics / 64, and the distortion
  coefficients also divided by 64, as Pose2Sim does (its reference 3D was triangulated with them;
  the data MANIFEST notes an independent checkerboard calibration finds values nearer the undivided
  ones, but at these radii k1 and k2 nearly cancel). The lab is Z-up.
- Our JSON ("format": "keygrip.calibration", written by `write_json` and by the calibration job):
  {"format", "version": 1, "units": "m", "up": "y" | "z" | "unknown", "cameras": [{"name", "width", "height",
  "matrix" (3x3 K, OpenCV pixel convention), "distortion" (list), "rotation" (Rodrigues, world to
  camera), "translation" (m), "reprojection_error_px" (optional)}]}. "up": "unknown" says the world
  is Y-up by convention only (a board that did not lie on the floor, a camera's own frame): a
  capture then finds the floor from the person's feet (floor.py).

Every reader returns the cameras in the clip's world, Y-up metres (DESIGN.md). A Z-up world is
turned Y-up as Pose2Sim writes its .trc files, (x, y, z)_Y-up = (y, z, x)_Z-up: a proper rotation
(a cyclic permutation of the axes), so 3D computed here lines up with Pose2Sim's output unaligned.
"""

from __future__ import annotations

import json
import math
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference_server.errors import InvalidInput
from keygrip.projection import Camera, VideoCamera

FORMAT = "keygrip.calibration"
VERSION = 1

# Points of a Z-up world, as rows, into the Y-up world: (x, y, z) -> (y, z, x).
Z_UP_TO_Y_UP = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
_QCA_UNITS_PER_PX = 64.0


@dataclass
class Calibration:
    """cameras: in the Y-up world, metres, in the file's order. up: the file's own up axis ("y" or
    "z"), kept to say where the numbers came from, or "unknown" (a JSON that does not know where the
    floor is). errors: each camera's reprojection error in pixels where the file gives one (NaN
    where not)."""

    cameras: list[VideoCamera]
    up: str
    source: str
    errors: list[float] = field(default_factory=list)

    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    @property
    def has_floor(self) -> bool:
        """The file says which way is up (and so where the floor is: y = 0 of the Y-up world)."""
        return self.up != "unknown"


def read_calibration(path: str | Path) -> Calibration:
    """The cameras of a TOML, .qca.txt or keygrip JSON calibration file, in the Y-up world.

    Raises InvalidInput naming the file and what is wrong with it.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InvalidInput(f"the calibration {p.name} cannot be read ({exc.strerror}); check the path.") from None
    stripped = text.lstrip()
    try:
        if stripped.startswith("<"):
            cal = _read_qca(text, p.name)
        elif stripped.startswith("{"):
            cal = _read_json(text, p.name)
        else:
            cal = _read_toml(text, p.name)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise InvalidInput(f"the calibration {p.name} is not a readable TOML, Qualisys .qca.txt or keygrip "
                           f"JSON calibration ({type(exc).__name__}: {exc}); see the README for the formats.") from None
    if not cal.cameras:
        raise InvalidInput(f"the calibration {p.name} holds no camera.")
    return cal


def _camera(name: str, k: Any, dist: Any, rvec: Any, tvec: Any, width: float, height: float,
            world_to_y_up: np.ndarray | None, source: str) -> VideoCamera:
    k = np.asarray(k, dtype=np.float64).reshape(3, 3)
    values = [*k.reshape(-1), *np.ravel(rvec), *np.ravel(tvec), *np.ravel(dist)]
    if not all(math.isfinite(float(v)) for v in values) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise InvalidInput(f"the calibration {source}: camera {name} has a non-finite or non-positive value "
                           "in its matrix, rotation, translation or distortion.")
    if width <= 0 or height <= 0:
        raise InvalidInput(f"the calibration {source}: camera {name} has no image size ({width}x{height}).")
    cam = Camera.from_opencv(k, np.asarray(rvec, dtype=np.float64), np.asarray(tvec, dtype=np.float64),
                             int(round(width)), int(round(height)))
    if world_to_y_up is not None:
        m = np.eye(4)
        m[:3, :3] = world_to_y_up
        cam = Camera(width=cam.width, height=cam.height, focal_x=cam.focal_x, focal_y=cam.focal_y,
                     center_x=cam.center_x, center_y=cam.center_y, camera_to_world=m @ cam.camera_to_world)
    return VideoCamera(name=name, camera=cam, distortion=tuple(float(d) for d in np.ravel(dist)))


def _read_toml(text: str, source: str) -> Calibration:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"TOML: {exc}") from None
    cams = []
    for key, table in data.items():
        if not isinstance(table, dict) or "matrix" not in table:
            continue  # [metadata] and anything else that is not a camera
        if table.get("fisheye"):
            raise InvalidInput(f"the calibration {source}: camera {key} is a fisheye model, which capture "
                               "does not support yet; calibrate it with the pinhole model.")
        w, h = table["size"]
        cams.append(_camera(str(table.get("name", key)), table["matrix"], table.get("distortions", []),
                            table["rotation"], table["translation"], w, h, Z_UP_TO_Y_UP, source))
    return Calibration(cams, "z", source, [math.nan] * len(cams))


def _read_qca(text: str, source: str) -> Calibration:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError(f"XML: {exc}") from None
    cams: list[VideoCamera] = []
    errors: list[float] = []
    for el in root.iter("camera"):
        if el.get("active", "1") == "0":
            continue
        tr, intr, fov = el.find("transform"), el.find("intrinsic"), el.find("fov_video")
        if tr is None or intr is None or fov is None:
            raise ValueError(f"camera {el.get('serial')} lacks its transform, intrinsic or fov_video")

        def num(node: ET.Element, key: str) -> float:
            return float(node.attrib[key])

        m = np.array([[num(tr, f"r{i}{j}") for j in (1, 2, 3)] for i in (1, 2, 3)])
        centre = np.array([num(tr, "x"), num(tr, "y"), num(tr, "z")]) / 1000.0
        r = np.diag([1.0, -1.0, -1.0]) @ m
        t = -r @ centre
        u = _QCA_UNITS_PER_PX
        k = [[num(intr, "focalLengthU") / u, 0.0, num(intr, "centerPointU") / u],
             [0.0, num(intr, "focalLengthV") / u, num(intr, "centerPointV") / u], [0.0, 0.0, 1.0]]
        dist = [num(intr, key) / u for key in ("radialDistortion1", "radialDistortion2",
                                               "tangentalDistortion1", "tangentalDistortion2")]
        width = num(fov, "right") - num(fov, "left") + 1
        height = num(fov, "bottom") - num(fov, "top") + 1
        rvec = rodrigues(r)
        cams.append(_camera(el.get("serial") or f"camera {len(cams) + 1}", k, dist, rvec, t, width, height,
                            Z_UP_TO_Y_UP, source))
        errors.append(float(el.get("avg-residual", "nan")))
    return Calibration(cams, "z", source, errors)


def _read_json(text: str, source: str) -> Calibration:
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise ValueError(f'"format" is {data.get("format")!r}, not {FORMAT!r}')
    if data.get("version") != VERSION:
        raise InvalidInput(f"the calibration {source} is version {data.get('version')}; this server reads "
                           f"version {VERSION}. Update the server.")
    if data.get("units", "m") != "m":
        raise InvalidInput(f"the calibration {source} is in {data.get('units')!r}; write it in metres (\"m\").")
    up = data.get("up", "y")
    if up not in ("y", "z", "unknown"):
        raise InvalidInput(f"the calibration {source} has up {up!r}; it must be \"y\", \"z\" or \"unknown\".")
    cams: list[VideoCamera] = []
    errors: list[float] = []
    for i, c in enumerate(data["cameras"]):
        cams.append(_camera(str(c.get("name") or f"camera {i + 1}"), c["matrix"], c.get("distortion", []),
                            c["rotation"], c["translation"], c["width"], c["height"],
                            Z_UP_TO_Y_UP if up == "z" else None, source))
        errors.append(float(c.get("reprojection_error_px", math.nan)))
    return Calibration(cams, up, source, errors)


def calibration_text(cameras: list[VideoCamera], errors: list[float] | None = None, up: str = "y") -> str:
    """Cameras (in the Y-up world) as a keygrip JSON calibration; errors: each camera's reprojection
    error in pixels, left out where it is not a finite number; up: "y", or "unknown" for a world
    whose floor is not known."""
    out = []
    for i, vc in enumerate(cameras):
        k, r, t = vc.camera.to_opencv()
        entry: dict[str, Any] = {
            "name": vc.name, "width": vc.camera.width, "height": vc.camera.height,
            "matrix": k.tolist(), "distortion": list(vc.distortion),
            "rotation": rodrigues(r).tolist(), "translation": t.tolist()}
        if errors is not None and math.isfinite(errors[i]):
            entry["reprojection_error_px"] = float(errors[i])
        out.append(entry)
    return json.dumps({"format": FORMAT, "version": VERSION, "units": "m", "up": up, "cameras": out},
                      indent=2) + "\n"


def write_json(cameras: list[VideoCamera], path: str | Path, errors: list[float] | None = None,
               up: str = "y") -> Path:
    """Write cameras (in the Y-up world) as a keygrip JSON calibration file (calibration_text)."""
    p = Path(path)
    p.write_text(calibration_text(cameras, errors, up))
    return p


def rodrigues(r: np.ndarray) -> np.ndarray:
    """A 3x3 rotation as OpenCV's Rodrigues vector (3,)."""
    import cv2

    return cv2.Rodrigues(np.asarray(r, dtype=np.float64))[0].reshape(3)
