"""Speed of capturing everyone in a shot: the people's pose passes side by side against one after the
other, taking turns in one process.

The clip is a Pose2Sim camera with a second person crossing the subject (scripts/distractor.py).
The people are found once beforehand (DetectPeople's tracks, as `--people-tracks` passes them), so
that only the pose passes, the checks and the solves are timed: the processes a capture uses by
default, or `--workers N`, shared out among the people (inference.detect_each), against one process
(`--workers 1`). Printed per camera: the
fastest run of each, their ratio, and the ratio of processor time (all processes of the job).

    python scripts/bench_everyone.py [--data ../shared/data] [--cameras cam01,cam04] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from distractor import make_distractor_clip  # noqa: E402
from eval_mocap import add_data_argument, balancing_trial  # noqa: E402

from inference_server.jobs.context import NullContext  # noqa: E402
from inference_server.mocap.capture import run_mocap_everyone  # noqa: E402
from inference_server.mocap.inference import inference_processes  # noqa: E402
from inference_server.mocap.options import MocapOptions  # noqa: E402
from inference_server.mocap.people import find_people  # noqa: E402


def cpu_seconds() -> float:
    """Processor time of this process and its finished children (the spawned pose passes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--cameras", default="cam01,cam04")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--workers", type=int, help="processes shared out among the people (default: as a "
                        "capture picks them on this machine)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    trial = balancing_trial(args.data)
    if trial is None:
        return 0
    print(f"side by side: {inference_processes(args.workers, args.frames)} processes on {os.cpu_count()} cores")
    print(f"{'cam':6}{'people':>8}{'one by one s':>14}{'side by side s':>16}{'ratio':>8}{'ratio (cpu)':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for cam in args.cameras.split(","):
            clip = make_distractor_clip(trial / "videos" / f"{cam}.mp4", Path(tmp) / f"{cam}.mp4", frames=args.frames)
            people = find_people(clip.path, ctx=NullContext())
            wall: dict[int | None, list[float]] = {1: [], args.workers: []}
            cpu: dict[int | None, list[float]] = {1: [], args.workers: []}
            captured = 0
            for _ in range(args.repeat):
                for workers in wall:
                    t, c = time.perf_counter(), cpu_seconds()
                    _, outputs, _ = run_mocap_everyone(clip.path, MocapOptions(workers=workers, everyone=True),
                                                       NullContext(), people=people)
                    wall[workers].append(time.perf_counter() - t)
                    cpu[workers].append(cpu_seconds() - c)
                    captured = len(outputs)
            one, many = min(wall[1]), min(wall[args.workers])
            print(f"{cam:6}{captured:>8}{one:>14.2f}{many:>16.2f}{one / many:>8.2f}"
                  f"{min(cpu[1]) / min(cpu[args.workers]):>13.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
