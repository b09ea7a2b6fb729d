"""MotionClip <-> keygrip.v1.MotionClip: the one place where motion meets the wire format."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from inference_server.motion.clip import MotionClip, Skeleton
from keygrip.projection import VideoCamera
from keygrip.tensors import from_tensor, to_tensor
from keygrip.v1 import animation_pb2, common_pb2, motion_pb2

if TYPE_CHECKING:  # animation/ builds on motion/, not the other way round: imported where used
    from inference_server.animation.mapping import BoneMap
    from inference_server.animation.retarget import RetargetResult
    from inference_server.animation.rig import Rig

F32, F64, U8 = common_pb2.DTYPE_FLOAT32, common_pb2.DTYPE_FLOAT64, common_pb2.DTYPE_UINT8


def clip_to_proto(clip: MotionClip) -> motion_pb2.MotionClip:
    sk = clip.skeleton
    msg = motion_pb2.MotionClip(
        skeleton=motion_pb2.Skeleton(
            joint_names=sk.names, parents=[int(p) for p in sk.parents],
            rest_offsets=to_tensor(sk.offsets, F32), rest_rotations=to_tensor(sk.rest_rotations, F32)),
        fps=clip.fps,
        times=to_tensor(clip.times, F64),
        rotations=to_tensor(clip.rotations, F32),
        root_translation=to_tensor(clip.root_translation, F32),
        confidence=to_tensor(clip.confidence, F32),
        frame_flags=to_tensor(clip.frame_flags, U8),
        contact_names=clip.contact_names,
        contacts=to_tensor(clip.contacts, U8),
        face_curve_names=clip.face_names,
        face_curves=to_tensor(clip.face_curves, F32),
        cameras=[c.to_proto() for c in clip.cameras],
    )
    msg.metadata.update(clip.metadata)
    return msg


def clip_from_proto(msg: motion_pb2.MotionClip) -> MotionClip:
    sk = msg.skeleton
    skeleton = Skeleton(list(sk.joint_names), np.array(sk.parents, dtype=np.int64),
                        from_tensor(sk.rest_offsets).astype(np.float64),
                        from_tensor(sk.rest_rotations).astype(np.float64))
    return MotionClip(
        skeleton=skeleton, fps=msg.fps,
        times=from_tensor(msg.times).astype(np.float64),
        rotations=from_tensor(msg.rotations).astype(np.float64),
        root_translation=from_tensor(msg.root_translation).astype(np.float64),
        confidence=from_tensor(msg.confidence).copy(),
        frame_flags=from_tensor(msg.frame_flags).copy(),
        contact_names=list(msg.contact_names),
        contacts=from_tensor(msg.contacts).astype(bool),
        face_names=list(msg.face_curve_names),
        face_curves=from_tensor(msg.face_curves).copy(),
        metadata=dict(msg.metadata),
        cameras=[VideoCamera.from_proto(c) for c in msg.cameras],
    )


# Rigs, bone maps and rig animation ---------------------------------------------------------------

def rig_from_proto(msg: animation_pb2.Rig) -> Rig:
    from inference_server.animation.rig import Rig
    from inference_server.errors import InvalidInput

    n = len(msg.bone_names)
    if n == 0:
        raise InvalidInput("the rig has no bones")
    if len(msg.parents) != n:
        raise InvalidInput(f"the rig names {n} bones but gives {len(msg.parents)} parents")
    try:
        mats = from_tensor(msg.rest_matrices).astype(np.float64).reshape(n, 4, 4)
        tails = from_tensor(msg.tails).astype(np.float64).reshape(n, 3) if msg.tails.data else None
    except ValueError as exc:
        raise InvalidInput(f"rig arrays do not match its {n} bones: {exc}") from None
    return Rig(list(msg.bone_names), np.array(msg.parents, dtype=np.int64), mats, tails)


def rig_to_proto(rig: Rig, name: str = "") -> animation_pb2.Rig:
    msg = animation_pb2.Rig(name=name, bone_names=rig.names, parents=[int(p) for p in rig.parents],
                            rest_matrices=to_tensor(rig.rest_matrices, F32))
    if rig.tails is not None:
        msg.tails.CopyFrom(to_tensor(rig.tails, F32))
    return msg


def bone_map_to_proto(bone_map: BoneMap, warnings: list[str] | None = None) -> animation_pb2.BoneMap:
    """warnings: the rig's own, put before the map's."""
    return animation_pb2.BoneMap(
        mappings=[animation_pb2.BoneMapping(
            bone=b, role=r, confidence=bone_map.confidence.get(b, 0.0),
            source=animation_pb2.RoleSource.Value(f"ROLE_SOURCE_{bone_map.sources.get(b, 'unspecified').upper()}"))
            for b, r in bone_map.bone_to_role.items()],
        unmapped_bones=bone_map.unmapped_bones, missing_roles=bone_map.missing_roles,
        warnings=[*(warnings or []), *bone_map.warnings], declared_by=bone_map.declared_by)


def rig_animation_to_proto(result: RetargetResult) -> animation_pb2.RigAnimation:
    """A retarget result (inference_server.animation.retarget.RetargetResult) for the wire."""
    msg = animation_pb2.RigAnimation(
        bone_names=result.bone_names, fps=result.fps, times=to_tensor(result.times, F64),
        rotations=to_tensor(result.rotations, F32), root_bone=result.root_bone,
        root_location=to_tensor(result.root_location, F32),
        root_position=to_tensor(result.root_position_world, F32),
        shape_key_names=result.face_names, location_bones=list(result.locations),
        cameras=[c.to_proto() for c in result.cameras])
    if result.locations:
        msg.locations.CopyFrom(to_tensor(np.stack(list(result.locations.values()), axis=1), F32))
    if result.face_curves is not None:
        msg.shape_key_weights.CopyFrom(to_tensor(result.face_curves, F32))
    return msg
