"""Matte speed at 1080p: the default chain against bare Selfie Segmentation, in one process.

Frames are decoded and resized to 1920x1080 before timing (decoding is the same for both). The
methods take turns over the same frames for --rounds rounds and each one's median counts: on a
shared machine the load changes by the second, and alternating spreads it over all of them.
Prints ms per frame and the ratio (the issue's targets: the chain at most 4x the bare cost and at
most 50 ms a frame on 2 cores).

Run: .venv/bin/python scripts/bench_matte.py [--frames 30] [--rounds 5] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import statistics
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
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                    help="the shared data folder (../shared/data)")
    args = ap.parse_args()
    frames = [cv2.resize(f.image, (1920, 1080), interpolation=cv2.INTER_LINEAR)
              for f in iter_frames(args.data / CLIP, 0, args.frames)]
    seg = Segmenter()
    methods = {"bare selfie segmentation": lambda: seg,
               "chain (refine + stabilize)": lambda: MatteChain(MatteOptions(), seg),
               "chain, no mirror": lambda: MatteChain(MatteOptions(mirror=False), seg),
               "chain, no band matting": lambda: MatteChain(MatteOptions(band_matting=False), seg),
               "chain, refine only": lambda: MatteChain(MatteOptions(stabilize=False), seg),
               "chain, stabilize only": lambda: MatteChain(MatteOptions(refine=False), seg)}
    times: dict[str, list[float]] = {label: [] for label in methods}
    cpu: dict[str, list[float]] = {label: [] for label in methods}
    for _ in range(args.rounds):
        for label, make in methods.items():
            run = make()
            t, c = time.perf_counter(), time.process_time()
            for f in frames:
                run(f)
            times[label].append((time.perf_counter() - t) / len(frames) * 1000.0)
            # CPU time of the whole process (all its threads): what the work costs, less sensitive than
            # wall time to other programs on a shared machine.
            cpu[label].append((time.process_time() - c) / len(frames) * 1000.0)
    ms = {label: statistics.median(values) for label, values in times.items()}
    cpu_ms = {label: statistics.median(values) for label, values in cpu.items()}
    base, cpu_base = ms["bare selfie segmentation"], cpu_ms["bare selfie segmentation"]
    print(f"{len(frames)} frames at 1920x1080, medians of {args.rounds} alternating rounds")
    print(f"{'':30s}{'wall ms':>9s}{'x bare':>8s}{'cpu ms':>9s}{'x bare':>8s}")
    for label, value in ms.items():
        print(f"{label:30s}{value:9.1f}{value / base:8.2f}{cpu_ms[label]:9.1f}{cpu_ms[label] / cpu_base:8.2f}")
    seg.close()


if __name__ == "__main__":
    main()
