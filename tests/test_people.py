"""People in a shot (DetectPeople) and capturing the chosen one, through the real server on real video.

The clips are made here from the Pose2Sim trial (tests/data): a mirrored, recoloured copy of the
subject crossing them (scripts/distractor.py), the subject sliding out of the frame, a crowd of
twelve. The subject's truth is the reference 3D projected through the calibration.
"""

from __future__ import annotations

import io
import multiprocessing
import re
import subprocess
import sys
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from job_contexts import CancelAfter
from server_process import REPO

import keygrip
from inference_server.errors import FailedPrecondition, InvalidInput, JobCancelled
from inference_server.jobs.context import NullContext
from inference_server.media.video import iter_frames
from inference_server.mocap import subject_pass
from inference_server.mocap.inference import detect, detect_each
from inference_server.mocap.landmarks import Landmarks
from inference_server.mocap.options import MocapOptions, check
from inference_server.mocap.people import DEFAULT_MAX_PEOPLE, People, find_people
from inference_server.mocap.preview import draw_people, person_colour
from inference_server.mocap.subject import LIMBS, choose, keep_subject, mask_boxes
from inference_server.mocap.subject_pass import capture_subject
from inference_server.mocap.tracks import Detection, Linker, Track
from keygrip.animate import CaptureOptions
from keygrip.people import subject
from keygrip.v1 import mocap_pb2

sys.path.insert(0, str(REPO / "scripts"))
from crowd import CrowdClip, make_crowd_clip  # noqa: E402
from distractor import DistractorClip, make_distractor_clip  # noqa: E402
from eval_identity import project_hips  # noqa: E402

DATA = Path(__file__).parent / "data"
VIDEO = DATA / "video" / "pose2sim_cam01.mp4"
VIDEO_CAM02 = DATA / "video" / "pose2sim_cam02_vp9_audio.mp4"
TRC = DATA / "pose2sim" / "S00_P00_T01_BalancingTrial_0-100_filt_butterworth.trc"
CALIBRATION = DATA / "pose2sim" / "Calib_qualisys_converted_by_pose2sim.toml"
FRAMES = 30


@pytest.fixture(scope="module")
def crossing(tmp_path_factory: pytest.TempPathFactory) -> DistractorClip:
    return make_distractor_clip(VIDEO, tmp_path_factory.mktemp("people") / "crossing.mp4", frames=FRAMES,
                                max_side=480)


@pytest.fixture(scope="module")
def truth(crossing: DistractorClip) -> tuple[np.ndarray, np.ndarray]:
    """The subject's hip centre (F, 2) and height (F,) in the crossing clip's pixels."""
    hips, height = project_hips(TRC, CALIBRATION, "cam01")
    return hips[:FRAMES] * crossing.scale, height[:FRAMES] * crossing.scale


def _write(frames: list[np.ndarray], out: Path, fps: int = 30) -> Path:
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        height, width = frames[0].shape[:2]
        stream.height, stream.width = height - height % 2, width - width % 2
        stream.pix_fmt = "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(
                np.ascontiguousarray(image[:stream.height, :stream.width]), format="rgb24")))
        container.mux(stream.encode())
    return out


def _centre(person: mocap_pb2.PersonTrack, frame: int) -> np.ndarray | None:
    frames = list(person.frames)
    if frame not in frames:
        return None
    k = frames.index(frame)
    x0, y0, x1, y1 = person.boxes[4 * k:4 * k + 4]
    return np.array([(x0 + x1) / 2, (y0 + y1) / 2])


def test_detect_people_finds_both_and_keeps_the_subjects_id(client: keygrip.Client, crossing: DistractorClip,
                                                             truth: tuple[np.ndarray, np.ndarray]) -> None:
    result = client.detect_people(crossing.path).result(timeout=300)
    assert result.frames == FRAMES and result.first_frame == 0 and result.processing_fps > 0
    assert (result.width, result.height) == (270, 480)
    assert len(result.people) >= 2
    for person in result.people:
        assert list(person.frames) == sorted(person.frames) and len(person.boxes) == 4 * len(person.frames)
        assert 0 < person.visible_fraction <= 1
        thumb = cv2.imdecode(np.frombuffer(person.thumbnail_png, np.uint8), cv2.IMREAD_COLOR)
        assert thumb is not None and thumb.shape[0] == 128
    hips, height = truth
    copy_x = crossing.copy_x(hips[:, 0])
    # The subject's track is the one on them at frame 0; it stays on them wherever it is seen, and
    # no other track is ever on them: no id switch (the copy crosses in front of them on this clip).
    # Frames where the copy stands right over the subject tell nothing (either could be seen there)
    # and are left out.
    apart = np.abs(copy_x - hips[:, 0]) >= 0.15 * height
    on = {p.id: [f for f in p.frames if apart[f] and np.linalg.norm(_centre(p, f) - hips[f]) < 0.15 * height[f]]
          for p in result.people}
    first = [p.id for p in result.people if 0 in on[p.id]]
    assert len(first) == 1
    subject_id = first[0]
    person = next(p for p in result.people if p.id == subject_id)
    assert len(on[subject_id]) == int(apart[list(person.frames)].sum()) >= 0.6 * FRAMES
    assert all(not on[p.id] for p in result.people if p.id != subject_id), on
    # The copy is found too, beside the subject on frame 0.
    assert any(_centre(p, 0) is not None and abs(_centre(p, 0)[0] - copy_x[0]) < 0.15 * height[0]
               for p in result.people if p.id != subject_id)


def test_capture_follows_the_subject_chosen_by_a_point(client: keygrip.Client, crossing: DistractorClip,
                                                       truth: tuple[np.ndarray, np.ndarray]) -> None:
    hips, height = truth
    x, y = hips[0]
    result = client.capture_motion(crossing.path, subject=f"{x:.0f},{y:.0f}@0").result(timeout=300)
    assert result.subject_id >= 1
    lm = np.load(io.BytesIO(client.download_bytes(result.landmarks.id)))
    w, h = 270, 480
    pose_hips = lm["pose_image"][:, [23, 24], :2].mean(axis=1) * [w, h]
    present = lm["pose_present"]
    # Where the copy passes close, the pose model may pick it up inside the subject's box: those
    # frames are dropped (bridged), never kept; on this clip 10-11 of 30 are.
    assert present.sum() >= 0.5 * FRAMES, (result.subject_id, list(result.warnings), present)
    off = np.linalg.norm(pose_hips - hips, axis=1) >= 0.15 * height
    assert not (present & off).any(), f"frames off the subject: {np.nonzero(present & off)[0]}"
    # The same person by id, over the same frames, is the same capture.
    again = client.capture_motion(crossing.path, subject=result.subject_id).result(timeout=300)
    assert again.subject_id == result.subject_id and again.summary.frames == result.summary.frames


def _subject_id(people: mocap_pb2.DetectPeopleResult, truth: tuple[np.ndarray, np.ndarray]) -> int:
    """The id of the track on the subject's hips at frame 0."""
    hips, height = truth
    return next(p.id for p in people.people
                if _centre(p, 0) is not None and np.linalg.norm(_centre(p, 0) - hips[0]) < 0.15 * height[0])


def test_a_capture_follows_the_tracks_detect_people_returned(client: keygrip.Client, crossing: DistractorClip,
                                                             truth: tuple[np.ndarray, np.ndarray],
                                                             tmp_path: Path) -> None:
    """With DetectPeople's tracks the capture takes the people by the ids the user was shown and does
    not look for them again (the detector need not find the same tracks twice)."""
    people = client.detect_people(crossing.path).result(timeout=300)
    tracks = mocap_pb2.PeopleTracks.FromString(client.download_bytes(people.tracks.id))
    assert [p.id for p in tracks.people] == [p.id for p in people.people]
    assert list(tracks.people[0].boxes) == list(people.people[0].boxes) and not tracks.people[0].thumbnail_png
    assert (tracks.start, tracks.end, list(tracks.scanned)) == (0, FRAMES, list(range(FRAMES)))
    subject_id = _subject_id(people, truth)
    result = client.capture_motion(crossing.path, subject=subject_id, people_tracks=people).result(timeout=300)
    assert result.subject_id == subject_id and result.summary.stage_seconds["people"] == 0
    # Ids come from the tracks given: the subject's track alone, renumbered 7, is captured as person 7,
    # on the subject.
    only = mocap_pb2.PeopleTracks()
    only.CopyFrom(tracks)
    del only.people[:]
    only.people.add().CopyFrom(next(p for p in tracks.people if p.id == subject_id))
    only.people[0].id = 7
    (tmp_path / "seven.keygrip-people").write_bytes(only.SerializeToString())
    seven = client.upload(tmp_path / "seven.keygrip-people")
    result = client.capture_motion(crossing.path, subject=7, people_tracks=seven.id, preview=True).result(timeout=300)
    assert result.subject_id == 7
    # The preview draws person 7's box in their colour, marked as captured.
    with av.open(io.BytesIO(client.download_bytes(result.preview.id))) as video:
        first = next(video.decode(video=0)).to_ndarray(format="rgb24")
    source = next(iter_frames(crossing.path, 0, 1, 960)).image
    near = [int((np.linalg.norm(image.astype(float) - person_colour(7), axis=-1) < 40).sum())
            for image in (first, source)]
    assert near[0] > near[1] + 100, near
    lm = np.load(io.BytesIO(client.download_bytes(result.landmarks.id)))
    hips, height = truth
    pose_hips = lm["pose_image"][:, [23, 24], :2].mean(axis=1) * [270, 480]
    present = lm["pose_present"]
    assert present.sum() >= 0.5 * FRAMES
    assert not (present & (np.linalg.norm(pose_hips - hips, axis=1) >= 0.15 * height)).any()
    # Everyone along the same tracks: each capture is one of DetectPeople's people, the subject among them.
    everyone = client.capture_motion(crossing.path, everyone=True, people_tracks=people.tracks.id).result(timeout=300)
    captured = {p.subject_id for p in everyone.people}
    assert subject_id in captured and captured <= {p.id for p in people.people}


def test_tracks_of_other_frames_or_footage_are_refused(client: keygrip.Client, crossing: DistractorClip,
                                                       tmp_path: Path) -> None:
    first = client.detect_people(crossing.path, end_frame=12).result(timeout=300)
    with pytest.raises(keygrip.JobFailed, match=r"the people tracks \(people_tracks\) cover frames 0-11 of "
                                                r"crossing\.mp4, the capture frames 0-29") as info:
        client.capture_motion(crossing.path, subject=1, people_tracks=first).result(timeout=300)
    assert info.value.code == "INVALID_ARGUMENT"
    other = tmp_path / "other.mp4"
    other.write_bytes(crossing.path.read_bytes() + b"\0")  # the same frames, another upload
    with pytest.raises(keygrip.JobFailed, match=r"were found in another input than other\.mp4") as info:
        client.capture_motion(other, subject=1, end_frame=12, people_tracks=first).result(timeout=300)
    assert info.value.code == "INVALID_ARGUMENT"
    (tmp_path / "notes.txt").write_text("not tracks")
    notes = client.upload(tmp_path / "notes.txt")
    with pytest.raises(keygrip.JobFailed, match=r"people_tracks|people tracks") as info:
        client.capture_motion(crossing.path, subject=1, end_frame=12, people_tracks=notes.id).result(timeout=300)
    assert info.value.code == "INVALID_ARGUMENT"
    # Refused at submit time: tracks that are not on the server, tracks without saying who to capture.
    with pytest.raises(keygrip.NotFound, match="does not exist on this server"):
        client.capture_motion(crossing.path, subject=1, people_tracks="0" * 64)
    with pytest.raises(keygrip.InvalidArgument, match="people_tracks are for a capture with a subject or everyone"):
        client.capture_motion(crossing.path, people_tracks=first)


def test_a_point_on_nobody_and_an_unknown_id_name_the_people(client: keygrip.Client,
                                                             crossing: DistractorClip) -> None:
    with pytest.raises(keygrip.JobFailed, match=r"no person at \(268, 2\) on frame 0 of crossing\.mp4: "
                                                r"the nearest are person \d+ at .* px away") as info:
        client.capture_motion(crossing.path, subject="268,2@0").result(timeout=300)
    assert info.value.code == "INVALID_ARGUMENT"
    with pytest.raises(keygrip.JobFailed, match=r"there is no person 31 in frames 0-29 of crossing\.mp4: "
                                                r"the people there are 1, 2") as info:
        client.capture_motion(crossing.path, subject=31).result(timeout=300)
    assert info.value.code == "INVALID_ARGUMENT"
    # Refused at submit time: a subject that names nobody at all.
    with pytest.raises(keygrip.InvalidArgument, match="subject track_id must be a person's id"):
        client.capture_motion(crossing.path, subject=mocap_pb2.Subject(track_id=0))
    with pytest.raises(keygrip.InvalidArgument, match=r"X,Y@FRAME"):
        subject("the tall one")


def test_a_subject_who_leaves_is_flagged_not_replaced(client: keygrip.Client, tmp_path: Path) -> None:
    """The subject slides out of the frame on frame 12 and stays out: their later frames are
    flagged MISSING, the result says so, and no other body fills them."""
    frames = []
    for frame in iter_frames(VIDEO, 0, 24, 480):
        image = np.zeros_like(frame.image)
        shift = int(max(0, frame.index - 4) * 40)  # out of a 270 px wide frame within 8 frames
        if shift < image.shape[1]:
            image[:, shift:] = frame.image[:, : image.shape[1] - shift]
        frames.append(image)
    clip = _write(frames, tmp_path / "leaves.mp4")
    result = client.capture_motion(clip, subject="auto").result(timeout=300)
    assert result.subject_id == 1, list(result.warnings)
    assert any("leaves the shot after frame" in w and "leaves.mp4" in w for w in result.warnings), (
        list(result.warnings))
    assert result.summary.missing_frames >= 8
    lm = np.load(io.BytesIO(client.download_bytes(result.landmarks.id)))
    assert not lm["pose_present"][14:].any()


def test_a_crowd_is_capped(client: keygrip.Client, crossing: DistractorClip) -> None:
    """Beyond max_people at once, people are left out and the result says so (through the server,
    with a cap below the people in the clip) ..."""
    result = client.detect_people(crossing.path, max_people=1).result(timeout=300)
    assert len(result.people) == 1
    assert any("more people at once than max_people (1) in crossing.mp4" in w for w in result.warnings)
    with pytest.raises(keygrip.InvalidArgument, match=r"max_people must lie in 1\.\.32"):
        client.detect_people(crossing.path, max_people=33)


@pytest.fixture(scope="module")
def crowd(tmp_path_factory: pytest.TempPathFactory) -> CrowdClip:
    """Twelve people, each 22 % of the frame's height, walking sideways in two rows."""
    return make_crowd_clip([VIDEO, VIDEO_CAM02], tmp_path_factory.mktemp("crowd") / "crowd.mp4", people=12,
                           frames=12, height=0.22)


def _who(crowd: CrowdClip, person: mocap_pb2.PersonTrack) -> set[int]:
    """The crowd's people a track was on: for each of its frames, the one whose middle is nearest
    its box's centre (within half their height, a third of the way to the next person; -1 where
    nobody is)."""
    who = set()
    for f in person.frames:
        gaps = np.linalg.norm(crowd.hips[f] - _centre(person, f), axis=1)
        who.add(int(gaps.argmin()) if gaps.min() < 0.5 * crowd.height else -1)
    return who


def test_a_crowd_of_small_people_is_found_and_capped(client: keygrip.Client, crowd: CrowdClip) -> None:
    """People far from the camera (a crowd of twelve, each under a quarter of the frame's height) are
    found with small_people, kept to max_people tracks with a warning, each track on one person; a
    capture along those tracks takes the person chosen."""
    result = client.detect_people(crowd.path, small_people=True).result(timeout=300)
    assert len(result.people) == DEFAULT_MAX_PEOPLE
    assert any("more people at once than max_people (10) in crowd.mp4" in w for w in result.warnings)
    who = [_who(crowd, p) for p in result.people]
    assert all(len(w) == 1 and -1 not in w for w in who), [sorted(w) for w in who]  # no track jumps to someone else
    assert len(set().union(*who)) == DEFAULT_MAX_PEOPLE  # ten different people
    person = max(result.people, key=lambda p: len(p.frames))
    (k,) = _who(crowd, person)
    capture = client.capture_motion(crowd.path, subject=person.id, people_tracks=result).result(timeout=300)
    assert capture.subject_id == person.id
    lm = np.load(io.BytesIO(client.download_bytes(capture.landmarks.id)))
    present = lm["pose_present"]
    hips = lm["pose_image"][:, [23, 24], :2].mean(axis=1) * [result.width, result.height]
    assert present.sum() >= 0.5 * len(present)
    assert (np.linalg.norm(hips - crowd.hips[:, k], axis=1)[present] < 0.25 * crowd.height).all()


def test_a_crowd_of_twelve_keeps_ten_tracks() -> None:
    """... and a crowd of twelve walking people keeps the default ten tracks, the twelve costing no more
    than ten (the linker is what bounds memory: a few numbers per tracked person and frame)."""
    linker = Linker(max_gap=30, max_people=DEFAULT_MAX_PEOPLE)
    rng = np.random.default_rng(0)
    colours = rng.dirichlet(np.ones(64), size=12).astype(np.float32)
    for frame in range(40):
        linker.step(frame, [Detection(100.0 + 150 * k + 2 * frame, 300.0, 100.0, 0.9, colours[k]) for k in range(12)])
    tracks = linker.finish(min_frames=3)
    assert len(tracks) == DEFAULT_MAX_PEOPLE and linker.ignored == 2 * 40
    assert all(t.frames == list(range(40)) for t in tracks)  # each kept person, one id, every frame


def _keygrip(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keygrip.cli", "--address", address, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_cli_lists_people_and_writes_thumbnails(shared_server, crossing: DistractorClip, tmp_path: Path) -> None:
    out = _keygrip(shared_server.address, "people", str(crossing.path), "--end", "12",
                   "--thumbnails", str(tmp_path / "thumbs"))
    assert out.returncode == 0, out.stderr
    assert "people in frames 0-11" in out.stdout and "person 1: frames 0-" in out.stdout
    assert (tmp_path / "thumbs" / "person_1.png").read_bytes()[:4] == b"\x89PNG"
    # What it prints to capture one of them takes that person along these tracks.
    tracks = re.search(r"--subject ID --people-tracks ([0-9a-f]{64}) ", out.stdout)
    assert tracks, out.stdout
    one = _keygrip(shared_server.address, "mocap", str(crossing.path), "--end", "12", "--subject", "1",
                   "--people-tracks", tracks.group(1), "--out", str(tmp_path / "one.bvh"))
    assert one.returncode == 0, one.stderr
    assert "subject: person 1" in one.stdout and (tmp_path / "one.bvh").read_text().startswith("HIERARCHY")


def test_cli_captures_everyone_into_a_file_each(shared_server, crossing: DistractorClip, tmp_path: Path) -> None:
    # The detector sees the copy on few frames (it crosses in front of the subject): whether the pose
    # model then finds them in their box differs between runs, so a person is either written to their
    # own file or named as not captured, never dropped without a word.
    out = _keygrip(shared_server.address, "mocap", str(crossing.path), "--people", "all",
                   "--out", str(tmp_path / "take.bvh"))
    assert out.returncode == 0, out.stderr
    written = sorted(p.name for p in tmp_path.glob("take_person*.bvh"))
    not_captured = re.findall(r"warning: person (\d+) \(seen on \d+ of \d+ frames\) was not captured", out.stdout)
    assert "take_person1.bvh" in written and len(written) + len(not_captured) >= 2, (written, out.stdout)
    assert not {f"take_person{i}.bvh" for i in not_captured} & set(written)
    assert all((tmp_path / name).read_text().startswith("HIERARCHY") for name in written)
    assert "person 1: " in out.stdout
    refused = _keygrip(shared_server.address, "mocap", str(crossing.path), "--people", "all", "--subject", "1",
                       "--out", str(tmp_path / "x.bvh"))
    assert refused.returncode == 1 and "subject and everyone exclude each other" in refused.stderr


def test_sdk_capture_options_carry_the_subject(client: keygrip.Client, crossing: DistractorClip) -> None:
    """What a host's Plan sends (keygrip.animate.CaptureOptions): a subject, or none as before."""
    chosen = client.capture_motion(crossing.path, **CaptureOptions(subject="auto", end_frame=8).request_fields())
    assert chosen.result(timeout=300).subject_id >= 1
    plain = client.capture_motion(crossing.path, **CaptureOptions(end_frame=8).request_fields())
    result = plain.result(timeout=300)
    assert result.subject_id == 0 and "people" not in result.summary.stage_seconds


def test_a_long_clip_of_crossings_keeps_two_ids() -> None:
    """Two people crossing each other 20 times over a long clip, one of them also hidden for a moment
    every second: hundreds of stretches, stitched back into the two people (stitching weighs only
    starts near each end, so a long clip stays linear)."""
    fps, frames = 30.0, 2400
    linker = Linker(max_gap=30, max_people=DEFAULT_MAX_PEOPLE, fps=fps)
    rng = np.random.default_rng(1)
    colours = rng.dirichlet(np.ones(64), size=2).astype(np.float32)
    t = np.arange(frames) / fps
    xs = np.stack([640 + 300 * np.sin(2 * np.pi * t / 8), 640 - 300 * np.sin(2 * np.pi * t / 8)], axis=1)
    for f in range(frames):
        a, b = xs[f]
        if abs(a - b) < 60:  # one body for both, between them, with both people's colours
            seen = [Detection(0.5 * (a + b), 360.0, 100.0, 0.9, 0.5 * (colours[0] + colours[1]))]
        else:
            hidden = f % 30 < 10 and abs(a - b) > 200  # person 0 behind something for a third of a second
            seen = [Detection(x + rng.normal(0, 3), 360.0, 100.0, 0.9, colours[k])
                    for k, x in enumerate((a, b)) if not (k == 0 and hidden)]
        linker.step(f, seen)
    stretches = sum(len({s for s in t.stretch if s >= 0}) for t in linker.live + linker.closed)
    assert stretches >= 80
    tracks = linker.finish(min_frames=30)
    assert len(tracks) == 2
    for track in tracks:  # each id on one person: the colours of its sightings apart are one person's
        apart = [d.colour for d, amb in zip(track.detections, track.ambiguous, strict=True) if not amb]
        owner = [any(c is col or np.array_equal(c, col) for c in apart) for col in colours]
        assert sum(owner) == 1, owner
        assert track.frames[-1] - track.frames[0] > 0.9 * frames


def test_a_limb_mixed_with_someone_else_is_bridged_not_kept() -> None:
    """A pose whose hips stay on the subject while its left arm is the other person's (MediaPipe's
    visibility of that arm falls) is kept with the arm bridged from the frames around; the same fall
    with nobody near (the subject's own arm behind their back) is left alone."""
    frames = np.arange(60)
    subject_track = Track(1, frames=list(frames), detections=[Detection(300.0, 300.0, 100.0, 0.9, np.ones(4))
                                                              for _ in frames])
    # The other person walks past: within reach of the subject on frames 5-20 only.
    passer_x = 150.0 + 20.0 * frames
    other = Track(2, frames=list(frames), detections=[Detection(float(x), 300.0, 100.0, 0.9, np.ones(4))
                                                      for x in passer_x])
    people = People(tracks=[subject_track, other], frames=frames, start=0, end=60, image_size=(640, 480),
                    fps=30.0, max_gap=30, name="two.mp4")
    rng = np.random.default_rng(0)
    image = rng.uniform(0.3, 0.7, (60, 33, 3)).astype(np.float32)
    image[:, [23, 24], :2] = (300 / 640, 300 / 480)  # the hips on the subject
    world = rng.normal(0, 0.3, (60, 33, 3)).astype(np.float32)
    visibility = np.full((60, 33), 0.95, np.float32)
    visibility[10:16, [13, 15]] = 0.4  # the left arm while the passer is near ...
    visibility[40:46, [13, 15]] = 0.4  # ... and while nobody is
    lm = Landmarks(times=frames / 30.0, frame_indices=frames, image_size=(640, 480), fps=30.0, pose_image=image,
                   pose_world=world, pose_visibility=visibility, pose_present=np.ones(60, bool))
    out, warnings = keep_subject(lm, people, subject_track)
    arm = list(LIMBS["left arm"])
    assert out.pose_present.all()
    w = (np.arange(10, 16) - 9) / 7.0
    bridged = (1 - w)[:, None, None] * world[9, arm] + w[:, None, None] * world[16, arm]
    np.testing.assert_allclose(out.pose_world[10:16, arm], bridged, atol=1e-6)
    assert (out.pose_visibility[10:16, arm] == 0).all()
    rest = np.ones((60, 33), bool)
    rest[10:16, arm] = False
    np.testing.assert_array_equal(out.pose_world[rest], world[rest])  # nothing else touched, frames 40-45 too
    np.testing.assert_array_equal(out.pose_visibility[rest], visibility[rest])
    assert any("partly hidden by someone else on 6 of 60 frames of two.mp4" in m for m in warnings), warnings


def _point(truth: tuple[np.ndarray, np.ndarray]) -> mocap_pb2.Subject:
    x, y = truth[0][0]
    return mocap_pb2.Subject(point=mocap_pb2.SubjectPoint(x=float(x), y=float(y), frame=0))


def _on_final_boxes(crossing: DistractorClip, people: People, track: Track) -> Landmarks:
    """The pose pass as the sequential path runs it: on the final boxes, after the people pass."""
    return detect(crossing.path, workers=1, subject=mask_boxes(people, track, np.arange(people.start, people.end)),
                  ctx=NullContext())


def _same(a: Landmarks, b: Landmarks) -> bool:
    return all(np.array_equal(getattr(a, k), getattr(b, k), equal_nan=True)
               for k in ("frame_indices", "pose_image", "pose_world", "pose_visibility", "pose_present"))


def test_side_by_side_passes_give_the_sequential_capture(crossing: DistractorClip,
                                                         truth: tuple[np.ndarray, np.ndarray]) -> None:
    """The pose pass running beside the people pass on provisional boxes gives exactly the landmarks
    of the pose pass on the final boxes, and the people of find_people alone."""
    subject_point = _point(truth)
    people, track, landmarks, _ = capture_subject(crossing.path, subject_point, stride=3, discover_every=15,
                                                  ctx=NullContext())
    assert _same(landmarks, _on_final_boxes(crossing, people, track))
    alone = find_people(crossing.path, stride=3, discover_every=15, ctx=NullContext())
    assert choose(alone, subject_point).id == track.id


def _standing(frames: range, x: float) -> People:
    """One person standing at (x, 300), 100 px radius, seen on `frames` of a 40-frame clip."""
    track = Track(1, frames=list(frames), detections=[Detection(x, 300.0, 100.0, 0.9, np.ones(4)) for _ in frames])
    return People(tracks=[track], frames=np.arange(0, 40, 3), start=0, end=40, image_size=(640, 480), fps=30.0,
                  max_gap=30)


def test_a_box_read_that_the_people_pass_then_changes_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pose pass reads the boxes handed over so far; when the people pass ends with other boxes
    for frames already read (its stitching changed its mind), reading on raises StaleBox (the pose
    pass then runs again on the final boxes), and so does a later provisional look that shows it."""
    monkeypatch.setattr(subject_pass, "UPDATE_SHARE", float("inf"))  # every look updates, however quick
    chosen = mocap_pb2.Subject(point=mocap_pb2.SubjectPoint(x=300, y=300, frame=0))
    so_far = _standing(range(0, 19, 3), 300.0)
    ready = so_far.tracks[0].frames[-subject_pass.READY_SIGHTINGS]  # three sightings after: frames 0-11

    def live() -> subject_pass.LiveBoxes:
        boxes = subject_pass.LiveBoxes(chosen, np.arange(0, 40), NullContext())
        boxes.offer(18, lambda: so_far)
        assert boxes[0] == mask_boxes(so_far, so_far.tracks[0], np.arange(1))[0]
        return boxes

    same = live()
    same.end(_standing(range(0, 40, 3), 300.0))  # the same person, seen to the end
    assert same[ready] and same.matches_final()

    moved = live()
    moved.end(_standing(range(0, 40, 3), 310.0))
    with pytest.raises(subject_pass.StaleBox):
        moved[1]
    assert not moved.matches_final()

    early = live()
    early.offer(24, lambda: _standing(range(0, 25, 3), 310.0))
    with pytest.raises(subject_pass.StaleBox):
        early[1]


def test_a_cancelled_subject_capture_stops_both_passes(crossing: DistractorClip,
                                                       truth: tuple[np.ndarray, np.ndarray]) -> None:
    ctx = CancelAfter(2)  # polled every 0.1 s: cancelled early, with the people pass under way
    with pytest.raises(JobCancelled):
        capture_subject(crossing.path, _point(truth), stride=3, discover_every=15, ctx=ctx)
    assert ctx.calls == 3  # it stopped at the first check that raised
    assert not any(t.name == "keygrip-people" for t in threading.enumerate())  # the people pass ended too
    assert all(value < FRAMES for stage, value, _, _ in ctx.events if stage == "inference")


def test_everyone_side_by_side_gives_each_person_their_own_pass(crossing: DistractorClip) -> None:
    """Capturing everyone shares the processes out among the people: each person's landmarks are
    those of their own pass alone, and a cancel ends every process."""
    people = find_people(crossing.path, ctx=NullContext())
    frames = np.arange(people.start, people.end)
    boxes = {t.id: mask_boxes(people, t, frames) for t in people.tracks}
    assert len(boxes) >= 2
    ctx = NullContext()
    together = detect_each(crossing.path, boxes, workers=2, ctx=ctx)  # two people side by side
    assert list(together) == list(boxes) and multiprocessing.active_children() == []
    for i, subject_boxes in boxes.items():
        try:
            alone = detect(crossing.path, subject=subject_boxes, workers=1, ctx=NullContext())
        except FailedPrecondition:  # the copy, barely seen, may give the pose model nobody
            assert isinstance(together[i], FailedPrecondition)
            continue
        landmarks = together[i]
        assert isinstance(landmarks, Landmarks)
        np.testing.assert_array_equal(landmarks.frame_indices, alone.frame_indices)
        np.testing.assert_array_equal(landmarks.pose_image, alone.pose_image)
        np.testing.assert_array_equal(landmarks.pose_present, alone.pose_present)
    done = [(value, maximum) for stage, value, maximum, _ in ctx.events if stage == "inference"]
    assert done[-1] == (FRAMES * len(boxes), FRAMES * len(boxes))  # counted over everyone
    cancelled = CancelAfter(2)
    with pytest.raises(JobCancelled):
        detect_each(crossing.path, boxes, workers=2, ctx=cancelled)
    assert multiprocessing.active_children() == []


def test_the_preview_draws_each_person_in_their_colour_the_captured_one_thicker() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    draw_people(image, [(1, (20.0, 40.0, 80.0, 160.0)), (2, (150.0, 40.0, 210.0, 160.0))], subject_id=2)
    one, two = (np.all(image == person_colour(i), axis=-1) for i in (1, 2))
    assert one[100, 20] and two[100, 150]  # on each box's left edge
    assert not one[100, 50] and not two[100, 180]  # nothing drawn inside
    assert two[100, 150:160].sum() > one[100, 20:30].sum()  # the captured person's line is thicker
    assert one[:38].any() and two[:38].any()  # each labelled above their box


def test_a_box_drawn_around_the_subject_chooses_them(crossing: DistractorClip,
                                                     truth: tuple[np.ndarray, np.ndarray]) -> None:
    people = find_people(crossing.path, ctx=NullContext())
    hips, height = truth
    (x, y), h = hips[0], height[0]
    # Drawn loosely around the subject (head to feet, arms' width), as an artist would drag it.
    drawn = subject(f"{x - 0.3 * h:.0f},{y - 0.6 * h:.0f},{x + 0.3 * h:.0f},{y + 0.55 * h:.0f}@0")
    assert drawn.WhichOneof("choice") == "box"
    assert choose(people, drawn).id == choose(people, _point(truth)).id
    with pytest.raises(InvalidInput, match=r"no person in the box \(0, 0, 40, 30\) on frame 0 of crossing\.mp4: "
                                           r"the nearest are person \d+ at .* px away"):
        choose(people, subject("0,0,40,30@0"))
    with pytest.raises(InvalidInput, match=r"subject frame 99 is outside the captured frames 0-29"):
        choose(people, subject("0,0,40,30@99"))
    with pytest.raises(InvalidInput, match="must be left, top, right, bottom"):
        check(MocapOptions(subject=subject("40,30,0,0@0")))
