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
from pathlib import Path

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


def ring_cameras(count: int, rng: np.random.Generator, radius: float = 3.5, size: tuple[int, int] = (1088, 1920),
                 focal: tuple[float, float] = (1600, 1750), target_height: float = 0.9, distorted: bool = True
                 ) -> list[TrueCamera]:
    """Cameras in a ring, 1.2-2.2 m high, looking at a point target_height above the floor near its
    origin; by default portrait phones of about 1670 px focal length, like the Pose2Sim lab's."""
    cams = []
    for i in range(count):
        angle = 2 * np.pi * i / count + rng.uniform(-0.3, 0.3)
        centre = np.array([radius * np.cos(angle), rng.uniform(1.2, 2.2), radius * np.sin(angle)])
        r = look_at(centre, np.array([0.2, target_height, 0.3]))
        f = rng.uniform(*focal)
        cx, cy = size[0] / 2 + rng.uniform(-15, 15), size[1] / 2 + rng.uniform(-15, 15)
        k = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]])
        dist = np.array([rng.uniform(-0.06, -0.03), rng.uniform(0.05, 0.15), 0.0, 0.0]) if distorted else np.zeros(4)
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


def board_scene(board: Board, cameras: int = 4, poses: int = 30, noise_px: float = 0.3, seed: int = 0,
                cams: list[TrueCamera] | None = None) -> BoardScene:
    rng = np.random.default_rng(seed)
    cams = cams or ring_cameras(cameras, rng)
    objp = board.object_points().astype(np.float64)
    views: dict[str, list[BoardView]] = {c.name: [] for c in cams}
    for key, to_world in enumerate(board_poses(poses, board, rng)):
        world = objp @ to_world[:3, :3].T + to_world[:3, 3]
        for c in cams:
            if not seen(c, board, to_world):
                continue
            px, _ = cv2.projectPoints(world, cv2.Rodrigues(c.rotation)[0], c.translation, c.matrix, c.distortion)
            px = px.reshape(-1, 2) + rng.normal(0, noise_px, (len(world), 2))
            views[c.name].append(BoardView(c.name, key, f"{c.name} pose {key}", c.size,
                                           Detection(np.arange(board.corner_count), px.astype(np.float32))))
    return BoardScene(cams, views)


def seen(camera: TrueCamera, board: Board, to_world: np.ndarray) -> bool:
    """Whether the camera sees the board's printed face (not edge-on) with the whole board (one square
    beyond its outer corners) in its image."""
    world = outline(board) @ to_world[:3, :3].T + to_world[:3, 3]
    towards = camera.centre - world.mean(axis=0)
    if float(np.dot(-to_world[:3, 2], towards) / np.linalg.norm(towards)) < 0.25:
        return False
    px, _ = cv2.projectPoints(world, cv2.Rodrigues(camera.rotation)[0], camera.translation, camera.matrix,
                              camera.distortion)
    w, h = camera.size
    return bool(np.all((px.reshape(-1, 2) > 5) & (px.reshape(-1, 2) < [w - 5, h - 5])))


def outline(board: Board) -> np.ndarray:
    """The printed board's four outer corners in board coordinates (a checkerboard reaches a square beyond
    its inner corners; a ChArUco board's coordinates start at its outer corner)."""
    s = board.square_m
    if board.kind == "charuco":
        x, y = board.columns * s, board.rows * s
        return np.array([[0, 0, 0.0], [x, 0, 0.0], [x, y, 0.0], [0, y, 0.0]])
    x, y = board.columns * s, board.rows * s
    return np.array([[-s, -s, 0.0], [x, -s, 0.0], [x, y, 0.0], [-s, y, 0.0]])


def render(board: Board, camera: TrueCamera, to_camera: np.ndarray, pixels_per_square: int = 40) -> np.ndarray:
    """A grey uint8 image of the printed board at pose to_camera (board -> camera, 4x4) through a camera
    without lens distortion: a checkerboard with its first inner square dark, or a ChArUco board as
    OpenCV draws it, each with a white margin of one square."""
    assert not np.any(camera.distortion), "render() draws through a pinhole: give the camera no distortion"
    q, s = pixels_per_square, board.square_m
    if board.kind == "charuco":
        cols, rows = board.columns, board.rows
        texture = np.full(((rows + 2) * q, (cols + 2) * q), 255, np.uint8)
        texture[q:(rows + 1) * q, q:(cols + 1) * q] = board._charuco().generateImage((cols * q, rows * q), marginSize=0)
        origin = q  # texture pixel of board (0, 0): the board's outer corner
    else:
        cols, rows = board.columns + 1, board.rows + 1  # squares
        texture = np.full(((rows + 2) * q, (cols + 2) * q), 255, np.uint8)
        for b in range(rows):
            for a in range(cols):
                if (a + b) % 2 == 0:
                    texture[(b + 1) * q:(b + 2) * q, (a + 1) * q:(a + 2) * q] = 30
        origin = 2 * q  # inner corner (0, 0)
    # Texture pixel -> board metres, minus half a pixel because OpenCV puts pixel centres on integers.
    shift = (0.5 - origin) * s / q
    texture_to_board = np.array([[s / q, 0, shift], [0, s / q, shift], [0, 0, 1]])
    board_to_image = camera.matrix @ np.column_stack([to_camera[:3, 0], to_camera[:3, 1], to_camera[:3, 3]])
    w, h = camera.size
    image = cv2.warpPerspective(texture, board_to_image @ texture_to_board, (w, h), flags=cv2.INTER_LINEAR,
                                borderValue=(128,))
    return cv2.GaussianBlur(image, (0, 0), 0.7)


def board_to_camera(camera: TrueCamera, to_world: np.ndarray) -> np.ndarray:
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3], world_to_camera[:3, 3] = camera.rotation, camera.translation
    return world_to_camera @ to_world


def closeup_poses(board: Board, camera: TrueCamera, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Board -> camera poses for intrinsics views: the board spanning 40-75 % of the image's short side,
    turned up to about 35 degrees, anywhere in the frame."""
    objp = board.object_points().astype(np.float64)
    half = objp.mean(axis=0)
    w, h = camera.size
    extent = float(np.ptp(objp, axis=0).max())
    out: list[np.ndarray] = []
    while len(out) < count:
        r = cv2.Rodrigues(rng.uniform(-0.6, 0.6, size=3))[0]
        depth = camera.matrix[0, 0] * extent / (rng.uniform(0.4, 0.75) * min(w, h))
        pixel = np.array([rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h])
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = depth * np.linalg.inv(camera.matrix) @ np.array([*pixel, 1.0]) - r @ half
        px, _ = cv2.projectPoints(outline(board) @ r.T + m[:3, 3], np.zeros(3), np.zeros(3), camera.matrix,
                                  camera.distortion)
        if np.all((px.reshape(-1, 2) > 5) & (px.reshape(-1, 2) < [w - 5, h - 5])):
            out.append(m)
    return out


def closeups(board: Board, camera: TrueCamera, count: int, noise_px: float = 0.3, seed: int = 0) -> list[BoardView]:
    """Intrinsics views of one camera (closeup_poses) as detections; keys are negative (never shared)."""
    rng = np.random.default_rng(seed)
    objp = board.object_points().astype(np.float64)
    out: list[BoardView] = []
    for m in closeup_poses(board, camera, count, rng):
        px, _ = cv2.projectPoints(objp @ m[:3, :3].T + m[:3, 3], np.zeros(3), np.zeros(3), camera.matrix,
                                  camera.distortion)
        px = px.reshape(-1, 2) + rng.normal(0, noise_px, (len(objp), 2))
        out.append(BoardView(camera.name, -1 - len(out), f"{camera.name} close-up {len(out)}", camera.size,
                             Detection(np.arange(board.corner_count), px.astype(np.float32))))
    return out


def write_take(board: Board, cams: list[TrueCamera], poses: list[np.ndarray], folder: Path, lens_views: int,
               rng: np.random.Generator, *, video: bool = False, crop_take: int = 0) -> dict[str, tuple[Path, Path]]:
    """Render a take as files: per camera, its lens close-ups (for its intrinsics) and one frame per
    board pose, the same frame numbers in every camera (grey where the camera does not see the board's
    face): folders folder/NAME/lens/lens_NN.png and folder/NAME/take/frame_NNNN.png, or with video=True
    the videos folder/lens/NAME.mp4 and folder/take/NAME.mp4 (H.264, 10 fps). crop_take cuts that many
    columns off the right of the take (as Pose2Sim's 1080-wide videos of its 1088-wide cameras).
    Returns name -> (lens source, take source)."""
    out = {}
    for c in cams:
        lens_frames = [render(board, c, m) for m in closeup_poses(board, c, lens_views, rng)]
        take_frames = [render(board, c, board_to_camera(c, to_world)) if seen(c, board, to_world)
                       else np.full((c.size[1], c.size[0]), 128, np.uint8) for to_world in poses]
        take_frames = [f[:, :f.shape[1] - crop_take] for f in take_frames]
        if video:
            out[c.name] = (_write_video(lens_frames, folder / "lens" / f"{c.name}.mp4"),
                           _write_video(take_frames, folder / "take" / f"{c.name}.mp4"))
            continue
        lens, take = folder / c.name / "lens", folder / c.name / "take"
        lens.mkdir(parents=True, exist_ok=True)
        take.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(lens_frames):
            cv2.imwrite(str(lens / f"lens_{i:02d}.png"), image)
        for key, image in enumerate(take_frames):
            cv2.imwrite(str(take / f"frame_{key:04d}.png"), image)
        out[c.name] = (lens, take)
    return out


def _write_video(frames: list[np.ndarray], path: Path) -> Path:
    """H.264 (crf 18, one thread: the same bytes every run) at 10 fps, as PyAV writes it."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "18"}
        stream.codec_context.thread_count = 1
        stream.codec_context.thread_type = "NONE"
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.repeat(image[:, :, None], 3, axis=2), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path
