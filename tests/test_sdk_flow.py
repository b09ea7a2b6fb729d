"""The SDK's host-neutral flow (keygrip.session, keygrip.animate) against the real server, in plain
Python: no bpy, no nuke. The host here is this test: its "main thread" is the test's own thread,
which drains what the worker threads post, as Blender's timer or Nuke's executeInMainThread would.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import keygrip
from keygrip import animate, humanoid
from keygrip.animate import CaptureOptions, Plan, Retargeted, Skeleton, WriteSummary
from keygrip.client import message_class
from keygrip.rigs import RigDescription
from keygrip.session import Main, ServerSettings, Session, Step, Worker, WorkerContext, connector
from keygrip.v1 import media_pb2

DATA = Path(__file__).parent / "data"
VIDEO = DATA / "video" / "pose2sim_cam01.mp4"
BVH = DATA / "bvh" / "cmu_131_01_walk.bvh"


class HostMainThread:
    """A host's main-thread scheduler (the MainThread protocol): post() from any thread; the host's
    own loop runs what was posted. Records which threads posted and ran, to check the hand-over."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Callable[[], None]] = queue.Queue()
        self.ident = threading.get_ident()
        self.posted_from: set[int] = set()

    def post(self, fn: Callable[[], None]) -> None:
        self.posted_from.add(threading.get_ident())
        self.queue.put(fn)

    def run_until(self, done: Callable[[], bool], timeout: float) -> None:
        assert threading.get_ident() == self.ident, "the host loop runs on the host's main thread"
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"not done within {timeout} s")
            with contextlib.suppress(queue.Empty):
                self.queue.get(timeout=0.05)()


def t_pose_rig(name: str = "Target") -> RigDescription:
    """The canonical body joints in a T-pose as a host would describe its rig: identity rest frames
    at each joint (Y-up metres)."""
    offsets = {"hips": (0, 0.95, 0), "spine": (0, 0.1, 0), "chest": (0, 0.12, 0), "upperChest": (0, 0.12, 0),
               "neck": (0, 0.12, 0), "head": (0, 0.1, 0), "leftShoulder": (0.04, 0.09, 0),
               "leftUpperArm": (0.12, 0, 0), "leftLowerArm": (0.27, 0, 0), "leftHand": (0.25, 0, 0),
               "leftUpperLeg": (0.09, -0.06, 0), "leftLowerLeg": (0, -0.42, 0), "leftFoot": (0, -0.41, 0),
               "leftToes": (0, -0.06, 0.13)}
    joints = humanoid.hierarchy(with_fingers=False)
    names = [n for n, _ in joints]
    parents = [names.index(p) if p else -1 for _, p in joints]
    heads = np.zeros((len(names), 3))
    for j, (n, p) in enumerate(zip(names, parents, strict=True)):
        x, y, z = offsets[n.replace("right", "left")]
        heads[j] = np.array([-x if n.startswith("right") else x, y, z]) + (heads[p] if p >= 0 else 0.0)
    rest = np.tile(np.eye(4), (len(names), 1, 1))
    rest[:, :3, 3] = heads
    return RigDescription(name=name, bone_names=names, parents=parents, rest_matrices=rest, heads=heads)


def describe_from_skeleton(skeleton: Skeleton) -> RigDescription:
    """What a host without its own armature would retarget onto: the skeleton itself at rest."""
    heads = np.zeros_like(skeleton.offsets)
    for j, p in enumerate(skeleton.parents):
        heads[j] = skeleton.offsets[j] + (heads[p] if p >= 0 else 0)
    rest = np.tile(np.eye(4), (len(heads), 1, 1))
    rest[:, :3, 3] = heads
    return RigDescription(name="Canonical", bone_names=list(skeleton.joint_names), parents=list(skeleton.parents),
                          rest_matrices=rest, heads=heads)


class Host:
    """The scene side of a host: what it was asked to describe and write, and on which thread."""

    def __init__(self) -> None:
        self.described: list[Skeleton] = []
        self.written: list[Retargeted] = []
        self.threads: set[int] = set()

    def describe(self, skeleton: Skeleton) -> RigDescription:
        self.threads.add(threading.get_ident())
        self.described.append(skeleton)
        return describe_from_skeleton(skeleton)

    def write(self, done: Retargeted) -> WriteSummary:
        self.threads.add(threading.get_ident())
        self.written.append(done)
        return WriteSummary(target=done.rig.name, animation=f"anim {done.job_id[:8]}",
                            warnings=done.warnings)


def run(session: Session, main: HostMainThread, timeout: float = 240.0) -> Session:
    session.start(main)
    main.run_until(lambda: not session.busy, timeout)
    return session


@pytest.fixture(scope="module")
def captured(shared_server):
    """One real capture onto a new (canonical) rig, run the way a host runs it."""
    host, main = Host(), HostMainThread()
    plan = Plan(source="video", video=str(VIDEO), target="NEW", capture=CaptureOptions(smoothing=0.5))
    stages: list[str] = []
    session = Session(plan.title, animate.steps(plan, describe_new_rig=host.describe, write=host.write),
                      connector(ServerSettings(shared_server.address)),
                      on_progress=lambda s: stages.append(s.progress.stage))
    run(session, main)
    return session, host, main, stages, plan


def test_capture_then_retarget_through_a_session(captured, shared_server, client) -> None:
    session, host, main, stages, plan = captured
    assert session.state == "succeeded", session.error
    assert plan.title == "pose2sim_cam01.mp4 onto a new armature"
    # Scene work ran on the host's main thread only; the workers only posted to it.
    assert host.threads == {main.ident}
    assert main.posted_from and main.ident not in main.posted_from
    assert session.server_info is not None and session.server_info.version
    assert session.address == shared_server.address
    assert any(s.startswith("uploading video") for s in stages)
    assert any(s.startswith("capture") for s in stages) and any(s.startswith("retarget") for s in stages)

    (skeleton,) = host.described
    assert skeleton.joint_names[0] == "hips" and skeleton.parents[0] == -1
    assert skeleton.offsets.shape == (len(skeleton.joint_names), 3)
    heads = describe_from_skeleton(skeleton).heads
    assert heads is not None
    head, hips, foot = (heads[skeleton.joint_names.index(n), 1] for n in ("head", "hips", "leftFoot"))
    assert head > hips + 0.3 and hips > foot + 0.5, (head, hips, foot)   # standing, Y up, metres

    (done,) = host.written
    summary = session.value
    assert isinstance(summary, WriteSummary) and summary.target == "Canonical"
    anim = done.animation
    frames, bones = len(anim.times), len(anim.bone_names)
    assert frames == 100 and anim.fps == pytest.approx(60.0)
    assert anim.rotations.shape == (frames, bones, 4)
    np.testing.assert_allclose(np.linalg.norm(anim.rotations, axis=-1), 1.0, atol=1e-3)
    assert anim.root_position.shape == (frames, 3) and anim.shape_key_weights is None
    assert done.hips_bone == "hips" and set(anim.bone_names) <= set(done.rig.bone_names)
    assert session.job_ids == [done.motion.capture_job_id, done.job_id]

    record = done.provenance(plan).as_dict()
    assert record["capture_job_id"] == done.motion.capture_job_id and record["retarget_job_id"] == done.job_id
    assert record["source"] == str(VIDEO) and record["server_address"] == shared_server.address
    assert record["options"]["capture"]["smoothing"] == 0.5 and record["options"]["root_motion"] == "HIPS"
    # The artifacts named in the provenance are the job's, on the server.
    assert client.stat(record["bvh_artifact_id"]).size > 0
    assert client.get_job(done.job_id).result().animation.id == record["animation_artifact_id"]


def test_reuse_a_capture_onto_a_rig_with_a_bone_map(captured, shared_server) -> None:
    first = captured[0].value
    capture_job = captured[1].written[0].motion.capture_job_id
    assert isinstance(first, WriteSummary)
    host, main = Host(), HostMainThread()
    rig = t_pose_rig("Rig")
    bone_map = {name: name for name in rig.bone_names if name != "head"}   # the artist left the head out
    plan = Plan(source="capture_job", capture_job_id=capture_job, target="SELECTED", rig=rig, bone_map=bone_map,
                root_motion="IN_PLACE")
    session = run(Session(plan.title, animate.steps(plan, describe_new_rig=host.describe, write=host.write),
                          connector(ServerSettings(shared_server.address))), main)
    assert session.state == "succeeded", session.error
    assert plan.title == f"capture {capture_job[:8]} onto Rig" and host.described == []
    (done,) = host.written
    assert done.motion.capture_job_id == capture_job and done.motion.skeleton is None
    mapped = {m.bone: m.role for m in done.result.bone_map.mappings}
    assert "head" not in mapped and mapped["neck"] == "neck" and "head" in done.result.bone_map.missing_roles
    head = done.animation.rotations[:, done.animation.bone_names.index("head")]
    np.testing.assert_allclose(head, np.tile([0.0, 0.0, 0.0, 1.0], (len(head), 1)), atol=1e-6)   # left at rest
    # In place: the hips do not travel over the ground.
    travel = np.ptp(done.animation.root_position[:, [0, 2]], axis=0)
    assert np.all(travel < 0.05), travel
    assert session.job_ids == [capture_job, done.job_id]   # the capture was watched, not run again


def test_bvh_onto_a_rig(shared_server) -> None:
    host, main = Host(), HostMainThread()
    plan = Plan(source="bvh", bvh_path=str(BVH), target="SELECTED", rig=t_pose_rig())
    session = run(Session(plan.title, animate.steps(plan, describe_new_rig=host.describe, write=host.write),
                          connector(ServerSettings(shared_server.address))), main)
    assert session.state == "succeeded", session.error
    (done,) = host.written
    assert done.motion.bvh_artifact_id and not done.motion.capture_job_id
    assert done.provenance(plan).capture_job_id == "" and done.provenance(plan).source == str(BVH)
    hips = done.animation.root_position
    assert np.linalg.norm(hips[-1] - hips[0]) > 2.0   # CMU 131_01: start, walk, stop


def test_cancel_mid_capture_cancels_the_server_job(shared_server, client) -> None:
    host, main = Host(), HostMainThread()
    plan = Plan(source="video", video=str(VIDEO), target="NEW")
    session = Session(plan.title, animate.steps(plan, describe_new_rig=host.describe, write=host.write),
                      connector(ServerSettings(shared_server.address)))
    session.start(main)
    # Cancel once the server works on the capture (what Esc or a Cancel button does).
    main.run_until(lambda: not session.busy or session.progress.stage.startswith("capture"), 120)
    assert session.busy, (session.state, session.error)
    session.cancel()
    main.run_until(lambda: not session.busy, 60)
    assert session.state == "cancelled" and session.error == "cancelled"
    assert host.described == [] and host.written == []   # nothing reached the scene
    job = client.get_job(session.job_ids[-1]).wait(timeout=60)
    assert job.state == "cancelled"


def test_server_down_gives_the_artist_a_fix(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening, for the whole test: nothing answers there
        port = s.getsockname()[1]
        host, main = Host(), HostMainThread()
        plan = Plan(source="video", video=str(VIDEO))
        session = run(Session(plan.title, animate.steps(plan, describe_new_rig=host.describe, write=host.write),
                              connector(ServerSettings(f"127.0.0.1:{port}"))), main, timeout=60)
    assert session.state == "failed" and host.written == []
    assert session.error.startswith(f"server not reachable at 127.0.0.1:{port}")
    assert "python -m inference_server" in session.error and "Start a local server" in session.error
    assert session.error == keygrip.user_message(keygrip.ServerUnavailable("x"), f"127.0.0.1:{port}")


def test_a_failing_main_step_fails_the_session_with_its_message(shared_server) -> None:
    main = HostMainThread()
    finished: list[str] = []

    def probe(ctx: WorkerContext, _: object) -> media_pb2.ProbeMediaResult:
        return ctx.run_job(ctx.client.probe(VIDEO), "probe")

    def scene_is_gone(result: media_pb2.ProbeMediaResult) -> None:
        assert result.frame_count == 100
        raise ValueError("the armature 'Rig' is gone; select a rig and run again")

    steps: list[Step] = [Worker(probe), Main(scene_is_gone)]
    session = run(Session("probe", steps, connector(ServerSettings(shared_server.address)),
                          on_finish=lambda s: finished.append(s.state)), main, timeout=120)
    assert session.state == "failed" and finished == ["failed"]
    assert session.error == "ValueError: the armature 'Rig' is gone; select a rig and run again"


def test_plan_checks_enum_names_and_results_are_found_by_type_name(client) -> None:
    assert Plan(source="bvh", root_motion="ROOT_BONE").root_motion_name == "ROOT_MOTION_ROOT_BONE"
    with pytest.raises(ValueError, match="unknown root motion 'SIDEWAYS'"):
        Plan(source="bvh", root_motion="SIDEWAYS").root_motion_name  # noqa: B018
    assert message_class("keygrip.v1.ProbeMediaResult") is media_pb2.ProbeMediaResult
    with pytest.raises(keygrip.KeygripError, match="does not know the message type"):
        message_class("keygrip.v9.Hologram")
    result = client.probe(VIDEO).result(timeout=60)
    assert isinstance(result, media_pb2.ProbeMediaResult) and result.frame_count == 100


def test_capture_warnings_reach_the_host(shared_server) -> None:
    """A 3-frame capture skips smoothing and foot locking; the host's summary says so."""
    host, main = Host(), HostMainThread()
    plan = Plan(source="video", video=str(VIDEO), target="NEW",
                capture=CaptureOptions(smoothing=0.5, start_frame=10, end_frame=13))
    session = run(Session(plan.title, animate.steps(plan, describe_new_rig=host.describe, write=host.write),
                          connector(ServerSettings(shared_server.address))), main)
    assert session.state == "succeeded", session.error
    (done,) = host.written
    assert done.motion.capture is not None and done.motion.capture.summary.frames == 3
    assert any("smoothing skipped" in w for w in done.motion.capture.warnings)
    assert any("smoothing skipped" in w for w in session.value.warnings)
    assert len(session.value.warnings) == len(set(session.value.warnings))


def test_a_multi_camera_plan_says_what_is_missing_before_anything_is_sent(tmp_path: Path) -> None:
    """animate.Cameras.check and videos_in_folder: what the Blender panel's Cameras source (and a TD's
    script) is told before any upload."""
    calib = DATA / "pose2sim" / "Calib.qca.txt"
    cam02 = DATA / "video" / "pose2sim_cam02_vp9_audio.mp4"
    with pytest.raises(ValueError, match=r"two at least \(1 given\)"):
        animate.Cameras([str(VIDEO)], str(calib)).check()
    with pytest.raises(ValueError, match="the camera video .*gone.mp4 does not exist"):
        animate.Cameras([str(VIDEO), str(tmp_path / "gone.mp4")], str(calib)).check()
    with pytest.raises(ValueError, match=r"the calibration \(none\) does not exist"):
        animate.Cameras([str(VIDEO), str(cam02)], "").check()
    with pytest.raises(ValueError, match="3 frame offsets for 2 videos"):
        animate.Cameras([str(VIDEO), str(cam02)], str(calib), [0, 0, 4]).check()
    animate.Cameras([str(VIDEO), str(cam02)], str(calib), [0, 3]).check()
    (tmp_path / "b.MOV").write_bytes(b"")
    with pytest.raises(ValueError, match="holds 1 video"):
        animate.videos_in_folder(tmp_path)
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "c.txt").write_bytes(b"")
    assert [Path(v).name for v in animate.videos_in_folder(tmp_path)] == ["a.mp4", "b.MOV"]
    plan = Plan(source="cameras", cameras=animate.Cameras([str(VIDEO), str(cam02)], str(calib)))
    assert plan.title == "2 cameras (Calib.qca.txt) onto a new armature" and plan.stem == VIDEO.stem
    assert plan.options_record()["cameras"] == {"videos": [str(VIDEO), str(cam02)], "calibration": str(calib),
                                                "frame_offsets": None, "floor": "auto"}
