"""A synthetic multi-camera calibration take with known answers: cameras in a ring around a capture
volume, a board lying on the floor in view of all of them and then held at random places and angles,
its corners projected through each camera (with lens distortion) plus pixel noise.

Used by scripts/eval_calibration.py and tests/test_calibrate.py to check extrinsics and the bundle
adjustment against the true camera poses: the floor board lies at the world origin with
inference_server.multicam.calibrate's board-to-world axes, so a calibration of these views is in the
same world frame as the truth, with no alignment.

    scene = board_scene(Board(4, 7, 0.06), cameras=4, poses=30, noise_px=0.3, seed=0)
    scene.views["cam1"]   # [BoardView, ...] with detections, keyed by board pose (0: the floor)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from inference_server.multicam.boards import Board, Detection
from inference_server.multicam.calibrate import BOARD_TO_WORLD, BoardView


@dataclass(frozen=True)
class TrueCamera:
    name: str
    matrix: np.ndarray  # 3x3
    distortion: np.ndarray  # k1, k2, p1, p2
    rotation: np.ndarray  # 3x3 world -> camera (OpenCV axes)
    translation: np.ndarray  # 3
    size: tuple[int, int]

    @property
    def centre(self) -> np.ndarray:
        return -self.rotation.T @ self.translation


@dataclass(frozen=True)
class BoardScene:
    cameras: list[TrueCamera]
    views: dict[str, list[BoardView]]  # per camera: the board poses it saw, key = pose number (0: floor)


def look_at(centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World -> camera rotation (OpenCV axes: x right, y down, z forward) for a camera at centre
    looking at target, the world's +Y up in the image."""
    z = target - centre
    z = z / np.linalg.norm(z)
    x = np.cross(z, np.array([0.0, 1.0, 0.0]))
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z])


def ring_cameras(count: int, rng: np.random.Generator, radius: float = 3.5, size: tuple[int, int] = (1088, 1920)
                 ) -> list[TrueCamera]:
    """Portrait phones (about 1670 px focal length, like the Pose2Sim lab's) in a ring, 1.2-2.2 m high,
    looking at a point 0.9 m above the floor's origin."""
    cams = []
    for i in range(count):
        angle = 2 * np.pi * i / count + rng.uniform(-0.3, 0.3)
        centre = np.array([radius * np.cos(angle), rng.uniform(1.2, 2.2), radius * np.sin(angle)])
        r = look_at(centre, np.array([0.2, 0.9, 0.3]))
        f = rng.uniform(1600, 1750)
        cx, cy = size[0] / 2 + rng.uniform(-15, 15), size[1] / 2 + rng.uniform(-15, 15)
        k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]])
        dist = np.array([rng.uniform(-0.06, -0.03), rng.uniform(0.05, 0.15), 0.0, 0.0])
        cams.append(TrueCamera(f"cam{i + 1}", k, dist, r, -r @ centre, size))
    return cams


def board_poses(count: int, board: Board, rng: np.random.Generator) -> list[np.ndarray]:
    """Board -> world 4x4 poses: first flat on the floor at the origin, then held 0.5-1.6 m high, turned
    and tilted at random."""
    floor = np.eye(4)
    floor[:3, :3] = BOARD_TO_WORLD
    poses = [floor]
    half = np.array([(board.columns - 1) * board.square_m / 2, (board.rows - 1) * board.square_m / 2, 0.0])
    for _ in range(count - 1):
        # Upright (the board's -z, its face, horizontal), turned about Y, tilted a little.
        yaw = rng.uniform(0, 2 * np.pi)
        tilt = rng.uniform(-0.5, 0.5, size=3) * [1, 0, 1]
        face = cv2.Rodrigues(np.array([0.0, yaw, 0.0]))[0] @ cv2.Rodrigues(tilt)[0]
        upright = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])  # board y down the world, its face towards +Z
        r = face @ upright
        centre = np.array([rng.uniform(-0.8, 0.8), rng.uniform(0.5, 1.6), rng.uniform(-0.8, 0.8)])
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = centre - r @ half
        poses.append(m)
    return poses


def board_scene(board: Board, cameras: int = 4, poses: int = 30, noise_px: float = 0.3, seed: int = 0
                ) -> BoardScene:
    rng = np.random.default_rng(seed)
    cams = ring_cameras(cameras, rng)
    objp = board.object_points().astype(np.float64)
    views: dict[str, list[BoardView]] = {c.name: [] for c in cams}
    for key, to_world in enumerate(board_poses(poses, board, rng)):
        world = objp @ to_world[:3, :3].T + to_world[:3, 3]
        face = -to_world[:3, 2]  # the printed side
        for c in cams:
            facing = float(np.dot(face, c.centre - world.mean(axis=0)) / np.linalg.norm(c.centre - world.mean(axis=0)))
            if facing < 0.25:  # seen from its back or edge-on: no corners
                continue
            px, _ = cv2.projectPoints(world, cv2.Rodrigues(c.rotation)[0], c.translation, c.matrix, c.distortion)
            px = px.reshape(-1, 2)
            w, h = c.size
            if not np.all((px > 5) & (px < [w - 5, h - 5])):
                continue
            px = px + rng.normal(0, noise_px, px.shape)
            views[c.name].append(BoardView(c.name, key, f"{c.name} pose {key}", c.size,
                                           Detection(np.arange(board.corner_count), px.astype(np.float32))))
    return BoardScene(cams, views)


def closeups(board: Board, camera: TrueCamera, count: int, noise_px: float = 0.3, seed: int = 0) -> list[BoardView]:
    """Intrinsics views of one camera: the board 0.35-0.6 m in front of it, turned up to about 35 degrees,
    anywhere in the frame (as a person waves it in front of the lens); keys are negative (never shared)."""
    rng = np.random.default_rng(seed)
    objp = board.object_points().astype(np.float64)
    half = objp.mean(axis=0)
    w, h = camera.size
    out: list[BoardView] = []
    while len(out) < count:
        r = cv2.Rodrigues(rng.uniform(-0.6, 0.6, size=3))[0]
        depth = rng.uniform(0.35, 0.6)
        pixel = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])
        centre = depth * np.linalg.inv(camera.matrix) @ np.array([*pixel, 1.0])
        in_cam = (objp - half) @ r.T + centre  # board in the camera's axes, its face towards the lens
        px, _ = cv2.projectPoints(in_cam, np.zeros(3), np.zeros(3), camera.matrix, camera.distortion)
        px = px.reshape(-1, 2)
        if not np.all((px > 5) & (px < [w - 5, h - 5])):
            continue
        px = px + rng.normal(0, noise_px, px.shape)
        out.append(BoardView(camera.name, -1 - len(out), f"{camera.name} close-up {len(out)}", camera.size,
                             Detection(np.arange(board.corner_count), px.astype(np.float32))))
    return out
