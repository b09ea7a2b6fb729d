"""Speed of capturing one chosen person against the bare MediaPipe Pose loop, taking turns.

A capture with a subject (`--subject X,Y@0`: the people pass, then MediaPipe Pose on the subject's
box, the checks and the solve), the same person by id along tracks DetectPeople found before
(`--subject ID --people-tracks`: no people pass; DetectPeople's own time, the artist's earlier step,
is not counted) and a hand-written MediaPipe Pose loop over the same frames run in
turns, `--repeat` times each, in one process. Printed: the ratio of their fastest runs by the
wall clock (on a machine shared with other work the fastest run is the one least disturbed), the
median ratio of each pair, and the ratio of the processor time each used (all threads: what the
work costs, which other work on the machine disturbs far less than the wall clock). The clip is
a Pose2Sim camera with a second person crossing the subject (scripts/distractor.py), the subject
clicked on their projected hips on frame 0.

    python scripts/bench_subject.py [--data ../shared/data] [--cameras cam01,cam04] [--repeat 3]

Target (issue 12): the subject capture at >= 0.8x the bare loop's speed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from distractor import make_distractor_clip  # noqa: E402
from eval_identity import bare_loop_fps, project_hips  # noqa: E402
from eval_mocap import CALIBRATION, REFERENCE, add_data_argument, balancing_trial  # noqa: E402

from inference_server.jobs.context import NullContext  # noqa: E402
from inference_server.mocap.capture import run_mocap  # noqa: E402
from inference_server.mocap.options import MocapOptions  # noqa: E402
from inference_server.mocap.people import find_people  # noqa: E402
from inference_server.mocap.subject import choose  # noqa: E402
from keygrip.v1 import mocap_pb2  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--cameras", default="cam01,cam04")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    trial = balancing_trial(args.data)
    if trial is None:
        return 0
    print(f"{'cam':6}{'capture':>9}{'bare fps':>10}{'fps':>7}{'ratio (fastest)':>17}{'ratio (median)':>16}"
          f"{'ratio (cpu)':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for cam in args.cameras.split(","):
            clip = make_distractor_clip(trial / "videos" / f"{cam}.mp4", Path(tmp) / f"{cam}.mp4", frames=args.frames)
            hips, _ = project_hips(trial / REFERENCE, trial / CALIBRATION, cam)
            x, y = hips[0] * clip.scale
            by_point = mocap_pb2.Subject(point=mocap_pb2.SubjectPoint(x=float(x), y=float(y), frame=0))
            people = find_people(clip.path, ctx=NullContext())
            by_id = mocap_pb2.Subject(track_id=choose(people, by_point).id)
            runs = {"point": (by_point, None), "tracks": (by_id, people)}
            n = len(clip.centre)
            bare, bare_cpu = [], []
            fps: dict[str, list[float]] = {k: [] for k in runs}
            cpu: dict[str, list[float]] = {k: [] for k in runs}
            for _ in range(args.repeat):
                c = time.process_time()
                bare.append(bare_loop_fps(clip.path))
                bare_cpu.append(time.process_time() - c)
                for kind, (chosen, known) in runs.items():
                    t, c = time.perf_counter(), time.process_time()
                    run_mocap(clip.path, MocapOptions(workers=1, subject=chosen), NullContext(), people=known)
                    fps[kind].append(n / (time.perf_counter() - t))
                    cpu[kind].append(time.process_time() - c)
            for kind in runs:
                pairs = sorted(o / b for o, b in zip(fps[kind], bare, strict=True))
                print(f"{cam:6}{kind:>9}{max(bare):>10.1f}{max(fps[kind]):>7.1f}{max(fps[kind]) / max(bare):>17.2f}"
                      f"{pairs[len(pairs) // 2]:>16.2f}{min(bare_cpu) / min(cpu[kind]):>14.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
