"""Calibration boards: their geometry, how people name them, and finding them in an image (OpenCV).

A checkerboard is counted by its inner corners, as OpenCV and Pose2Sim count them (4x7: 4 corners
along a row, 7 rows; 5 x 8 squares). A ChArUco board is counted by its squares (5x7) and needs its
marker size and ArUco dictionary. (keygrip.calibrate reads them as people write them: "4x7",
"charuco:5x7", "60mm".) Board coordinates are metres on the board's plane (z = 0),
x along a row of corners, y down the rows.

A plain checkerboard has no marks of its own, so OpenCV may start its corner list at any corner. For
intrinsics that does not matter; for extrinsics every camera must number the same physical corner the
same way, so `detect` puts the corners in one order: seen from the front, rows run clockwise of the
columns (the board's +z points away from the camera), and the first inner square is the dark one of
the two diagonal ends. That works when the corner counts differ in parity (4x7): a board whose counts
share it (4x6, 5x5) looks the same turned 180 degrees and cannot place several cameras
(`Board.orientable`). ChArUco corners carry their ids, so they need none of this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference_server.errors import InvalidInput

# Detection runs on a copy whose long side is at most this (the exhaustive sector-based detector costs
# about 2 s on a 1920 px photo and 0.1 s at 1000 px and finds the same boards); the corners are then
# refined on the full-resolution image.
DETECT_LONG_SIDE = 1000
MIN_CHARUCO_CORNERS = 6  # fewer cannot give a camera pose or add to the intrinsics


@dataclass(frozen=True)
class Board:
    """A calibration board. columns x rows: inner corners (checkerboard) or squares (ChArUco)."""

    columns: int
    rows: int
    square_m: float
    kind: str = "checkerboard"  # or "charuco"
    marker_m: float = 0.0  # ChArUco: the side of a marker
    dictionary: str = "DICT_4X4_50"  # ChArUco: the ArUco dictionary (cv2.aruco's name)

    def __post_init__(self) -> None:
        if self.kind not in ("checkerboard", "charuco"):
            raise InvalidInput(f"board kind {self.kind!r}: use checkerboard or charuco")
        least = 2 if self.kind == "checkerboard" else 3
        if self.columns < least or self.rows < least:
            what = "inner corners" if self.kind == "checkerboard" else "squares"
            raise InvalidInput(f"a {self.kind} needs at least {least}x{least} {what}, not {self.columns}x{self.rows}")
        if not self.square_m > 0:
            raise InvalidInput(f"the board's square size must be positive, not {self.square_m} m")
        if self.kind == "charuco":
            if not 0 < self.marker_m < self.square_m:
                raise InvalidInput(f"a ChArUco board's marker size ({self.marker_m * 1000:g} mm) must be positive and "
                                   f"smaller than its squares ({self.square_m * 1000:g} mm): give --marker")
            if not re.fullmatch(r"DICT_[0-9A-Z_]+", self.dictionary):
                raise InvalidInput(f"unknown ArUco dictionary {self.dictionary!r}: use one of OpenCV's names, "
                                   "such as DICT_4X4_50, DICT_5X5_100 or DICT_6X6_250")

    @property
    def corner_count(self) -> int:
        if self.kind == "charuco":
            return (self.columns - 1) * (self.rows - 1)
        return self.columns * self.rows

    @property
    def orientable(self) -> bool:
        """Whether each camera can tell the board's corners apart (needed to place several cameras)."""
        return self.kind == "charuco" or (self.columns + self.rows) % 2 == 1

    def object_points(self) -> np.ndarray:
        """(corner_count, 3) float32 board coordinates in metres, in corner-id order."""
        if self.kind == "charuco":
            return np.asarray(self._charuco().getChessboardCorners(), dtype=np.float32).reshape(-1, 3)
        c, r = np.meshgrid(np.arange(self.columns), np.arange(self.rows))
        return np.stack([c.ravel(), r.ravel(), np.zeros(c.size)], axis=1).astype(np.float32) * self.square_m

    def describe(self) -> str:
        if self.kind == "charuco":
            return (f"a ChArUco board of {self.columns}x{self.rows} squares ({self.square_m * 1000:g} mm, markers "
                    f"{self.marker_m * 1000:g} mm, {self.dictionary})")
        return f"a checkerboard of {self.columns}x{self.rows} inner corners ({self.square_m * 1000:g} mm squares)"

    def _charuco(self) -> Any:
        import cv2

        if not hasattr(cv2, "aruco"):
            raise InvalidInput("this server's OpenCV has no ArUco module, so it cannot read ChArUco boards; "
                               "use a checkerboard or install opencv-contrib-python")
        if not hasattr(cv2.aruco, self.dictionary):
            raise InvalidInput(f"unknown ArUco dictionary {self.dictionary!r}: use one of OpenCV's names, "
                               "such as DICT_4X4_50, DICT_5X5_100 or DICT_6X6_250")
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.columns, self.rows), self.square_m, self.marker_m, dictionary)


@dataclass(frozen=True)
class Detection:
    """A board found in one image: corner ids (into Board.object_points) and their pixels (OpenCV's
    convention: pixel centres on integers)."""

    ids: np.ndarray  # (N,) int
    points: np.ndarray  # (N, 2) float32


def detect(board: Board, gray: np.ndarray) -> Detection | None:
    """The board in a grayscale uint8 image, or None when it is not (wholly) there."""
    # OpenCV is imported where boards are found, not where they are described: the gRPC front checks
    # a request's Board and never loads OpenCV.
    if board.kind == "charuco":
        return _detect_charuco(board, gray)
    return _detect_checkerboard(board, gray)


def _detect_checkerboard(board: Board, gray: np.ndarray) -> Detection | None:
    import cv2

    size = (board.columns, board.rows)
    scale = min(1.0, DETECT_LONG_SIDE / max(gray.shape))
    small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    # The quick check (milliseconds) rules out frames without a board, most of a video's, before the
    # exhaustive search (a few tenths of a second); it passed every board image we have.
    if not cv2.checkChessboard(small, size):
        return None
    flags = cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_EXHAUSTIVE
    found, corners = cv2.findChessboardCornersSB(small, size, flags=flags)
    if not found:
        return None
    # The corner list's pixel centres are on integers at both scales: x_full + 0.5 = (x_small + 0.5) / scale.
    points = ((corners.reshape(-1, 2) + 0.5) / scale - 0.5).astype(np.float32)
    grid = points.reshape(board.rows, board.columns, 2)
    spacing = min(np.linalg.norm(np.diff(grid, axis=1), axis=2).min(),
                  np.linalg.norm(np.diff(grid, axis=0), axis=2).min())
    # Where the image cuts the board off, the detector can take the cut for a row of corners: such a grid
    # is no projection of the board. A homography fits a real one to a small fraction of a square (lens
    # distortion bends it by a pixel or two), a grid with a false row by a good part of one.
    objp = board.object_points()[:, :2]
    h_matrix, _ = cv2.findHomography(objp, points)
    if h_matrix is None:
        return None
    fitted = cv2.perspectiveTransform(objp.reshape(-1, 1, 2), h_matrix).reshape(-1, 2)
    if np.linalg.norm(fitted - points, axis=1).max() > 0.2 * spacing:
        return None
    half = int(np.clip(spacing * 0.3, 2, 15))  # a window well inside one square
    refined = cv2.cornerSubPix(gray, points.reshape(-1, 1, 2).copy(), (half, half), (-1, -1),
                               (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 0.01))
    grid = _canonical(refined.reshape(board.rows, board.columns, 2), gray)
    return Detection(ids=np.arange(board.corner_count), points=grid.reshape(-1, 2).astype(np.float32))


def _canonical(grid: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """The corner grid (rows, columns, 2) in the order the module docstring describes."""
    a, b = grid[0, 1] - grid[0, 0], grid[1, 0] - grid[0, 0]
    if a[0] * b[1] - a[1] * b[0] < 0:  # rows run anticlockwise of the columns in the image: mirror them
        grid = grid[:, ::-1]
    rows, columns = grid.shape[:2]
    if rows < 3 and columns < 3:
        return np.ascontiguousarray(grid)  # one square: nothing to compare it with
    # Every inner square votes, not one: a far, oblique board's squares are a few pixels high.
    cells = np.array([[_cell_brightness(grid, r, c, gray) for c in range(columns - 1)] for r in range(rows - 1)])
    parity = (np.add.outer(np.arange(rows - 1), np.arange(columns - 1)) % 2).astype(bool)
    if cells[~parity].mean() > cells[parity].mean():
        grid = grid[::-1, ::-1]  # a half turn keeps the handedness and puts a dark square first
    return np.ascontiguousarray(grid)


def _cell_brightness(grid: np.ndarray, row: int, column: int, gray: np.ndarray) -> float:
    """Mean grey level in the middle of the square between corners [row:row+2, column:column+2]: a patch
    a quarter of its shorter side across, so that it stays inside the square however oblique."""
    quad = grid[row:row + 2, column:column + 2].reshape(4, 2)
    centre = quad.mean(axis=0)
    side = min(np.linalg.norm(quad[1] - quad[0]), np.linalg.norm(quad[2] - quad[0]))
    r = max(0, int(0.25 * side) // 2)
    x, y = int(round(centre[0])), int(round(centre[1]))
    patch = gray[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
    return float(patch.mean()) if patch.size else 0.0


def _detect_charuco(board: Board, gray: np.ndarray) -> Detection | None:
    import cv2

    detector = cv2.aruco.CharucoDetector(board._charuco())
    corners, ids, _markers, _marker_ids = detector.detectBoard(gray)
    if ids is None or len(ids) < MIN_CHARUCO_CORNERS:
        return None
    # The detector's corners sit half a pixel off (measured on rendered boards: +0.49 px in x and y);
    # cornerSubPix puts them on the image's corners, in a window that stays clear of the markers (the gap
    # between a square's corner and its marker is (square - marker) / 2).
    points = corners.reshape(-1, 2).astype(np.float32)
    gaps = np.linalg.norm(points[:, None] - points[None], axis=2) + np.eye(len(points)) * 1e9
    clear = (board.square_m - board.marker_m) / (2 * board.square_m)
    half = int(np.clip(np.median(gaps.min(axis=1)) * clear * 0.8, 2, 15))
    refined = cv2.cornerSubPix(gray, points.reshape(-1, 1, 2).copy(), (half, half), (-1, -1),
                               (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 0.01))
    return Detection(ids=ids.ravel().astype(np.int64), points=refined.reshape(-1, 2))
