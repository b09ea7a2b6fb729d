from keygrip.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RootMotion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROOT_MOTION_UNSPECIFIED: _ClassVar[RootMotion]
    ROOT_MOTION_HIPS: _ClassVar[RootMotion]
    ROOT_MOTION_ROOT_BONE: _ClassVar[RootMotion]
    ROOT_MOTION_IN_PLACE: _ClassVar[RootMotion]
    ROOT_MOTION_KEEP: _ClassVar[RootMotion]
ROOT_MOTION_UNSPECIFIED: RootMotion
ROOT_MOTION_HIPS: RootMotion
ROOT_MOTION_ROOT_BONE: RootMotion
ROOT_MOTION_IN_PLACE: RootMotion
ROOT_MOTION_KEEP: RootMotion

class Rig(_message.Message):
    __slots__ = ("name", "bone_names", "parents", "rest_matrices", "tails")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BONE_NAMES_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    REST_MATRICES_FIELD_NUMBER: _ClassVar[int]
    TAILS_FIELD_NUMBER: _ClassVar[int]
    name: str
    bone_names: _containers.RepeatedScalarFieldContainer[str]
    parents: _containers.RepeatedScalarFieldContainer[int]
    rest_matrices: _common_pb2.Tensor
    tails: _common_pb2.Tensor
    def __init__(self, name: _Optional[str] = ..., bone_names: _Optional[_Iterable[str]] = ..., parents: _Optional[_Iterable[int]] = ..., rest_matrices: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., tails: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class BoneMapping(_message.Message):
    __slots__ = ("bone", "role")
    BONE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    bone: str
    role: str
    def __init__(self, bone: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class BoneMap(_message.Message):
    __slots__ = ("mappings", "unmapped_bones", "missing_roles", "warnings")
    MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    UNMAPPED_BONES_FIELD_NUMBER: _ClassVar[int]
    MISSING_ROLES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    mappings: _containers.RepeatedCompositeFieldContainer[BoneMapping]
    unmapped_bones: _containers.RepeatedScalarFieldContainer[str]
    missing_roles: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, mappings: _Optional[_Iterable[_Union[BoneMapping, _Mapping]]] = ..., unmapped_bones: _Optional[_Iterable[str]] = ..., missing_roles: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class MapBonesRequest(_message.Message):
    __slots__ = ("rig",)
    RIG_FIELD_NUMBER: _ClassVar[int]
    rig: Rig
    def __init__(self, rig: _Optional[_Union[Rig, _Mapping]] = ...) -> None: ...

class MotionSource(_message.Message):
    __slots__ = ("clip_artifact_id", "bvh_artifact_id", "bvh_path", "capture_job_id", "bvh_scale")
    CLIP_ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    BVH_ARTIFACT_ID_FIELD_NUMBER: _ClassVar[int]
    BVH_PATH_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_JOB_ID_FIELD_NUMBER: _ClassVar[int]
    BVH_SCALE_FIELD_NUMBER: _ClassVar[int]
    clip_artifact_id: str
    bvh_artifact_id: str
    bvh_path: str
    capture_job_id: str
    bvh_scale: float
    def __init__(self, clip_artifact_id: _Optional[str] = ..., bvh_artifact_id: _Optional[str] = ..., bvh_path: _Optional[str] = ..., capture_job_id: _Optional[str] = ..., bvh_scale: _Optional[float] = ...) -> None: ...

class RetargetRequest(_message.Message):
    __slots__ = ("source", "rig", "bone_map", "root_motion", "foot_lock", "face_map", "request_id", "frame_range")
    class FaceMapEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    RIG_FIELD_NUMBER: _ClassVar[int]
    BONE_MAP_FIELD_NUMBER: _ClassVar[int]
    ROOT_MOTION_FIELD_NUMBER: _ClassVar[int]
    FOOT_LOCK_FIELD_NUMBER: _ClassVar[int]
    FACE_MAP_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_RANGE_FIELD_NUMBER: _ClassVar[int]
    source: MotionSource
    rig: Rig
    bone_map: BoneMap
    root_motion: RootMotion
    foot_lock: bool
    face_map: _containers.ScalarMap[str, str]
    request_id: str
    frame_range: _common_pb2.FrameRange
    def __init__(self, source: _Optional[_Union[MotionSource, _Mapping]] = ..., rig: _Optional[_Union[Rig, _Mapping]] = ..., bone_map: _Optional[_Union[BoneMap, _Mapping]] = ..., root_motion: _Optional[_Union[RootMotion, str]] = ..., foot_lock: bool = ..., face_map: _Optional[_Mapping[str, str]] = ..., request_id: _Optional[str] = ..., frame_range: _Optional[_Union[_common_pb2.FrameRange, _Mapping]] = ...) -> None: ...

class RigAnimation(_message.Message):
    __slots__ = ("bone_names", "fps", "times", "rotations", "root_bone", "root_location", "root_position", "shape_key_names", "shape_key_weights")
    BONE_NAMES_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    ROTATIONS_FIELD_NUMBER: _ClassVar[int]
    ROOT_BONE_FIELD_NUMBER: _ClassVar[int]
    ROOT_LOCATION_FIELD_NUMBER: _ClassVar[int]
    ROOT_POSITION_FIELD_NUMBER: _ClassVar[int]
    SHAPE_KEY_NAMES_FIELD_NUMBER: _ClassVar[int]
    SHAPE_KEY_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    bone_names: _containers.RepeatedScalarFieldContainer[str]
    fps: float
    times: _common_pb2.Tensor
    rotations: _common_pb2.Tensor
    root_bone: str
    root_location: _common_pb2.Tensor
    root_position: _common_pb2.Tensor
    shape_key_names: _containers.RepeatedScalarFieldContainer[str]
    shape_key_weights: _common_pb2.Tensor
    def __init__(self, bone_names: _Optional[_Iterable[str]] = ..., fps: _Optional[float] = ..., times: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., rotations: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., root_bone: _Optional[str] = ..., root_location: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., root_position: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., shape_key_names: _Optional[_Iterable[str]] = ..., shape_key_weights: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class RetargetResult(_message.Message):
    __slots__ = ("animation", "bvh", "bone_map", "warnings", "frames")
    ANIMATION_FIELD_NUMBER: _ClassVar[int]
    BVH_FIELD_NUMBER: _ClassVar[int]
    BONE_MAP_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    animation: _common_pb2.ArtifactRef
    bvh: _common_pb2.ArtifactRef
    bone_map: BoneMap
    warnings: _containers.RepeatedScalarFieldContainer[str]
    frames: int
    def __init__(self, animation: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., bvh: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., bone_map: _Optional[_Union[BoneMap, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ..., frames: _Optional[int] = ...) -> None: ...
