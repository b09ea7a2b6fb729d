"""Make a clip with a second person crossing the subject, whose truth is known.

The second person is the subject themself, cut out with MediaPipe's selfie segmentation, mirrored
and recoloured (a hue shift of their clothes, so that they look like somebody else), moving across
the frame and back: they cross the subject twice, in front of them going one way and behind them
coming back. The subject's own pixels are untouched, so the subject's truth (the reference 3D
projected through the calibration, or the clean clip's own capture) still holds.

    python scripts/distractor.py SOURCE.mp4 OUT.mp4 [--frames N] [--max-side 960]

Used by scripts/eval_identity.py and tests/test_people.py (import make_distractor_clip).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference_server.media.video import iter_frames, probe  # noqa: E402


def distractor_offset(k: int, n: int, width: int) -> float:
    """Horizontal shift (pixels) of the mirrored copy on frame k of n: a full sine period, so the
    copy passes over the subject twice (once each way)."""
    return 0.45 * width * float(np.sin(2 * np.pi * (k + 0.5) / n + np.pi / 2))


@dataclass
class DistractorClip:
    """path: the clip; scale: its pixels per source pixel; centre, offset: per frame, the column the
    copy is mirrored about and its shift (pixels of the clip), so that a point at x of the subject
    is at 2 * centre - 1 - x + offset on the copy; in_front: per frame, the copy covers the subject."""

    path: Path
    scale: float
    centre: np.ndarray
    offset: np.ndarray
    in_front: np.ndarray

    def copy_x(self, x: np.ndarray) -> np.ndarray:
        """Where the subject's points at x (clip pixels, one per frame) are on the copy."""
        return 2 * self.centre - 1 - x + self.offset


def make_distractor_clip(source: str | Path, out: str | Path, *, frames: int | None = None,
                         max_side: int = 960, hue_shift: int = 60, with_copy: bool = True) -> DistractorClip:
    """Write `out` (H.264 MP4, the source's frame rate and first `frames` frames, downsized to
    max_side) with a moving, mirrored, recoloured copy of the person composited in; with_copy=False
    writes the same frames without it (the clean control, encoded alike)."""
    import mediapipe as mp

    info = probe(source)
    n = min(frames or info.frame_count, info.frame_count)
    out = Path(out)
    seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    container = av.open(str(out), "w")
    stream = None
    centres, offsets, fronts, scale = [], [], [], 1.0
    try:
        for k, frame in enumerate(iter_frames(source, 0, n, max_side)):
            image = np.ascontiguousarray(frame.image)
            h, w = image.shape[:2]
            scale = 1.0 / frame.scale
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(info.fps).limit_denominator(1001))
                stream.width, stream.height = w - w % 2, h - h % 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "18"}
                stream.codec_context.thread_count = 1  # one thread: the same bytes every run
                stream.codec_context.thread_type = "NONE"
            mask = seg.process(image.copy()).segmentation_mask > 0.5  # a copy: image is painted over below
            copy = image[:, ::-1].copy()
            copy_mask = mask[:, ::-1]
            hsv = cv2.cvtColor(copy, cv2.COLOR_RGB2HSV)
            hsv[..., 0] = (hsv[..., 0].astype(np.int32) + hue_shift // 2) % 180
            copy = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
            # Mirror about the subject's own centre, then slide: the copy starts beside the subject.
            cols = np.nonzero(mask.any(axis=0))[0]
            centre = float(cols.mean()) if len(cols) else w / 2
            offset = distractor_offset(k, n, w)
            shift = int(round(2 * centre - w + offset))
            matrix = np.float32([[1, 0, shift], [0, 1, 0]])
            copy = cv2.warpAffine(copy, matrix, (w, h))
            copy_mask = cv2.warpAffine(copy_mask.astype(np.uint8), matrix, (w, h)) > 0
            in_front = np.cos(2 * np.pi * (k + 0.5) / n + np.pi / 2) <= 0  # moving left: in front
            paste = copy_mask if in_front else copy_mask & ~mask
            if with_copy:
                image[paste] = copy[paste]
            centres.append(centre)
            offsets.append(shift - (2 * centre - w))
            fronts.append(bool(in_front))
            av_frame = av.VideoFrame.from_ndarray(image[:stream.height, :stream.width], format="rgb24")
            container.mux(stream.encode(av_frame))
        if stream is not None:
            container.mux(stream.encode())
    finally:
        container.close()
        seg.close()
    return DistractorClip(out, scale, np.array(centres), np.array(offsets), np.array(fronts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--max-side", type=int, default=960)
    args = parser.parse_args()
    print(make_distractor_clip(args.source, args.out, frames=args.frames, max_side=args.max_side).path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
