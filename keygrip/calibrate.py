"""Camera calibration from a board, host-neutral: the board and the cameras as people give them, and
the request they make (Client.calibrate submits it).

    board = parse_board("4x7", square="60mm")                    # a checkerboard's inner corners
    board = parse_board("charuco:5x7", square="40mm", marker="30mm", dictionary="DICT_4X4_50")
    cams = group_cameras(["int/cam01/*.jpg expanded", "cam02.mp4", "cam03=floor/c3.mp4"])  # name -> paths
    job = client.calibrate(board, cams, extrinsics=group_cameras([...]))

A camera is named by NAME=PATH, or else by its path: a video by its stem (cam02.mp4 -> cam02), a
folder of images by the folder (cam01/ -> cam01), a separate image by the folder it lies in (so that
cam01/*.jpg, as a shell expands it, is one camera). Python 3.9 compatible (Nuke 14).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from keygrip.sequences import IMAGE_EXTENSIONS
from keygrip.v1 import calibrate_pb2, common_pb2

Board = calibrate_pb2.CalibrationBoard
Kind = calibrate_pb2.CalibrationBoard.Kind


def parse_length(text: str, what: str = "square size") -> float:
    """Metres from "60mm", "6 cm", "0.06m" or "2.5in"; a bare number is refused (mm or m?)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*(mm|cm|m|in)\s*", text)
    if not m:
        raise ValueError(f"{what} {text!r}: give a number with its unit, e.g. 60mm, 6cm or 0.06m")
    return float(m.group(1)) * {"mm": 1e-3, "cm": 1e-2, "m": 1.0, "in": 0.0254}[m.group(2)]


def parse_board(text: str, square: str, marker: str = "", dictionary: str = "") -> calibrate_pb2.CalibrationBoard:
    """A board from "4x7" (a checkerboard's inner corners: 5x8 squares) or "charuco:5x7" (a ChArUco
    board's squares), its square size and, for ChArUco, its marker size and ArUco dictionary."""
    m = re.fullmatch(r"\s*(?:(checkerboard|chessboard|charuco)\s*:\s*)?(\d+)\s*[xX*]\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"board {text!r}: write its size as COLUMNSxROWS, e.g. 4x7 for a checkerboard's inner "
                         "corners or charuco:5x7 for a ChArUco board's squares")
    charuco = m.group(1) == "charuco"
    if charuco and not marker:
        raise ValueError(f"board {text!r}: a ChArUco board needs its marker size too (--marker 30mm)")
    return Board(kind=Kind.Value("KIND_CHARUCO" if charuco else "KIND_CHECKERBOARD"),
                 columns=int(m.group(2)), rows=int(m.group(3)), square_m=parse_length(square),
                 marker_m=parse_length(marker, "marker size") if charuco else 0.0, dictionary=dictionary)


def camera_name(path: str | os.PathLike[str]) -> str:
    """The camera a path belongs to when the user did not name it (see the module docstring)."""
    p = Path(path)
    if p.is_dir():
        return p.resolve().name
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        return p.resolve().parent.name
    return p.stem


def group_cameras(items: Iterable[str]) -> dict[str, list[Path]]:
    """Camera name -> its paths, in the order given, from NAME=PATH or PATH items."""
    out: dict[str, list[Path]] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or os.sep in name or "/" in name:
            name, path = camera_name(item), item
        if not Path(path).exists():
            raise FileNotFoundError(2, "No such file or directory", path)
        out.setdefault(name, []).append(Path(path))
    return out


def request(board: calibrate_pb2.CalibrationBoard, cameras: Mapping[str, Sequence[common_pb2.MediaInput]],
            extrinsics: Mapping[str, Sequence[common_pb2.MediaInput]], *, max_frames: int = 0,
            floor_frame: int | None = None, request_id: str = "") -> calibrate_pb2.CalibrateRequest:
    """A CalibrateRequest from each camera's inputs (MediaInputs) for its intrinsics and extrinsics."""
    req = calibrate_pb2.CalibrateRequest(board=board, max_frames=max_frames, request_id=request_id)
    if floor_frame is not None:
        req.floor_frame = floor_frame
    for name in list(cameras) + [n for n in extrinsics if n not in cameras]:
        req.cameras.add(name=name, intrinsics=list(cameras.get(name, ())), extrinsics=list(extrinsics.get(name, ())))
    return req
