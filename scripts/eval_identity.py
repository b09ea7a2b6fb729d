"""Evaluate capturing the chosen person in a shot with a second person crossing them.

For each Pose2Sim balancing-trial camera, scripts/distractor.py makes a clip with a mirrored,
recoloured copy of the subject crossing them twice (in front going one way, behind coming back).
The subject's true hip centre on each frame is the reference 3D (.trc) projected through the
calibration; the copy's is the same point mirrored and shifted as the clip was made. Then:

  people pass      DetectPeople's tracks: frames where the subject's track lies on the subject,
                   id switches of the subject and of the copy (the track on them changes), people found;
                   frames where the two stand too close to tell whom a track is on are left out
  on subject       share of captured frames whose pose (hip centre) lies on the subject, capturing
                   with --subject X,Y@0 (a click on the subject on frame 0), and today's capture
                   without a subject; frames with no pose (hidden, bridged) are counted apart
  PA-MPJPE         the subject's solved joints against the reference, with the copy (capturing the
                   subject) vs the clean clip (the same frames, downsized and encoded alike), and the
                   clean clip captured with the subject chosen (what the masking alone costs)
  limbs bridged    share of frames with a pose where a limb was taken as mixed with someone else and
                   bridged (subject.mixed_limbs), with the copy and on the clean clip (false alarms)
  speed            the people pass and the subject capture (people pass + pose) against a bare
                   MediaPipe Pose loop over the same frames, in the same run

and for the Sports2D clip (no truth): the people found, their frames, and the walker's ids.

    python scripts/eval_identity.py [--data ../shared/data] [--cameras cam01,cam03] [--frames 100]

Targets (issue 12): on subject >= 99 %, 0 id switches, PA-MPJPE within 10 % of the clean clip,
subject capture >= 0.8x the bare loop.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from distractor import DistractorClip, make_distractor_clip  # noqa: E402
from eval_mocap import (  # noqa: E402
    CALIBRATION,
    JOINTS,
    REFERENCE,
    add_data_argument,
    balancing_trial,
    load_trc,
    procrustes_align,
)

from inference_server.jobs.context import NullContext  # noqa: E402
from inference_server.mocap.capture import MocapOutput, run_mocap  # noqa: E402
from inference_server.mocap.options import MocapOptions, SolveOptions  # noqa: E402
from inference_server.mocap.people import People, find_people  # noqa: E402
from inference_server.mocap.subject import LIMBS, choose  # noqa: E402
from inference_server.mocap.tracks import interpolate  # noqa: E402
from keygrip.v1 import mocap_pb2  # noqa: E402

# A pose or track lies on a person when its hip centre is within this share of their height.
ON_PERSON = 0.15


def project_hips(trc: Path, calibration: Path, cam: str) -> tuple[np.ndarray, np.ndarray]:
    """The subject's hip centre (F, 2) and standing height (F,) in the camera's source pixels:
    the reference .trc projected through the Pose2Sim calibration (axes as the data MANIFEST says)."""
    names, ref = load_trc(trc)
    calib = tomllib.loads(calibration.read_text())[f"cam_{cam[-2:]}"]

    def project(points: np.ndarray) -> np.ndarray:
        world = points[:, [2, 0, 1]]  # .trc (X, Y, Z) = lab (Y, Z, X)
        px, _ = cv2.projectPoints(world.astype(np.float64), np.array(calib["rotation"]),
                                  np.array(calib["translation"]), np.array(calib["matrix"]),
                                  np.array(calib["distortions"]))
        return px.reshape(-1, 2)

    hips = ref[:, [names.index("RHip"), names.index("LHip")]].mean(axis=1)
    head = project(ref[:, names.index("Head")])
    feet = project(ref[:, [names.index("RAnkle"), names.index("LAnkle")]].mean(axis=1))
    return project(hips), np.linalg.norm(head - feet, axis=1) * 1.1


def track_on(people: People, xy: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Per scanned frame, the id of the track detected on the person at xy (clip pixels), or 0."""
    ids = np.zeros(len(people.frames), np.int64)
    for t in people.tracks:
        where, _ = interpolate(t, people.frames, 0)
        seen = np.isin(people.frames, t.frames)
        near = np.linalg.norm(where[:, :2] - xy, axis=1) < ON_PERSON * height
        ids[seen & near] = t.id
    return ids


def switches(ids: np.ndarray) -> int:
    """How often the track on a person changes (frames with no track on them are skipped)."""
    seen = ids[ids > 0]
    return int((np.diff(seen) != 0).sum())


def bare_loop_fps(video: Path, max_side: int = 1280) -> float:
    """A hand-written MediaPipe Pose tracking loop over the clip (as scripts/bench_mocap.py)."""
    import mediapipe as mp

    from inference_server.media.video import iter_frames

    t0, n = time.perf_counter(), 0
    with mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, smooth_landmarks=True) as pose:
        for frame in iter_frames(video, 0, None, max_side):
            pose.process(np.ascontiguousarray(frame.image))
            n += 1
    return n / (time.perf_counter() - t0)


def pa_mpjpe(clip_joints: np.ndarray, ref: np.ndarray) -> float:
    n = min(len(clip_joints), len(ref))
    return 1000 * float(np.linalg.norm(procrustes_align(clip_joints[:n], ref[:n]) - ref[:n], axis=-1).mean())


def solved_joints(out: MocapOutput) -> np.ndarray:
    _, pos = out.clip.global_transforms()
    return pos[:, [out.clip.skeleton.index(j[2]) for j in JOINTS]]


def evaluate_camera(trial: Path, cam: str, frames: int, folder: Path) -> dict[str, float]:
    video = trial / "videos" / f"{cam}.mp4"
    dclip: DistractorClip = make_distractor_clip(video, folder / f"{cam}_distractor.mp4", frames=frames)
    hips, height = project_hips(trial / REFERENCE, trial / CALIBRATION, cam)
    n = len(dclip.centre)
    subject_xy, h = hips[:n] * dclip.scale, height[:n] * dclip.scale
    copy_xy = np.stack([dclip.copy_x(subject_xy[:, 0]), subject_xy[:, 1]], axis=1)
    calib = tomllib.loads((trial / CALIBRATION).read_text())
    focal = float(calib[f"cam_{cam[-2:]}"]["matrix"][0][0]) * dclip.scale

    t = time.perf_counter()
    people = find_people(dclip.path, ctx=NullContext())
    people_s = time.perf_counter() - t
    # Where the two stand closer than twice ON_PERSON, a track near one is near the other too: those
    # frames cannot tell whom a track is on, and are left out of the identity counts.
    apart = np.linalg.norm(subject_xy - copy_xy, axis=1)[people.frames] >= 2 * ON_PERSON * h[people.frames]
    on_subject = track_on(people, subject_xy, h)[apart]
    on_copy = track_on(people, copy_xy, h)[apart]
    chosen = mocap_pb2.Subject(point=mocap_pb2.SubjectPoint(x=float(subject_xy[0, 0]), y=float(subject_xy[0, 1]),
                                                            frame=0))
    subject_id = choose(people, chosen).id  # DetectPeople's id of the person the click picks
    solve = SolveOptions(focal_length_px=focal)
    t = time.perf_counter()
    ours = run_mocap(dclip.path, MocapOptions(workers=1, subject=chosen, solve=solve), NullContext())
    ours_s = time.perf_counter() - t
    plain = run_mocap(dclip.path, MocapOptions(workers=1, solve=solve), NullContext())
    # The clean control: the same frames, downsized and encoded alike, without the copy.
    control = make_distractor_clip(video, folder / f"{cam}_clean.mp4", frames=frames, with_copy=False)
    clean = run_mocap(control.path, MocapOptions(workers=1, solve=solve), NullContext())
    clean_subject = run_mocap(control.path, MocapOptions(workers=1, solve=solve, subject=chosen), NullContext())
    bare = bare_loop_fps(dclip.path)

    def share_on(out: MocapOutput) -> tuple[float, int]:
        lm = out.landmarks
        w, hh = lm.image_size
        pose_hips = lm.pose_image[:, [23, 24], :2].mean(axis=1) * np.array([w, hh])
        present = lm.pose_present
        on = np.linalg.norm(pose_hips - subject_xy[:lm.num_frames], axis=1) < ON_PERSON * h[:lm.num_frames]
        return float((on & present).sum() / max(1, present.sum())), int((~present).sum())

    def mixed_share(out: MocapOutput) -> float:
        """Share of the frames with a pose where a limb was taken as mixed with someone else and
        bridged (subject.bridge_limbs sets its visibility to exactly 0; MediaPipe's never is)."""
        lm = out.landmarks
        limbs = [j for joints in LIMBS.values() for j in joints]
        bridged = (lm.pose_visibility[:, limbs] == 0).any(axis=1) & lm.pose_present
        return float(bridged.sum() / max(1, lm.pose_present.sum()))

    names, ref_all = load_trc(trial / REFERENCE)
    ref = ref_all[:n, [names.index(j[0]) for j in JOINTS]]
    ours_share, ours_missing = share_on(ours)
    plain_share, _ = share_on(plain)
    return {
        "people": len(people.tracks),
        "subject track on subject %": 100 * float((on_subject == subject_id).mean()),
        "subject id switches": switches(on_subject),
        "copy id switches": switches(on_copy),
        "on subject % (subject)": 100 * ours_share,
        "frames without pose": ours_missing,
        "on subject % (no subject)": 100 * plain_share,
        "PA-MPJPE clean mm": pa_mpjpe(solved_joints(clean), ref),
        "PA-MPJPE clean, subject mm": pa_mpjpe(solved_joints(clean_subject), ref),
        "PA-MPJPE distractor mm": pa_mpjpe(solved_joints(ours), ref),
        "distractor / clean": pa_mpjpe(solved_joints(ours), ref) / pa_mpjpe(solved_joints(clean), ref),
        "limbs bridged % (distr.)": 100 * mixed_share(ours),
        "limbs bridged % (clean)": 100 * mixed_share(clean_subject),
        "people pass / bare": (n / people_s) / bare,
        "subject capture / bare": (n / ours_s) / bare,
        "bare fps": bare,
    }


def sports2d(clip: Path, frames: int | None) -> None:
    t = time.perf_counter()
    people = find_people(clip, end=frames, ctx=NullContext())
    s = time.perf_counter() - t
    print(f"\nSports2D ({len(people.frames)} frames, people pass {len(people.frames) / s:.1f} fps): "
          f"{len(people.tracks)} people")
    for tr in people.tracks:
        d = tr.detections
        print(f"  person {tr.id}: frames {tr.frames[0]}-{tr.frames[-1]} seen on {len(tr.frames)}, "
              f"from ({d[0].x:.0f}, {d[0].y:.0f}) to ({d[-1].x:.0f}, {d[-1].y:.0f})")
    for w in people.warnings:
        print("  warning:", w)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_argument(parser)
    parser.add_argument("--cameras", default="cam01,cam02,cam03,cam04")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--sports2d-frames", type=int, default=None, help="frames of the Sports2D clip (all)")
    parser.add_argument("--no-sports2d", action="store_true")
    args = parser.parse_args()
    trial = balancing_trial(args.data)
    if trial is None:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        results = {cam: evaluate_camera(trial, cam, args.frames, Path(tmp)) for cam in args.cameras.split(",")}
    keys = list(next(iter(results.values())))
    print(f"\n{'':28}" + "".join(f"{cam:>10}" for cam in results))
    for k in keys:
        print(f"{k:28}" + "".join(f"{results[c][k]:>10.2f}" for c in results))
    sports = args.data / "video" / "sports2d_walk_jump" / "demo.mp4"
    if sports.exists() and not args.no_sports2d:
        sports2d(sports, args.sports2d_frames)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
