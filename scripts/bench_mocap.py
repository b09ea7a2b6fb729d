"""Benchmark: end-to-end mocap (run_mocap) against a bare MediaPipe Pose loop over the same frames.

The baseline is what a user would write by hand: PyAV decode, resize to the same max side with
cv2.INTER_AREA, pose.process per frame, one process. Both run in the same invocation because these
machines are noisy; the ratio is what to compare across runs.

    python scripts/bench_mocap.py [--video clip.mp4] [--workers 1,2] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_CLIP = Path("video") / "sports2d_walk_jump" / "demo.mp4"
MAX_SIDE = 1280


def baseline_fps(video: Path, max_side: int) -> tuple[int, float]:
    """Frames and frames per second of a bare single-process Pose tracking loop."""
    import av
    import cv2
    import mediapipe as mp

    t0 = time.perf_counter()
    n = 0
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True) as pose, \
            av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            image = frame.to_ndarray(format="rgb24")
            h, w = image.shape[:2]
            s = max_side / max(h, w)
            if s < 1:
                image = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            pose.process(image)
            n += 1
    return n, n / (time.perf_counter() - t0)


def ours_fps(video: Path, workers: int) -> tuple[int, float, dict[str, float]]:
    from inference_server.jobs.context import NullContext
    from inference_server.mocap.capture import run_mocap
    from inference_server.mocap.options import MocapOptions

    t0 = time.perf_counter()
    out = run_mocap(video, MocapOptions(workers=workers), NullContext())
    n = out.landmarks.num_frames
    return n, n / (time.perf_counter() - t0), out.timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder")
    parser.add_argument("--video", type=Path, help=f"clip to use (default: <data>/{DEFAULT_CLIP})")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to run")
    args = parser.parse_args()
    video = args.video or args.data / DEFAULT_CLIP
    if not video.is_file():
        print(f"skipped: {video} not found; pass --data or --video", file=sys.stderr)
        return 0
    sys.path.insert(0, str(REPO))

    n, base = baseline_fps(video, MAX_SIDE)
    print(f"clip: {video.name}, {n} frames, max side {MAX_SIDE}, {os.cpu_count()} cores")
    print(f"{'run':<28}{'fps':>8}{'ratio':>8}   stages (s)")
    print(f"{'baseline (bare Pose loop)':<28}{base:8.1f}{1.0:8.2f}")
    for w in (int(x) for x in args.workers.split(",")):
        n_ours, fps, timings = ours_fps(video, w)
        stages = " ".join(f"{k}={v:.2f}" for k, v in timings.items())
        print(f"{f'run_mocap workers={w}':<28}{fps:8.1f}{fps / base:8.2f}   {stages} ({n_ours} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
