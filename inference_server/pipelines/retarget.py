"""The retarget job: a MotionClip or BVH onto the artist's rig, as RigAnimation and BVH."""

from __future__ import annotations

import io

import numpy as np
from google.protobuf import any_pb2

from inference_server.jobs.workers import WorkerContext
from inference_server.motion import quat
from inference_server.motion.clip import MotionClip, Skeleton
from inference_server.services.artifacts import artifact_ref
from keygrip.v1 import animation_pb2, motion_pb2

_ROOT_MODES = {
    animation_pb2.ROOT_MOTION_UNSPECIFIED: "hips",
    animation_pb2.ROOT_MOTION_HIPS: "hips",
    animation_pb2.ROOT_MOTION_ROOT_BONE: "root_bone",
    animation_pb2.ROOT_MOTION_IN_PLACE: "in_place",
    animation_pb2.ROOT_MOTION_KEEP: "keep",
}


def load_source(source: animation_pb2.MotionSource, ctx: WorkerContext) -> MotionClip:
    from inference_server.motion.bvh import read_bvh
    from inference_server.motion.wire import clip_from_proto

    scale: float | str = source.bvh_scale or "auto"
    which = source.WhichOneof("source")
    if which == "clip_artifact_id":
        return clip_from_proto(motion_pb2.MotionClip.FromString(ctx.artifacts.read_bytes(source.clip_artifact_id)))
    if which == "bvh_artifact_id":
        return read_bvh(ctx.artifacts.path(source.bvh_artifact_id), scale=scale)
    return read_bvh(source.bvh_path, scale=scale)


def rig_clip(rig, result) -> MotionClip:
    """The retargeted motion as a BVH-style clip on the rig's own skeleton (identity rest rotations).

    Translation is kept on the skeleton's root only (BVH has no other place for it).
    """
    index = {int(b): i for i, b in enumerate(rig.order)}
    locations = {rig.index(name): loc for name, loc in result.locations.items()}
    world, heads = rig.forward_kinematics(result.rotations, locations)
    order = [int(b) for b in rig.order]
    parents = np.array([index[int(rig.parents[b])] if rig.parents[b] >= 0 else -1 for b in order])
    offsets = np.array([rig.heads[b] - (rig.heads[rig.parents[b]] if rig.parents[b] >= 0 else 0.0) for b in order])
    # BVH joints carry no rest rotation: take each bone's posed-vs-rest world rotation.
    g = quat.multiply(world[:, order], quat.conjugate(rig.rest_rotations[order]))
    local = g.copy()
    for i, p in enumerate(parents):
        if p >= 0:
            local[:, i] = quat.multiply(quat.conjugate(g[:, p]), g[:, i])
    root_ids = [i for i, p in enumerate(parents) if p < 0]
    skeleton = Skeleton([rig.names[b] for b in order], parents, offsets)
    clip = MotionClip(skeleton, result.fps, result.times, quat.make_continuous(local), heads[:, order[root_ids[0]]])
    return clip


def run(request: any_pb2.Any, ctx: WorkerContext) -> animation_pb2.RetargetResult:
    from inference_server.animation.mapping import BoneMap
    from inference_server.animation.retarget import RetargetOptions, retarget
    from inference_server.motion.bvh import write_bvh
    from inference_server.motion.wire import bone_map_to_proto, rig_animation_to_proto, rig_from_proto

    req = animation_pb2.RetargetRequest()
    request.Unpack(req)
    ctx.progress("load", 0, 1, "reading the motion")
    source = load_source(req.source, ctx)
    if req.frame_range.start > 0 or req.frame_range.end > 0:
        from inference_server.animation.cliptools import trim

        end = req.frame_range.end if req.frame_range.end > 0 else source.num_frames
        source = trim(source, source.times[min(req.frame_range.start, source.num_frames - 1)],
                      source.times[min(end, source.num_frames) - 1])
    rig = rig_from_proto(req.rig)
    bone_map = None
    if req.bone_map.mappings:
        bone_map = BoneMap.from_roles(rig.names, {m.bone: m.role for m in req.bone_map.mappings})
    options = RetargetOptions(root_motion=_ROOT_MODES[req.root_motion],
                              foot_lock=req.foot_lock if req.HasField("foot_lock") else True,
                              face_mapping=dict(req.face_map) or None)
    ctx.check_cancelled()
    result = retarget(source, rig, bone_map, options=options, context=ctx)
    ctx.check_cancelled()
    ctx.progress("export", 0, 2, "writing results")
    out = animation_pb2.RetargetResult(frames=len(result.times), warnings=rig.warnings + result.warnings)
    out.bone_map.CopyFrom(bone_map_to_proto(result.bone_map))
    anim = rig_animation_to_proto(result)
    out.animation.CopyFrom(artifact_ref(ctx.put_bytes(anim.SerializeToString(), "animation.keygrip-anim",
                                                      "application/x-protobuf")))
    bvh = io.StringIO()
    write_bvh(rig_clip(rig, result), bvh)
    out.bvh.CopyFrom(artifact_ref(ctx.put_bytes(bvh.getvalue().encode(), "retargeted.bvh", "application/x-bvh")))
    ctx.progress("export", 2, 2, "done")
    return out
