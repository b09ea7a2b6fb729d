"""The Animation service: bone mapping (answered at once) and retarget jobs."""

from __future__ import annotations

import asyncio

import grpc

from inference_server.capability import ServerParts
from inference_server.config import Config
from inference_server.errors import FailedPrecondition, InvalidInput, NotFound
from inference_server.jobs.manager import JobManager
from inference_server.motion.wire import bone_map_to_proto, rig_from_proto
from inference_server.services.errors import rpc_errors
from inference_server.services.inputs import check_path
from inference_server.store import jobs as js
from inference_server.store.artifacts import ArtifactStore, check_digest
from keygrip.v1 import animation_pb2, animation_pb2_grpc, common_pb2, mocap_pb2


def _map_bones(request: animation_pb2.MapBonesRequest, artifacts: ArtifactStore) -> animation_pb2.BoneMap:
    from inference_server.animation.mapping import resolve_map
    from inference_server.animation.rig_files import load_rig_file

    if request.HasField("rig_file"):
        character = load_rig_file(request.rig_file, artifacts)
        rig = character.rig
        bone_map = resolve_map(rig, character.declared, character.declared_by,
                               warnings=character.map_warnings)
    else:
        rig = rig_from_proto(request.rig)
        bone_map = resolve_map(rig)
    return bone_map_to_proto(bone_map, rig.warnings)


def _check_rig_file(request: animation_pb2.RetargetRequest, artifacts: ArtifactStore) -> None:
    """Read the character now, so that a file that is none (or an animated file it cannot give) fails at
    submit, naming the file."""
    from inference_server.animation.rig_files import animated_format, load_rig_file

    character = load_rig_file(request.rig_file, artifacts)
    if request.animated_file:
        animated_format(request.rig_file, artifacts, character, request.animated_format)


class AnimationService(animation_pb2_grpc.AnimationServicer):
    def __init__(self, config: Config, manager: JobManager) -> None:
        self.config = config
        self.manager = manager

    @rpc_errors
    async def MapBones(self, request: animation_pb2.MapBonesRequest,
                       context: grpc.aio.ServicerContext) -> animation_pb2.BoneMap:
        req = animation_pb2.MapBonesRequest()
        req.CopyFrom(request)
        if req.HasField("rig_file"):
            self._check_rig_file_source(req.rig_file)
        elif not req.rig.bone_names:
            raise InvalidInput("the request has no rig: send the armature's bones and rest matrices, or a rig_file")
        return await asyncio.to_thread(_map_bones, req, self.manager.artifacts)

    @rpc_errors
    async def Retarget(self, request: animation_pb2.RetargetRequest,
                       context: grpc.aio.ServicerContext) -> common_pb2.Job:
        req = animation_pb2.RetargetRequest()
        req.CopyFrom(request)
        self._check_source(req.source)
        # Validate the rig now so that a malformed one fails at submit, not in a worker.
        if req.HasField("rig_file"):
            self._check_rig_file_source(req.rig_file)
            await asyncio.to_thread(_check_rig_file, req, self.manager.artifacts)
        elif req.animated_file:
            raise InvalidInput("an animated file is written into the character file the rig came from: send the rig "
                               "as a rig_file (.glb, .vrm or .fbx)")
        elif req.rig.bone_names:
            await asyncio.to_thread(rig_from_proto, req.rig)
        else:
            raise InvalidInput("the request has no rig: send the target armature's bones and rest matrices, or a "
                               "rig_file (a .glb, .gltf, .vrm, .fbx or .bvh character)")
        return self.manager.to_proto(self.manager.submit("retarget", req, request.request_id))

    def _check_rig_file_source(self, rig_file: animation_pb2.RigFile) -> None:
        """An uploaded rig file must exist; a path must lie in an allowed root (resolved in place)."""
        which = rig_file.WhichOneof("file")
        if which == "artifact_id":
            self.manager.artifacts.stat(check_digest(rig_file.artifact_id))
        elif which == "path":
            rig_file.path = check_path(self.config, rig_file.path)
        else:
            raise InvalidInput("the rig file names no file: set rig_file.artifact_id or rig_file.path")

    def _check_source(self, source: animation_pb2.MotionSource) -> None:
        """Resolve the source to an artifact or an allowed path, in place."""
        which = source.WhichOneof("source")
        if which in ("clip_artifact_id", "bvh_artifact_id"):
            self.manager.artifacts.stat(check_digest(getattr(source, which)))
        elif which == "bvh_path":
            source.bvh_path = check_path(self.config, source.bvh_path)
        elif which == "capture_job_id":
            rec = self.manager.store.get(source.capture_job_id)
            if rec is None or rec.type != "motion_capture":
                raise NotFound(f"no motion capture job {source.capture_job_id!r} on this server")
            if rec.state != js.SUCCEEDED:
                raise FailedPrecondition(f"capture job {source.capture_job_id} has not succeeded yet; "
                                         "wait for it (keygrip jobs watch ID) before retargeting")
            result = mocap_pb2.CaptureMotionResult()
            self.manager.to_proto(rec).result.Unpack(result)
            source.clip_artifact_id = result.clip.id
        else:
            raise InvalidInput("the request names no motion: set source.clip_artifact_id, bvh_artifact_id, "
                               "bvh_path or capture_job_id")


def add_to_server(server: grpc.aio.Server, parts: ServerParts) -> None:
    animation_pb2_grpc.add_AnimationServicer_to_server(AnimationService(parts.config, parts.manager), server)
