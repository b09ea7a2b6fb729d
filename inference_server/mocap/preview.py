"""QA preview: the footage with the tracked 2D skeleton drawn over it, as an H.264 MP4.

Artists scrub this to see where tracking failed before trusting the animation. Frames without a
person say so in red; when a solved clip is given, its per-frame flag (interpolated / missing) is
written too, so gaps the solver filled are visible. In a shot with several people, each person's
track is drawn as a box in their own colour with their id (DetectPeople's), the captured person's
thicker and marked, so that a swap onto someone else shows at a glance.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from inference_server.media.video import iter_frames
from inference_server.mocap.landmarks import Landmarks
from inference_server.mocap.people import People
from inference_server.mocap.tracks import body_box, interpolate
from inference_server.motion.clip import FrameFlag, MotionClip, frame_rate

# MediaPipe Pose topology (landmark indices): face outline, arms, torso, legs and feet.
POSE_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 7), (0, 4), (4, 5), (5, 6), (6, 8), (9, 10),
    (11, 12), (11, 13), (13, 15), (15, 17), (15, 19), (15, 21), (17, 19),
    (12, 14), (14, 16), (16, 18), (16, 20), (16, 22), (18, 20),
    (11, 23), (12, 24), (23, 24),
    (23, 25), (25, 27), (27, 29), (29, 31), (27, 31),
    (24, 26), (26, 28), (28, 30), (30, 32), (28, 32),
)
# MediaPipe hand topology: palm and the four joints of each finger.
HAND_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11), (11, 12),
    (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20),
)
# The subject's left side is drawn in orange, the right in cyan (RGB), like most mocap tools.
_LEFT, _RIGHT, _CENTRE = (255, 150, 0), (0, 200, 255), (230, 230, 230)
_FACE = (180, 255, 180)
_WARN = (255, 40, 40)
_VISIBLE = 0.5
# One colour per person id (RGB), repeating after eight.
_PEOPLE = ((255, 80, 80), (80, 220, 80), (90, 140, 255), (255, 220, 60), (220, 90, 255), (60, 230, 230),
           (255, 150, 200), (170, 170, 90))
Box = tuple[float, float, float, float]


def person_colour(track_id: int) -> tuple[int, int, int]:
    """The colour a person's box and id are drawn in (RGB)."""
    return _PEOPLE[(track_id - 1) % len(_PEOPLE)]


def write_preview(
    video_path: str | Path,
    landmarks: Landmarks,
    out_path: str | Path,
    *,
    clip: MotionClip | None = None,
    people: People | None = None,
    subject_id: int = 0,
    max_side: int = 960,
) -> Path:
    """Write an MP4 of the frames in landmarks, downsized to max_side, with the skeleton drawn.

    clip: the solved clip of the same frames (same order), whose frame_flags are shown; optional.
    people: the shot's people, each drawn as a box with their id where their track is known;
    subject_id: the one the landmarks are of (0: none).
    Returns out_path. Uses libx264 (PyAV's bundled FFmpeg has it), yuv420p, the source frame rate.
    """
    out_path = Path(out_path)
    rows = {int(f): i for i, f in enumerate(landmarks.frame_indices)}
    tracks = [(t.id, *interpolate(t, landmarks.frame_indices, people.max_gap)) for t in people.tracks] if people else []
    first, last = int(landmarks.frame_indices.min()), int(landmarks.frame_indices.max())
    flags = clip.frame_flags if clip is not None and clip.num_frames == landmarks.num_frames else None
    with av.open(str(out_path), mode="w") as out:
        stream = None
        for frame in iter_frames(video_path, first, last + 1, max_side):
            row = rows.get(frame.index)
            if row is None:
                continue
            image = np.ascontiguousarray(frame.image)
            if stream is None:
                fps = frame_rate(landmarks.fps, landmarks.times)  # a file without a usable rate gets one
                stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                # yuv420p needs even sizes; crop the odd last row or column.
                stream.width, stream.height = image.shape[1] // 2 * 2, image.shape[0] // 2 * 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "23", "preset": "veryfast"}
            boxes = [(i, _box(where[row], frame.scale)) for i, where, known in tracks if known[row]]
            draw_people(image, boxes, subject_id)
            _draw(image, landmarks, row, None if flags is None else int(flags[row]), frame.index)
            image = image[: stream.height, : stream.width]
            vf = av.VideoFrame.from_ndarray(image, format="rgb24")
            vf.pts = frame.index - first
            out.mux(stream.encode(vf))
        if stream is not None:
            out.mux(stream.encode(None))
    return out_path


def _draw(image: np.ndarray, lm: Landmarks, row: int, flag: int | None, index: int) -> None:
    h, w = image.shape[:2]
    thickness = max(1, round(max(h, w) / 400))

    def px(points: np.ndarray) -> np.ndarray:
        return np.round(points[:, :2] * (w, h)).astype(np.int32)

    if lm.pose_present[row]:
        pts = px(np.nan_to_num(lm.pose_image[row]))
        vis = lm.pose_visibility[row] > _VISIBLE
        for a, b in POSE_EDGES:
            if vis[a] and vis[b]:
                colour = _side_colour(a, b)
                cv2.line(image, tuple(pts[a]), tuple(pts[b]), colour, thickness, cv2.LINE_AA)
        for j in np.nonzero(vis)[0]:
            cv2.circle(image, tuple(pts[j]), thickness + 1, _CENTRE, -1, cv2.LINE_AA)
    else:
        _label(image, "NO PERSON", _WARN, 2)
    for hand, colour in ((lm.left_hand_image, _LEFT), (lm.right_hand_image, _RIGHT)):
        if hand is not None and not np.isnan(hand[row]).any():
            pts = px(hand[row])
            for a, b in HAND_EDGES:
                cv2.line(image, tuple(pts[a]), tuple(pts[b]), colour, max(1, thickness // 2), cv2.LINE_AA)
    if lm.face_image is not None and not np.isnan(lm.face_image[row]).any():
        for p in px(lm.face_image[row])[::3]:
            image[np.clip(p[1], 0, h - 1), np.clip(p[0], 0, w - 1)] = _FACE
    _label(image, f"frame {index}", _CENTRE, 1)
    if flag is not None and flag != FrameFlag.TRACKED:
        _label(image, FrameFlag(flag).name, _WARN, 3)


def _box(where: np.ndarray, scale: float) -> Box:
    """A track's (x, y, radius) in source pixels as its body box in the image's pixels."""
    x, y, r = where / scale
    return body_box(x, y, r)


def draw_people(image: np.ndarray, boxes: list[tuple[int, Box]], subject_id: int = 0) -> None:
    """Each person's box (pixels of `image`) in their colour, labelled with their id; the subject's
    thicker and labelled as captured."""
    h, w = image.shape[:2]
    thin = max(1, round(max(h, w) / 600))
    scale = max(0.4, max(h, w) / 1600)
    for track_id, (x0, y0, x1, y1) in boxes:
        colour = person_colour(track_id)
        chosen = track_id == subject_id
        p0, p1 = (round(x0), round(y0)), (round(x1), round(y1))
        cv2.rectangle(image, p0, p1, colour, 3 * thin if chosen else thin)  # axis-aligned: no anti-aliasing
        text = f"{track_id} captured" if chosen else str(track_id)
        at = (max(0, p0[0]), max(int(20 * scale), p0[1] - 4))
        cv2.putText(image, text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3 * thin + 2, cv2.LINE_AA)
        cv2.putText(image, text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thin + 1, cv2.LINE_AA)


def _side_colour(a: int, b: int) -> tuple[int, int, int]:
    # MediaPipe numbers the subject's left-side landmarks odd and right-side ones even (0 is the nose).
    if a % 2 and b % 2:
        return _LEFT
    if a and b and a % 2 == 0 and b % 2 == 0:
        return _RIGHT
    return _CENTRE


def _label(image: np.ndarray, text: str, colour: tuple[int, int, int], line: int) -> None:
    scale = max(0.5, max(image.shape[:2]) / 1200)
    weight = max(1, round(2 * scale))
    y = int(30 * scale * line) + 5
    cv2.putText(image, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), weight + 3, cv2.LINE_AA)
    cv2.putText(image, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, weight, cv2.LINE_AA)
