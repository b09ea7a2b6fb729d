"""The chains of steps behind each button: what runs on the worker thread, what on the main thread.

A Plan is a snapshot of the panel taken on the main thread when the artist clicks; worker steps
read only the plan and the server, never bpy data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import apply, preferences, rig
from .connection import Main, ServerSettings, Session, Worker, WorkerContext

ROOT_MOTION = {"HIPS": 1, "ROOT_BONE": 2, "IN_PLACE": 3, "KEEP": 4}   # animation_pb2.RootMotion values


@dataclass
class Plan:
    """Everything a capture (or BVH import) needs, captured when the artist clicks.

    source: "video" (capture the video), "capture_job" (retarget an earlier capture again) or "bvh".
    capture_options: CaptureMotionRequest fields (hands, face, smoothing, foot_lock, start_frame, ...).
    target: "NEW" (canonical armature) or "SELECTED" (armature_name, described as rig).
    bone_map: the artist's {bone: role}; empty: the server maps automatically.
    frame_start: the scene frame the clip's first frame lands on.
    """

    source: str
    video: str = ""
    capture_job_id: str = ""
    bvh_path: str = ""
    capture_options: dict[str, Any] = field(default_factory=dict)
    root_motion: str = "HIPS"
    foot_lock: bool = True
    target: str = "NEW"
    armature_name: str = ""
    rig: dict[str, Any] | None = None
    bone_map: dict[str, str] = field(default_factory=dict)
    face_mesh_name: str = ""
    reference_video: bool = True
    match_fps: bool = True
    frame_start: int = 1

    @property
    def title(self) -> str:
        what = Path(self.video or self.bvh_path).name or f"capture {self.capture_job_id[:8]}"
        onto = self.armature_name if self.target == "SELECTED" else "a new armature"
        return f"{what} onto {onto}"

    def options_record(self) -> dict[str, Any]:
        """The options as provenance: enough for a TD to re-run the same jobs."""
        return {"capture": self.capture_options, "root_motion": self.root_motion, "foot_lock": self.foot_lock,
                "target": self.target, "bone_map": self.bone_map}


# Worker steps -----------------------------------------------------------------------------------

def _upload_progress(ctx: WorkerContext, what: str):
    def report(done: int, total: int) -> None:
        ctx.progress(f"uploading {what}", done / total if total else 1.0)
    return report


def canonical_skeleton(clip) -> tuple[list[str], list[int], np.ndarray]:
    """(names, parents, (J, 3) offsets from the parent in world axes, Y-up metres) of a MotionClip
    message's skeleton, with its rest rotations folded into the offsets."""
    from keygrip.tensors import from_tensor

    sk = clip.skeleton
    parents = [int(p) for p in sk.parents]
    offsets = from_tensor(sk.rest_offsets).astype(np.float64).reshape(-1, 3)
    rest = from_tensor(sk.rest_rotations).astype(np.float64).reshape(-1, 4)
    world = np.zeros_like(rest)
    out = np.zeros_like(offsets)
    for j, p in enumerate(parents):
        out[j] = _rotate(world[p], offsets[j]) if p >= 0 else offsets[j]
        world[j] = _multiply(world[p], rest[j]) if p >= 0 else rest[j]
    return list(sk.joint_names), parents, out


def _multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of two (x, y, z, w) quaternions."""
    (ax, ay, az, aw), (bx, by, bz, bw) = a, b
    return np.array([aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz])


def _rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    u, w = q[:3], q[3]
    return v + 2.0 * np.cross(u, np.cross(u, v) + w * v)


def fetch_motion(ctx: WorkerContext, plan: Plan) -> dict[str, Any]:
    """Step 1: the motion to retarget: a fresh capture, an earlier one, or an uploaded BVH."""
    client = ctx.client
    out: dict[str, Any] = {}
    if plan.source == "bvh":
        out["bvh_artifact_id"] = client.upload(plan.bvh_path, progress=_upload_progress(ctx, "BVH")).id
        return out
    if plan.source == "video":
        job = client.capture_motion(plan.video, upload_progress=_upload_progress(ctx, "video"),
                                    **plan.capture_options)
    else:
        job = client.get_job(plan.capture_job_id)
        if job.type != "motion_capture":
            raise ValueError(f"job {plan.capture_job_id} is a {job.type} job, not a motion capture")
    out["capture"] = ctx.run_job(job, "capture")
    out["capture_job_id"] = job.id
    if plan.target == "NEW":
        ctx.progress("reading the skeleton", 1.0)
        out["skeleton"] = canonical_skeleton(client.read_clip(out["capture"].clip))
    return out


def retarget(ctx: WorkerContext, plan: Plan, motion: dict[str, Any]) -> dict[str, Any]:
    """Step 3: the retarget job onto the described rig, and its RigAnimation as numpy arrays."""
    from keygrip import rigs
    from keygrip.tensors import from_tensor
    from keygrip.v1 import animation_pb2

    req = animation_pb2.RetargetRequest(rig=rigs.rig_from_description(motion["rig"]),
                                        root_motion=ROOT_MOTION[plan.root_motion], foot_lock=plan.foot_lock)
    if "bvh_artifact_id" in motion:
        req.source.bvh_artifact_id = motion["bvh_artifact_id"]
    else:
        req.source.capture_job_id = motion["capture_job_id"]
    if plan.bone_map:
        req.bone_map.CopyFrom(rigs.bone_map_from_dict(plan.bone_map))
    job = ctx.client.retarget(req)
    result = ctx.run_job(job, "retarget")
    ctx.progress("downloading", 0.5)
    anim = ctx.client.read_message(result.animation, animation_pb2.RigAnimation)
    motion.update(retarget_job_id=job.id, retarget=result, animation={
        "bone_names": list(anim.bone_names), "fps": anim.fps, "times": from_tensor(anim.times),
        "rotations": from_tensor(anim.rotations), "root_bone": anim.root_bone,
        "root_location": from_tensor(anim.root_location), "root_position": from_tensor(anim.root_position),
        "shape_key_names": list(anim.shape_key_names),
        "shape_key_weights": from_tensor(anim.shape_key_weights) if anim.shape_key_names else None,
    })
    return motion


# Sessions -----------------------------------------------------------------------------------------

def capture_session(plan: Plan, settings: ServerSettings) -> Session:
    """Capture (or reuse a capture, or upload a BVH), retarget, write back: the main job."""

    def describe_target(motion: dict[str, Any]) -> dict[str, Any]:
        if plan.target == "NEW":
            names, parents, offsets = motion["skeleton"]
            motion["rig"] = rig.describe_canonical(names, parents, offsets, name=apply.new_armature_name(plan))
        else:
            motion["rig"] = plan.rig
        return motion

    session = Session(plan.title, settings, [
        Worker(lambda ctx, _: fetch_motion(ctx, plan)),
        Main(describe_target),
        Worker(lambda ctx, motion: retarget(ctx, plan, motion)),
        Main(lambda data: apply.apply_result(plan, data, session)),
    ])
    return session


def connect_session(settings: ServerSettings) -> Session:
    """GetServerInfo (connecting also starts the local server when allowed)."""
    session = Session("connect", settings, [
        Worker(lambda ctx, _: ctx.session.server_info),
    ])
    session.on_finish = _record_connection
    return session


def _record_connection(session: Session) -> None:
    if session.server_info is not None:
        preferences.record_server_info(session.server_info, session.address)
    elif session.error:
        preferences.record_error(session.error)


def probe_session(video: str, settings: ServerSettings, scene_name: str) -> Session:
    """Probe the video and fill the panel's frame range."""

    def probe(ctx: WorkerContext, _: Any):
        return ctx.run_job(ctx.client.probe(video), "probe")

    def fill(result) -> Any:
        import bpy

        settings_ = bpy.data.scenes[scene_name].keygrip
        settings_.video_frames = result.frame_count
        settings_.video_fps = result.fps
        settings_.frame_start = 0
        settings_.frame_end = result.frame_count
        return result

    return Session(f"probe {Path(video).name}", settings, [Worker(probe), Main(fill)])


def map_bones_session(description: dict[str, Any], object_name: str, settings: ServerSettings) -> Session:
    """The server's automatic bone map for an armature, as editable rows on it."""
    from keygrip import rigs

    def ask(ctx: WorkerContext, _: Any):
        return ctx.client.map_bones(rigs.rig_from_description(description))

    def fill(bone_map) -> Any:
        import bpy

        from . import properties

        properties.set_bone_map(bpy.data.objects[object_name], rigs.bone_map_to_dict(bone_map))
        return bone_map

    return Session(f"map bones of {object_name}", settings, [Worker(ask), Main(fill)])


def download_session(artifact_id: str, path: str, settings: ServerSettings) -> Session:
    """Download an artifact (e.g. the retargeted BVH) to a file."""

    def fetch(ctx: WorkerContext, _: Any):
        def report(done: int, total: int) -> None:
            ctx.progress("downloading", done / total if total else 1.0)
        return str(ctx.client.download(artifact_id, path, progress=report))

    return Session(f"download {Path(path).name}", settings, [Worker(fetch)])
