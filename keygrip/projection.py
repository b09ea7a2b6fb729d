"""Cameras and what a host renders through them, for textures painted onto a scene from its cameras.

One camera model for every host and for the server: a pinhole with its focal length and principal
point in pixels and its 4x4 world matrix, looking down its own -Z axis with +Y up and +X to the right
(Blender's and OpenGL's convention). Pixel (0, 0) is the image's top-left corner; pixel centres are
at +0.5. Depth is linear, along the view axis (not along the ray), in scene units; 0, negative, inf
and NaN all mean "nothing there".

    cam = Camera(width=512, height=288, focal_x=..., focal_y=..., center_x=256, center_y=144, camera_to_world=m)
    u, v, z = cam.project(points)        # points (N, 3) in the world -> pixels and depth
    points = cam.unproject(depth)        # (H, W) depth -> (H, W, 3) world points (NaN where empty)
    view = View("Camera", cam, depth, mask)
    job = client.project_texture("sd15", "mossy stone", [view.upload(client, folder)], controlnet="depth")

No host API is imported here; numpy on first use of the arrays. Python 3.9 compatible (Nuke 14).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keygrip.v1 import motion_pb2, scene_pb2

if TYPE_CHECKING:
    import numpy as np

    from keygrip.client import Client

SIZE_MULTIPLE = 8  # a latent diffusion model's images are multiples of its VAE's scale


def view_size(aspect: float, long_side: int = 512) -> tuple[int, int]:
    """(width, height) for a camera of the given aspect (width / height): the long side as given, the
    short one the nearest multiple of 8 (at least 8), so that the view keeps the camera's framing."""
    if not aspect > 0:
        raise ValueError(f"a camera's aspect ratio must be positive, not {aspect}")
    long_side = max(SIZE_MULTIPLE, long_side // SIZE_MULTIPLE * SIZE_MULTIPLE)
    short = max(SIZE_MULTIPLE, round(long_side / max(aspect, 1 / aspect) / SIZE_MULTIPLE) * SIZE_MULTIPLE)
    return (long_side, short) if aspect >= 1 else (short, long_side)


@dataclass(frozen=True, eq=False)  # eq=False: numpy arrays have no single truth value
class Camera:
    """A pinhole camera: intrinsics in pixels of a width x height image, and its world matrix."""

    width: int
    height: int
    focal_x: float
    focal_y: float
    center_x: float
    center_y: float
    camera_to_world: Any  # (4, 4) float64 array, rotation without scale, camera looks down -Z

    def __post_init__(self) -> None:
        import numpy as np

        m = np.asarray(self.camera_to_world, dtype=np.float64).reshape(4, 4)
        object.__setattr__(self, "camera_to_world", m)

    @property
    def position(self) -> np.ndarray:
        return self.camera_to_world[:3, 3].copy()

    @property
    def world_to_camera(self) -> np.ndarray:
        import numpy as np

        return np.linalg.inv(self.camera_to_world)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World points (..., 3) -> (u, v, depth): pixel coordinates and depth along the view axis.
        Points behind the camera get depth <= 0 (their u, v mean nothing)."""
        import numpy as np

        p = np.asarray(points, dtype=np.float64)
        m = self.world_to_camera
        cam = p @ m[:3, :3].T + m[:3, 3]
        z = -cam[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.center_x + self.focal_x * cam[..., 0] / z
            v = self.center_y - self.focal_y * cam[..., 1] / z
        return u, v, z

    def ray_directions(self) -> np.ndarray:
        """(H, W, 3) world directions through the pixel centres, scaled so that each has depth 1 along
        the view axis: a point at depth d on pixel (i, j) is position + d * directions[i, j]."""
        import numpy as np

        u = np.arange(self.width, dtype=np.float64) + 0.5
        v = np.arange(self.height, dtype=np.float64) + 0.5
        uu, vv = np.meshgrid(u, v)
        cam = np.stack([(uu - self.center_x) / self.focal_x, -(vv - self.center_y) / self.focal_y,
                        -np.ones_like(uu)], axis=-1)
        return cam @ self.camera_to_world[:3, :3].T

    def unproject(self, depth: np.ndarray) -> np.ndarray:
        """(H, W) depth -> (H, W, 3) world points of the pixel centres; NaN where there is nothing."""

        d = valid_depth(depth)
        return self.position + self.ray_directions() * d[..., None]

    @classmethod
    def from_opencv(cls, matrix: Any, rotation: Any, translation: Any, width: int, height: int) -> Camera:
        """A camera from OpenCV's calibration: the 3x3 intrinsic matrix, the world-to-camera rotation
        (a 3x3 matrix or a Rodrigues vector) and translation (x_cam = R @ x_world + t, in OpenCV's
        camera axes: x right, y down, z forward). OpenCV puts pixel centres on integers, this model at
        +0.5, so the principal point moves by half a pixel. Needs OpenCV (the server has it; hosts need
        only the cameras a clip carries)."""
        import cv2
        import numpy as np

        k = np.asarray(matrix, dtype=np.float64).reshape(3, 3)
        r = np.asarray(rotation, dtype=np.float64)
        world_to_cv = np.eye(4)
        world_to_cv[:3, :3] = cv2.Rodrigues(r.reshape(3, 1))[0] if r.size == 3 else r.reshape(3, 3)
        world_to_cv[:3, 3] = np.asarray(translation, dtype=np.float64).reshape(3)
        cv_to_gl = np.diag([1.0, -1.0, -1.0, 1.0])  # y down, z forward -> y up, looking down -z
        return cls(width=int(width), height=int(height), focal_x=float(k[0, 0]), focal_y=float(k[1, 1]),
                   center_x=float(k[0, 2]) + 0.5, center_y=float(k[1, 2]) + 0.5,
                   camera_to_world=np.linalg.inv(cv_to_gl @ world_to_cv))

    def to_opencv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(K 3x3, R 3x3, t 3): the inverse of from_opencv, for cv2.projectPoints and friends."""
        import numpy as np

        k = np.array([[self.focal_x, 0.0, self.center_x - 0.5], [0.0, self.focal_y, self.center_y - 0.5],
                      [0.0, 0.0, 1.0]])
        world_to_cv = np.diag([1.0, -1.0, -1.0, 1.0]) @ self.world_to_camera
        return k, world_to_cv[:3, :3], world_to_cv[:3, 3]

    def to_proto(self, name: str = "") -> scene_pb2.CameraView:
        """A CameraView with the camera filled in (the depth and mask artifacts are the caller's)."""
        return scene_pb2.CameraView(name=name, width=self.width, height=self.height, focal_x=self.focal_x,
                                    focal_y=self.focal_y, center_x=self.center_x, center_y=self.center_y,
                                    camera_to_world=[float(x) for x in self.camera_to_world.reshape(-1)])

    @classmethod
    def from_proto(cls, view: scene_pb2.CameraView) -> Camera:
        """The camera of a CameraView; ValueError naming the field for one that cannot be a camera."""
        import numpy as np

        name = view.name or "a view"
        if view.width <= 0 or view.height <= 0:
            raise ValueError(f"{name}: width and height must be positive, not {view.width}x{view.height}")
        if not (view.focal_x > 0 and view.focal_y > 0):
            raise ValueError(f"{name}: focal_x and focal_y must be positive pixels, not {view.focal_x}, {view.focal_y}")
        if len(view.camera_to_world) != 16:
            raise ValueError(f"{name}: camera_to_world must hold 16 numbers (a row-major 4x4), "
                             f"not {len(view.camera_to_world)}")
        m = np.asarray(view.camera_to_world, dtype=np.float64).reshape(4, 4)
        if not np.all(np.isfinite(m)) or not np.allclose(m[3], (0, 0, 0, 1)):
            raise ValueError(f"{name}: camera_to_world is not a rigid transform (its last row must be 0 0 0 1)")
        r = m[:3, :3]
        if not np.allclose(r.T @ r, np.eye(3), atol=1e-4) or np.linalg.det(r) < 0:
            raise ValueError(f"{name}: camera_to_world must be a rotation and a translation, without scale "
                             "or mirroring (apply the camera's scale)")
        return cls(width=view.width, height=view.height, focal_x=view.focal_x, focal_y=view.focal_y,
                   center_x=view.center_x, center_y=view.center_y, camera_to_world=m)


@dataclass(frozen=True, eq=False)
class VideoCamera:
    """A camera that filmed a capture (keygrip.v1.ClipCamera): the pinhole in the clip's world, its
    lens distortion (OpenCV k1, k2, p1, p2[, k3...]; empty: none), the video's file name and the
    video frame shown at the clip's first frame."""

    name: str
    camera: Camera
    distortion: tuple[float, ...] = ()
    video: str = ""
    frame_offset: int = 0

    def to_proto(self) -> motion_pb2.ClipCamera:
        c = self.camera
        return motion_pb2.ClipCamera(
            name=self.name, width=c.width, height=c.height, focal_x=c.focal_x, focal_y=c.focal_y,
            center_x=c.center_x, center_y=c.center_y,
            camera_to_world=[float(x) for x in c.camera_to_world.reshape(-1)],
            distortion=[float(x) for x in self.distortion], video=self.video, frame_offset=self.frame_offset)

    @classmethod
    def from_proto(cls, msg: motion_pb2.ClipCamera) -> VideoCamera:
        """ValueError naming the camera and the field for one that cannot be a camera."""
        view = scene_pb2.CameraView(name=msg.name or "a clip camera", width=msg.width, height=msg.height,
                                    focal_x=msg.focal_x, focal_y=msg.focal_y, center_x=msg.center_x,
                                    center_y=msg.center_y, camera_to_world=msg.camera_to_world)
        return cls(name=msg.name, camera=Camera.from_proto(view), distortion=tuple(msg.distortion),
                   video=msg.video, frame_offset=msg.frame_offset)


def file_stem(name: str, default: str = "view") -> str:
    """A view's or object's name as a file name's stem: runs of anything but letters, digits, "_", "."
    and "-" become one "_"; default when nothing is left."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or default


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """float64 depth with NaN wherever there is nothing (0, negative, inf or NaN in the input)."""
    import numpy as np

    d = np.asarray(depth, dtype=np.float64)
    return np.where(np.isfinite(d) & (d > 0), d, np.nan)


@dataclass(frozen=True, eq=False)
class View:
    """One camera and what the host rendered through it: depth (H, W) float, and optionally a mask
    (H, W) bool of the pixels to paint (the target objects; None: every pixel with depth)."""

    name: str
    camera: Camera
    depth: Any
    mask: Any | None = None

    def check(self) -> None:
        """ValueError when the arrays do not fit the camera."""
        shape = (self.camera.height, self.camera.width)
        if getattr(self.depth, "shape", None) != shape:
            raise ValueError(f"{self.name}: the depth map is {getattr(self.depth, 'shape', None)}, "
                             f"the camera {shape[1]}x{shape[0]}")
        if self.mask is not None and getattr(self.mask, "shape", None) != shape:
            raise ValueError(f"{self.name}: the mask is {getattr(self.mask, 'shape', None)}, "
                             f"the camera {shape[1]}x{shape[0]}")

    def upload(self, client: Client, folder: str | Path) -> scene_pb2.CameraView:
        """Write the depth (and mask) as .npy files in `folder` and upload them (deduplicated): the
        CameraView to put in a ProjectTextureRequest."""
        import numpy as np

        self.check()
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        stem = file_stem(self.name)
        proto = self.camera.to_proto(self.name)
        depth_path = out / f"{stem}_depth.npy"
        np.save(depth_path, np.asarray(self.depth, dtype=np.float32))
        proto.depth_artifact_id = client.upload(depth_path, media_type="application/x-npy").id
        if self.mask is not None:
            mask_path = out / f"{stem}_mask.npy"
            np.save(mask_path, np.asarray(self.mask, dtype=bool).astype(np.uint8) * 255)
            proto.mask_artifact_id = client.upload(mask_path, media_type="application/x-npy").id
        return proto
