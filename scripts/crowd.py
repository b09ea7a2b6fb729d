"""Make a clip of a crowd of small people walking across the frame, whose places are known.

Each person is the one person of a source video (the Pose2Sim subject in a camera view), cut out
with MediaPipe's selfie segmentation, shrunk to a share of the frame's height, mirrored for every
other round of the sources and recoloured (a hue shift each), so that no two look alike. They
stand in two rows and walk sideways at their own pace, over a blurred background. Used for the
crowd case of people detection: people far from the camera, more of them than the default cap.

    python scripts/crowd.py OUT.mp4 VIDEO [VIDEO ...] [--people 12] [--frames 20] [--height 0.22]

Used by tests/test_people.py (import make_crowd_clip).
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

WIDTH, HEIGHT = 1280, 720
SOURCE_SIDE = 960


@dataclass
class CrowdClip:
    """path: the clip; hips: per frame and person, where the middle of the person's cut-out is
    (pixels of the clip, frames x people x 2); height: each person's height in pixels."""

    path: Path
    hips: np.ndarray
    height: int


def _cut_outs(videos: list[Path], frames: int) -> tuple[list[list[tuple[np.ndarray, np.ndarray]]], np.ndarray]:
    """Per video, each frame's person cropped to their mask (RGB, mask), and one blurred frame."""
    import mediapipe as mp

    seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    cams, background = [], None
    try:
        for video in videos:
            cuts = []
            for frame in iter_frames(video, 0, frames, SOURCE_SIDE):
                image = np.ascontiguousarray(frame.image)
                mask = seg.process(image.copy()).segmentation_mask > 0.5
                ys, xs = np.nonzero(mask)
                if not len(ys):
                    raise ValueError(f"{video.name}: nobody found on frame {frame.index}")
                box = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
                cuts.append((image[box].copy(), mask[box].copy()))
                if background is None:
                    background = cv2.resize(cv2.GaussianBlur(image, (0, 0), 25), (WIDTH, HEIGHT))
            cams.append(cuts)
    finally:
        seg.close()
    if background is None:
        raise ValueError("no frames in the source videos")
    return cams, background


def make_crowd_clip(sources: list[str | Path], out: str | Path, *, people: int = 12, frames: int = 20,
                    height: float = 0.22) -> CrowdClip:
    """Write `out` (H.264 MP4, 1280 x 720, the first source's frame rate): `people` people of
    `height` times the frame's height, in two rows, each walking sideways at a few pixels a frame;
    person p is cut from source p modulo their number."""
    videos = [Path(v) for v in sources]
    cams, background = _cut_outs(videos, frames)
    fps = probe(videos[0]).fps
    tall = int(height * HEIGHT)
    cols = int(np.ceil(people / 2))
    rng = np.random.default_rng(0)
    speed = rng.uniform(-3, 3, people)
    hips = np.zeros((frames, people, 2))
    out = Path(out)
    container = av.open(str(out), "w")
    stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    stream.options = {"crf": "18"}
    stream.codec_context.thread_count = 1  # one thread: the same bytes every run
    stream.codec_context.thread_type = "NONE"
    try:
        for k in range(frames):
            canvas = background.copy()
            for p in range(people):
                image, mask = cams[p % len(cams)][k]
                if p // len(cams) % 2:
                    image, mask = image[:, ::-1], mask[:, ::-1]
                hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV)
                hsv[..., 0] = (hsv[..., 0].astype(np.int32) + 23 * p) % 180
                image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
                wide = max(1, round(image.shape[1] * tall / image.shape[0]))
                image = cv2.resize(image, (wide, tall), interpolation=cv2.INTER_AREA)
                mask = cv2.resize(mask.astype(np.uint8), (wide, tall), interpolation=cv2.INTER_NEAREST) > 0
                cx = (p % cols + 0.5) * WIDTH / cols + speed[p] * k
                cy = HEIGHT * (0.3 + 0.42 * (p // cols))
                x0 = int(np.clip(round(cx - wide / 2), 0, WIDTH - wide))
                y0 = int(np.clip(round(cy - tall / 2), 0, HEIGHT - tall))
                region = canvas[y0:y0 + tall, x0:x0 + wide]
                region[mask] = image[mask]
                hips[k, p] = (x0 + wide / 2, y0 + tall / 2)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")))
        container.mux(stream.encode())
    finally:
        container.close()
    return CrowdClip(out, hips, tall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("videos", type=Path, nargs="+", help="clips of one person each (the Pose2Sim views)")
    parser.add_argument("--people", type=int, default=12)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--height", type=float, default=0.22, help="each person's height, share of the frame's")
    args = parser.parse_args()
    print(make_crowd_clip(args.videos, args.out, people=args.people, frames=args.frames, height=args.height).path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
