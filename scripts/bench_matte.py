"""Matte speed at 1080p: the default chain against bare Selfie Segmentation, in one process.

Frames are decoded and resized to 1920x1080 before timing (decoding is the same for both); each
method runs over the same frames twice and the faster pass counts. Prints ms per frame and the ratio
(the issue's targets: the chain at most 4x the bare cost and at most 50 ms a frame on 2 cores).

Run: .venv/bin/python scripts/bench_matte.py [--frames 60] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inference_server.compositing.matte import MatteChain, Segmenter  # noqa: E402
from inference_server.compositing.options import MatteOptions  # noqa: E402
from inference_server.media.video import iter_frames  # noqa: E402

CLIP = Path("video/sports2d_walk_jump/demo.mp4")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                    help="the shared data folder (../shared/data)")
    args = ap.parse_args()
    frames = [cv2.resize(f.image, (1920, 1080), interpolation=cv2.INTER_LINEAR)
              for f in iter_frames(args.data / CLIP, 0, args.frames)]
    seg = Segmenter()
    methods = {"bare selfie segmentation": lambda: seg,
               "chain (refine + stabilize)": lambda: MatteChain(MatteOptions(), seg),
               "chain, refine only": lambda: MatteChain(MatteOptions(stabilize=False), seg),
               "chain, stabilize only": lambda: MatteChain(MatteOptions(refine=False), seg)}
    ms = {}
    for label, make in methods.items():
        best = float("inf")
        for _ in range(2):
            run = make()
            t = time.perf_counter()
            for f in frames:
                run(f)
            best = min(best, (time.perf_counter() - t) / len(frames) * 1000.0)
        ms[label] = best
    base = ms["bare selfie segmentation"]
    print(f"{len(frames)} frames at 1920x1080")
    for label, value in ms.items():
        print(f"{label:30s}{value:8.1f} ms/frame{value / base:8.2f}x bare")
    seg.close()


if __name__ == "__main__":
    main()
