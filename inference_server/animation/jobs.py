"""The retarget job: a MotionClip or BVH onto the artist's rig, as RigAnimation and BVH."""

from __future__ import annotations

import importlib
import io

from google.protobuf.message import DecodeError

from inference_server.capability import JobHandler
from inference_server.errors import InvalidInput
from inference_server.jobs.context import JobContext
from inference_server.jobs.failures import JobInput, artifact_name
from inference_server.motion.clip import MotionClip
from inference_server.store.artifacts import ArtifactStore, artifact_ref
from keygrip.v1 import animation_pb2, motion_pb2

_ROOT_MODES = {
    animation_pb2.ROOT_MOTION_UNSPECIFIED: "hips",
    animation_pb2.ROOT_MOTION_HIPS: "hips",
    animation_pb2.ROOT_MOTION_ROOT_BONE: "root_bone",
    animation_pb2.ROOT_MOTION_IN_PLACE: "in_place",
    animation_pb2.ROOT_MOTION_KEEP: "keep",
}


def load_source(source: animation_pb2.MotionSource, ctx: JobContext) -> MotionClip:
    """The motion a request names (the service has resolved a capture job to its clip artifact)."""
    from inference_server.motion.bvh import read_bvh
    from inference_server.motion.wire import clip_from_proto

    scale: float | str = source.bvh_scale or "auto"
    which = source.WhichOneof("source")
    if which == "clip_artifact_id":
        try:
            message = motion_pb2.MotionClip.FromString(ctx.artifacts.read_bytes(source.clip_artifact_id))
        except DecodeError:
            raise InvalidInput("this is neither a BVH (name it .bvh) nor a clip written by `keygrip mocap --clip`"
                               ) from None
        try:
            return clip_from_proto(message)
        except ValueError as exc:  # a camera that cannot be one; the arrays are checked by MotionClip
            raise InvalidInput(f"the motion clip is damaged: {exc}") from None
    if which == "bvh_artifact_id":
        return read_bvh(ctx.artifacts.path(source.bvh_artifact_id), scale=scale)
    return read_bvh(source.bvh_path, scale=scale)


class RetargetHandler(JobHandler[animation_pb2.RetargetRequest]):
    request_type = animation_pb2.RetargetRequest

    def setup(self) -> None:
        importlib.import_module("inference_server.animation.retarget")  # with SciPy, once per worker

    def describe(self, request: animation_pb2.RetargetRequest, artifacts: ArtifactStore | None) -> JobInput:
        source = request.source
        which = source.WhichOneof("source")
        if which == "bvh_artifact_id":
            name = source.name or artifact_name(source.bvh_artifact_id, artifacts)
        elif which == "clip_artifact_id":
            name = source.name or artifact_name(source.clip_artifact_id, artifacts, "the captured clip")
        elif which == "bvh_path":
            name = source.bvh_path
        else:
            name = "the motion"
        rig_file = request.rig_file
        if rig_file.WhichOneof("file") == "artifact_id":
            onto = f" onto {rig_file.name or artifact_name(rig_file.artifact_id, artifacts)}"
        elif rig_file.WhichOneof("file") == "path":
            onto = f" onto {rig_file.path}"
        else:
            onto = f" onto the rig {request.rig.name}" if request.rig.name else " onto the rig"
        return JobInput(name=name, doing="retargeting", kind="motion or rig", smaller="a shorter frame range",
                        after=onto)

    def run(self, request: animation_pb2.RetargetRequest, ctx: JobContext) -> animation_pb2.RetargetResult:
        from inference_server.animation.mapping import resolve_map
        from inference_server.animation.retarget import RetargetOptions, retarget
        from inference_server.animation.rig_files import animated_file, load_rig_file
        from inference_server.motion.bvh import write_bvh
        from inference_server.motion.wire import (
            bone_map_to_proto,
            rig_animation_to_proto,
            rig_from_proto,
            rig_to_proto,
        )

        ctx.progress("load", 0, 1, "reading the motion")
        source = load_source(request.source, ctx)
        if request.frame_range.start > 0 or request.frame_range.end > 0:
            from inference_server.animation.cliptools import trim

            end = request.frame_range.end if request.frame_range.end > 0 else source.num_frames
            source = trim(source, source.times[min(request.frame_range.start, source.num_frames - 1)],
                          source.times[min(end, source.num_frames) - 1])
        preset = {m.bone: m.role for m in request.bone_map.mappings}
        if request.HasField("rig_file"):
            character = load_rig_file(request.rig_file, ctx.artifacts)
            rig, rig_name = character.rig, character.name
            bone_map = resolve_map(rig, character.declared, character.declared_by, preset,
                                   character.map_warnings)
        else:
            rig, rig_name = rig_from_proto(request.rig), request.rig.name
            bone_map = resolve_map(rig, preset=preset)
        options = RetargetOptions(root_motion=_ROOT_MODES[request.root_motion],
                                  foot_lock=request.foot_lock if request.HasField("foot_lock") else True,
                                  face_mapping=dict(request.face_map) or None)
        ctx.check_cancelled()
        result = retarget(source, rig, bone_map, options=options, context=ctx)
        ctx.check_cancelled()
        ctx.progress("export", 0, 2, "writing results")
        # result.warnings begin with the rig's own.
        out = animation_pb2.RetargetResult(frames=len(result.times), warnings=result.warnings + bone_map.warnings,
                                           rig=rig_to_proto(rig, rig_name))
        out.bone_map.CopyFrom(bone_map_to_proto(result.bone_map))
        anim = rig_animation_to_proto(result)
        out.animation.CopyFrom(artifact_ref(ctx.put_bytes(anim.SerializeToString(), "animation.keygrip-anim",
                                                          "application/x-protobuf")))
        bvh = io.StringIO()
        locations = {rig.index(name): loc for name, loc in result.locations.items()}
        write_bvh(rig.to_clip(result.rotations, locations, result.times, result.fps), bvh,
                  positions=rig.bvh_positions(result.rotations, locations))
        out.bvh.CopyFrom(artifact_ref(ctx.put_bytes(bvh.getvalue().encode(), "retargeted.bvh",
                                                    "application/x-bvh")))
        if request.animated_file:
            data, name, media_type = animated_file(request.rig_file, ctx.artifacts, character, result,
                                                   request.animated_format)
            out.character.CopyFrom(artifact_ref(ctx.put_bytes(data, name, media_type)))
        ctx.progress("export", 2, 2, "done")
        return out
