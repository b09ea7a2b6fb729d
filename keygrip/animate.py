"""A character animated from a video or a BVH, for every host: capture the video (or reuse an earlier
capture, or upload the BVH), retarget the motion onto the host's rig, and hand typed results to the
host, whose only job left is writing them into its scene.

    plan = Plan(source="video", video="take.mp4", target="NEW")
    plan = Plan(source="cameras", cameras=Cameras(["cam1.mp4", "cam2.mp4"], "calib.toml"))  # several views
    chain = animate.steps(plan, describe_new_rig=host_describe, write=host_write)
    Session(plan.title, chain, connector(settings)).start(main_thread)

The chain is fetch_motion (worker thread) -> the target's RigDescription (main thread: the host
describes the armature it will build from the captured skeleton, or the plan carries the artist's
rig) -> retarget (worker thread) -> write (main thread: the host's scene writing, one undo step).
Nothing reaches the scene before the last step, so a cancel or a failure leaves it as it was.

Conventions are the protocol's: seconds, right-handed Y-up metres, quaternions (x, y, z, w).
No host API is imported here; numpy is imported on first use.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from keygrip.errors import JobFailed
from keygrip.projection import VideoCamera
from keygrip.rigs import RigDescription, bone_map_from_dict
from keygrip.session import Main, Step, Worker, WorkerContext
from keygrip.tensors import from_tensor
from keygrip.v1 import animation_pb2, common_pb2, mocap_pb2, motion_pb2, multicam_pb2

if TYPE_CHECKING:
    import numpy as np

    from keygrip.client import Client, Job

# Where the motion comes from: a video to capture, calibrated videos of one take ("cameras":
# Plan.cameras), an earlier capture job, or a motion file ("bvh": Plan.bvh_path, a .bvh or a MotionClip
# file from `keygrip mocap --clip`).
SourceKind = Literal["video", "cameras", "capture_job", "bvh"]
# What it animates: a new armature with the canonical skeleton, or the artist's rig (Plan.rig).
TargetKind = Literal["NEW", "SELECTED"]
CAPTURE_JOB_TYPE = "motion_capture"
MULTIVIEW_JOB_TYPE = "multiview_capture"
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mts")


@dataclass
class CaptureOptions:
    """The capture's options (CaptureMotionRequest fields). start_frame/end_frame: the source's frame
    numbers (0-based for a video, on-disk numbers for an image sequence), end exclusive; end 0: to the end.
    subject: who to capture among several people, as keygrip.people.subject reads it ("2", "640,360@12",
    "auto"); "": whoever MediaPipe finds first. people_tracks: with a subject, the artifact id of
    detect_people's tracks over the same video and frames (its result's tracks.id): the capture follows
    them instead of looking for the people again; "": it looks."""

    hands: bool = False
    face: bool = False
    smoothing: float = 0.5
    foot_lock: bool = True
    start_frame: int = 0
    end_frame: int = 0
    preview: bool = False
    subject: str = ""
    people_tracks: str = ""

    def request_fields(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Cameras:
    """A multi-camera take: one video per calibrated camera (two at least) and the calibration
    (Pose2Sim/OpenCV TOML, Qualisys .qca.txt or keygrip JSON). frame_offsets: per video, video v's
    frame t + offsets[v] shows the first video's t; None: from timecodes or the person's motion.
    floor: where the world's floor and up axis come from (client.FLOOR_SOURCES: "auto",
    "calibration", "feet")."""

    videos: list[str]
    calibration: str
    frame_offsets: list[int] | None = None
    floor: str = "auto"

    def check(self) -> None:
        """ValueError naming what is missing, before anything is uploaded."""
        if len(self.videos) < 2:
            raise ValueError(f"a multi-camera capture needs one video per calibrated camera, two at least "
                             f"({len(self.videos)} given): add the cameras' videos")
        for video in self.videos:
            if not Path(video).is_file():
                raise ValueError(f"the camera video {video} does not exist: pick it again, or remove it")
        if not self.calibration or not Path(self.calibration).is_file():
            raise ValueError(f"the calibration {self.calibration or '(none)'} does not exist: pick the cameras' "
                             "calibration file (TOML, .qca.txt or keygrip JSON)")
        if self.frame_offsets is not None and len(self.frame_offsets) != len(self.videos):
            raise ValueError(f"{len(self.frame_offsets)} frame offsets for {len(self.videos)} videos: give one per "
                             "video, or none to synchronise them from the footage")


def videos_in_folder(folder: str | Path) -> list[str]:
    """The videos of a multi-camera take in one folder, sorted by name; ValueError with fewer than two."""
    found = sorted(str(p) for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if len(found) < 2:
        raise ValueError(f"the folder {folder} holds {len(found)} video(s); a multi-camera capture needs one "
                         "video per calibrated camera (two at least)")
    return found


@dataclass
class Plan:
    """Everything a capture-and-retarget needs, snapshotted from the host's UI when the artist clicks.

    root_motion: an animation_pb2.RootMotion name without its prefix ("HIPS", "ROOT_BONE", ...).
    rig: the SELECTED target's description; bone_map: the artist's {bone: role} (empty: the server
    maps the bones itself).
    rig_file: the character file (.glb, .vrm, .fbx) the SELECTED armature came from, if the host knows
    it: with no bone_map, the roles that file declares (VRM humanoid, glTF extras, a preset saved
    beside it) go with the request as given, and the server guesses only the rest.
    cameras: the "cameras" source's videos and calibration (capture's subject and preview are a single
    view's and are not sent).
    """

    source: SourceKind
    video: str = ""
    cameras: Cameras | None = None
    capture_job_id: str = ""
    bvh_path: str = ""
    capture: CaptureOptions = field(default_factory=CaptureOptions)
    root_motion: str = "HIPS"
    foot_lock: bool = True
    target: TargetKind = "NEW"
    rig: RigDescription | None = None
    bone_map: dict[str, str] = field(default_factory=dict)
    rig_file: str = ""

    @property
    def person(self) -> str:
        """What names the person a capture takes by id (one of several in the shot), as " person 2"; "" else."""
        return f" person {self.capture.subject}" if self.source == "video" and self.capture.subject.isdigit() else ""

    @property
    def title(self) -> str:
        what = (Path(self.video or self.bvh_path).name or f"capture {self.capture_job_id[:8]}") + self.person
        if self.source == "cameras" and self.cameras is not None:
            what = f"{len(self.cameras.videos)} cameras ({Path(self.cameras.calibration).name})"
        onto = self.rig.name if self.target == "SELECTED" and self.rig is not None else "a new armature"
        return f"{what} onto {onto}"

    @property
    def stem(self) -> str:
        """A short name for what is created: the video's or BVH's file name without suffix (a
        multi-camera take: its first video's)."""
        first = self.cameras.videos[0] if self.source == "cameras" and self.cameras and self.cameras.videos else ""
        return (Path(self.video or self.bvh_path or first).stem or "capture") + self.person

    @property
    def videos(self) -> list[str]:
        """Every video of the plan on this machine: its video, its cameras' (where a host finds the
        videos of the clip's cameras, also when it retargets their earlier capture)."""
        found = [self.video] if self.video else []
        return found + [v for v in (self.cameras.videos if self.cameras else []) if v not in found]

    @property
    def root_motion_name(self) -> str:
        """The RootMotion enum's full name ("ROOT_MOTION_HIPS"); ValueError for one it does not have."""
        name = f"ROOT_MOTION_{self.root_motion}"
        try:
            animation_pb2.RootMotion.Value(name)
        except ValueError:
            raise ValueError(f"unknown root motion {self.root_motion!r}; "
                             "use one of HIPS, ROOT_BONE, IN_PLACE, KEEP") from None
        return name

    def options_record(self) -> dict[str, object]:
        """The options as provenance: enough for a TD to re-run the same jobs."""
        record: dict[str, object] = {
            "capture": self.capture.request_fields(), "root_motion": self.root_motion, "foot_lock": self.foot_lock,
            "target": self.target, "bone_map": dict(self.bone_map), "rig_file": self.rig_file}
        if self.source == "cameras" and self.cameras is not None:
            record["cameras"] = dataclasses.asdict(self.cameras)
        return record


# Typed results ------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Skeleton:
    """A captured clip's canonical skeleton at rest: joint_names (J, parents first), parents (J, -1
    for the root), offsets (J, 3) from each joint's parent in world axes, Y-up metres."""

    joint_names: list[str]
    parents: list[int]
    offsets: np.ndarray


@dataclass(frozen=True, eq=False)
class Motion:
    """Step 1's result, the motion to retarget: a capture (its job, its result, and its skeleton when
    the target is a new armature), an uploaded BVH or an uploaded MotionClip file. A multi-camera
    capture: its job, its result (multiview) and its clip (clip_artifact_id)."""

    capture_job_id: str = ""
    capture: mocap_pb2.CaptureMotionResult | None = None
    multiview: multicam_pb2.MultiViewCaptureResult | None = None
    skeleton: Skeleton | None = None
    bvh_artifact_id: str = ""
    clip_artifact_id: str = ""

    def source(self) -> animation_pb2.MotionSource:
        if self.bvh_artifact_id:
            return animation_pb2.MotionSource(bvh_artifact_id=self.bvh_artifact_id)
        if self.clip_artifact_id:
            return animation_pb2.MotionSource(clip_artifact_id=self.clip_artifact_id)
        return animation_pb2.MotionSource(capture_job_id=self.capture_job_id)


@dataclass(frozen=True, eq=False)
class RigAnimation:
    """A RigAnimation message as numpy arrays (F frames, B bones, K shape keys).

    times: (F,) seconds. rotations: (F, B, 4) (x, y, z, w) relative to each bone's rest frame.
    root_bone: the bone carrying the travel; root_location: (F, 3) its offset from its rest head in
    its rest frame, metres; root_position: (F, 3) the hips head in rig space, Y-up metres.
    shape_key_weights: (F, K) in 0..1, None when the capture has no face curves.
    locations: {bone: (F, 3)} every bone the retarget moves (the hips, a root bone), as the host keys
    its location: offset from the rest head in the bone's rest frame, metres, against the posed parent.
    cameras: the cameras that filmed the motion, in rig space (Y-up metres): through each, the rig
    lies on the person in its video (empty for a BVH, and for in-place motion).
    """

    bone_names: list[str]
    fps: float
    times: np.ndarray
    rotations: np.ndarray
    root_bone: str
    root_location: np.ndarray
    root_position: np.ndarray
    shape_key_names: list[str]
    shape_key_weights: np.ndarray | None
    locations: dict[str, np.ndarray] = field(default_factory=dict)
    cameras: list[VideoCamera] = field(default_factory=list)

    @classmethod
    def from_proto(cls, anim: animation_pb2.RigAnimation) -> RigAnimation:
        return cls(bone_names=list(anim.bone_names), fps=anim.fps, times=from_tensor(anim.times),
                   rotations=from_tensor(anim.rotations), root_bone=anim.root_bone,
                   root_location=from_tensor(anim.root_location), root_position=from_tensor(anim.root_position),
                   shape_key_names=list(anim.shape_key_names),
                   shape_key_weights=from_tensor(anim.shape_key_weights) if anim.shape_key_names else None,
                   locations=_bone_locations(anim), cameras=[VideoCamera.from_proto(c) for c in anim.cameras])

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the last."""
        return float(self.times[-1] - self.times[0]) if len(self.times) else 0.0


def _bone_locations(anim: animation_pb2.RigAnimation) -> dict[str, np.ndarray]:
    if not anim.location_bones:
        return {}
    values = from_tensor(anim.locations)
    return {name: values[:, k] for k, name in enumerate(anim.location_bones)}


@dataclass(frozen=True)
class Provenance:
    """Where a write-back came from, stored by the host with what it creates (Blender: custom
    properties) so that a TD can re-run the same jobs."""

    capture_job_id: str
    retarget_job_id: str
    source: str
    options: dict[str, object]
    server_version: str
    server_address: str
    bvh_artifact_id: str
    animation_artifact_id: str

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class Retargeted:
    """Step 2's result: the motion retargeted onto `rig`, with the server that did it."""

    motion: Motion
    rig: RigDescription
    job_id: str
    result: animation_pb2.RetargetResult
    animation: RigAnimation
    server_version: str = ""
    server_address: str = ""

    @property
    def hips_bone(self) -> str | None:
        """The rig's bone the bone map gave the hips role, if any."""
        return next((m.bone for m in self.result.bone_map.mappings if m.role == "hips"), None)

    @property
    def warnings(self) -> list[str]:
        """What the artist should know, from the capture (skipped steps, gaps) and the retarget, once each."""
        motion = self.motion
        found = motion.capture if motion.capture is not None else motion.multiview
        captured = list(found.warnings) if found is not None else []
        return list(dict.fromkeys([*captured, *self.result.warnings]))

    def provenance(self, plan: Plan) -> Provenance:
        return Provenance(
            capture_job_id=self.motion.capture_job_id, retarget_job_id=self.job_id,
            source=plan.video or plan.bvh_path or ", ".join(plan.videos) or plan.capture_job_id,
            options=plan.options_record(),
            server_version=self.server_version, server_address=self.server_address,
            bvh_artifact_id=self.result.bvh.id, animation_artifact_id=self.result.animation.id)


@dataclass
class WriteSummary:
    """What a host wrote into its scene, for its panel and for scripts.

    target: the animated object (Blender: the armature object). animation: what holds its keys
    (Blender: the action). face_animation: the same for the face curves, empty when none were
    written. missing_shape_keys: face curves with no shape key to drive. warnings: the server's and
    the host's, for the artist.
    """

    target: str
    animation: str
    face_animation: str = ""
    missing_shape_keys: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# The canonical skeleton of a capture --------------------------------------------------------------

def canonical_skeleton(clip: motion_pb2.MotionClip) -> Skeleton:
    """A MotionClip's skeleton with its rest rotations folded into the offsets (world axes)."""
    import numpy as np

    sk = clip.skeleton
    parents = [int(p) for p in sk.parents]
    offsets = from_tensor(sk.rest_offsets).astype(np.float64).reshape(-1, 3)
    rest = from_tensor(sk.rest_rotations).astype(np.float64).reshape(-1, 4)
    world = np.zeros_like(rest)
    out = np.zeros_like(offsets)
    for j, p in enumerate(parents):
        out[j] = _rotate(world[p], offsets[j]) if p >= 0 else offsets[j]
        world[j] = _multiply(world[p], rest[j]) if p >= 0 else rest[j]
    return Skeleton(list(sk.joint_names), parents, out)


def _multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of two (x, y, z, w) quaternions."""
    import numpy as np

    (ax, ay, az, aw), (bx, by, bz, bw) = a, b
    return np.array([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz])


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """v rotated by the unit (x, y, z, w) quaternion q."""
    import numpy as np

    u, w = q[:3], q[3]
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


# Worker steps -------------------------------------------------------------------------------------

def fetch_motion(ctx: WorkerContext, plan: Plan) -> Motion:
    """Step 1: the motion to retarget: a fresh capture (one video, or calibrated cameras), an earlier
    one, or an uploaded BVH."""
    client = ctx.client
    if plan.source == "bvh":
        if Path(plan.bvh_path).suffix.lower() == ".bvh":
            return Motion(bvh_artifact_id=client.upload(plan.bvh_path, progress=ctx.upload_progress("BVH")).id)
        # A MotionClip file (`keygrip mocap --clip`, a multi-view capture): it carries its cameras.
        return Motion(clip_artifact_id=client.upload(plan.bvh_path, progress=ctx.upload_progress("clip")).id)
    if plan.source == "cameras":
        return _capture_cameras(ctx, plan)
    job: Job[mocap_pb2.CaptureMotionResult]
    if plan.source == "video":
        job = client.capture_motion(plan.video, upload_progress=ctx.upload_progress("video"),
                                    **plan.capture.request_fields())
    else:
        found = client.get_job(plan.capture_job_id)
        if found.type == MULTIVIEW_JOB_TYPE:
            return _multiview_motion(ctx, plan, cast("Job[multicam_pb2.MultiViewCaptureResult]", found))
        if found.type != CAPTURE_JOB_TYPE:
            raise ValueError(f"job {plan.capture_job_id} is a {found.type} job, not a motion capture")
        job = cast("Job[mocap_pb2.CaptureMotionResult]", found)
    capture = ctx.run_job(job, "capture")
    return Motion(capture_job_id=job.id, capture=capture, skeleton=_skeleton(ctx, plan, capture.clip))


def _skeleton(ctx: WorkerContext, plan: Plan, clip: common_pb2.ArtifactRef) -> Skeleton | None:
    """The captured skeleton, read only when the target is a new armature built from it."""
    if plan.target != "NEW":
        return None
    ctx.progress("reading the skeleton", 1.0)
    return canonical_skeleton(ctx.client.read_clip(clip))


def _capture_cameras(ctx: WorkerContext, plan: Plan) -> Motion:
    """A multi-camera capture of the plan's videos through their calibration (each video uploaded once)."""
    if plan.cameras is None:
        raise ValueError("a multi-camera capture needs its videos and calibration (Plan.cameras)")
    plan.cameras.check()
    options = plan.capture
    job = ctx.client.capture_multiview(
        plan.cameras.videos, plan.cameras.calibration, frame_offsets=plan.cameras.frame_offsets,
        floor=plan.cameras.floor, upload_progress=ctx.upload_progress("videos"), hands=options.hands, face=options.face,
        smoothing=options.smoothing, foot_lock=options.foot_lock, start_frame=options.start_frame,
        end_frame=options.end_frame)
    return _multiview_motion(ctx, plan, job)


def _multiview_motion(ctx: WorkerContext, plan: Plan, job: Job[multicam_pb2.MultiViewCaptureResult]) -> Motion:
    result = ctx.run_job(job, "capture")
    # The retarget takes the clip itself: it carries the calibrated cameras.
    return Motion(capture_job_id=job.id, multiview=result, clip_artifact_id=result.clip.id,
                  skeleton=_skeleton(ctx, plan, result.clip))


def retarget(ctx: WorkerContext, plan: Plan, motion: Motion, rig: RigDescription) -> Retargeted:
    """Step 2: the retarget job onto the described rig, and its RigAnimation as numpy arrays."""
    req = animation_pb2.RetargetRequest(source=motion.source(), rig=rig.to_proto(),
                                        root_motion=animation_pb2.RootMotion.Value(plan.root_motion_name),
                                        foot_lock=plan.foot_lock)
    if plan.bone_map:
        req.bone_map.CopyFrom(bone_map_from_dict(plan.bone_map))
    elif plan.rig_file:
        ctx.progress("reading the character file's bone map", 0.0)
        req.bone_map.CopyFrom(bone_map_from_dict(declared_roles(ctx.client, plan.rig_file, rig.bone_names)))
    job = ctx.client.retarget(req)
    result = ctx.run_job(job, "retarget")
    ctx.progress("downloading", 0.5)
    anim = ctx.client.read_message(result.animation, animation_pb2.RigAnimation)
    return Retargeted(motion=motion, rig=rig, job_id=job.id, result=result, animation=RigAnimation.from_proto(anim),
                      server_version=ctx.server_info.version, server_address=ctx.connection.address)


def declared_roles(client: Client, rig_file: str, bones: Sequence[str]) -> dict[str, str]:
    """{bone: role} a character file declares (its own humanoid map, or the preset saved beside it),
    for the bones the armature has (an importer may have renamed or dropped others)."""
    found = client.map_bones(client.rig_file(rig_file))
    declared = (animation_pb2.ROLE_SOURCE_DECLARED, animation_pb2.ROLE_SOURCE_PRESET)
    have = set(bones)
    return {m.bone: m.role for m in found.mappings if m.source in declared and m.bone in have}


# The chain ----------------------------------------------------------------------------------------

def steps(plan: Plan, *, describe_new_rig: Callable[[Skeleton], RigDescription],
          write: Callable[[Retargeted], WriteSummary]) -> list[Step]:
    """fetch_motion -> the target rig -> retarget -> write, for a Session.

    describe_new_rig(skeleton): main thread, for a NEW target: the RigDescription of the armature the
    host will build from the skeleton (built only in `write`, so that a cancel adds nothing).
    write(retargeted): main thread: the host's scene writing; its summary is the session's value.
    """

    def target_rig(motion: Motion) -> tuple[Motion, RigDescription]:
        return motion, _target_rig(plan, motion, describe_new_rig)

    def retarget_step(ctx: WorkerContext, target: tuple[Motion, RigDescription]) -> Retargeted:
        motion, rig = target
        return retarget(ctx, plan, motion, rig)

    return [
        Worker(lambda ctx, _: fetch_motion(ctx, plan)),
        Main(target_rig),
        Worker(retarget_step),
        Main(write),
    ]


def _target_rig(plan: Plan, motion: Motion, describe_new_rig: Callable[[Skeleton], RigDescription]
                ) -> RigDescription:
    """The rig a plan's motion goes onto: a new one described from the captured skeleton, or the plan's."""
    if plan.target == "NEW":
        if motion.skeleton is None:
            raise ValueError("a new armature needs a captured skeleton: capture a video, or pick a rig")
        return describe_new_rig(motion.skeleton)
    if plan.rig is None:
        raise ValueError("select the armature to animate (or choose 'New armature' as the target)")
    return plan.rig


PeopleWrite = Callable[[list[tuple[Plan, Retargeted]], list[str]], WriteSummary]


def people_steps(plans: Sequence[Plan], *, describe_new_rig: Callable[[Plan, Skeleton], RigDescription],
                 write: PeopleWrite) -> list[Step]:
    """steps() for several people of one shot, a plan each (capture.subject: the person's id; its
    target: a new armature of their own, or the SELECTED rig the plan describes): every capture, every
    new rig, every retarget, then ONE write of them all, so that the host makes one undo step of it.

    describe_new_rig(plan, skeleton): main thread, as for steps(). write(done, skipped): main thread,
    each person's plan and result, and a line for each person the capture found nobody for (left out;
    when nobody is left the session fails with the first such error); its summary of them all is the
    session's value."""
    if not plans:
        raise ValueError("no people to capture: give a plan for each")

    def fetch_all(ctx: WorkerContext, _: Any) -> tuple[list[tuple[Plan, Motion]], list[str]]:
        found: list[tuple[Plan, Motion]] = []
        skipped: list[str] = []
        first: JobFailed | None = None
        for plan in plans:
            try:
                found.append((plan, fetch_motion(ctx, plan)))
            except JobFailed as exc:
                if exc.code != "FAILED_PRECONDITION":  # anything but "nobody there" ends the session
                    raise
                skipped.append(f"person {plan.capture.subject} was not captured: {exc}")
                first = first or exc
        if not found and first is not None:
            raise first
        return found, skipped

    def rigs(fetched: tuple[list[tuple[Plan, Motion]], list[str]]
             ) -> tuple[list[tuple[Plan, Motion, RigDescription]], list[str]]:
        found, skipped = fetched
        return [(plan, motion, _target_rig(plan, motion, functools.partial(describe_new_rig, plan)))
                for plan, motion in found], skipped

    def retarget_all(ctx: WorkerContext, targets: tuple[list[tuple[Plan, Motion, RigDescription]], list[str]]
                     ) -> tuple[list[tuple[Plan, Retargeted]], list[str]]:
        found, skipped = targets
        return [(plan, retarget(ctx, plan, motion, rig)) for plan, motion, rig in found], skipped

    return [Worker(fetch_all), Main(rigs), Worker(retarget_all), Main(lambda done: write(*done))]
