from keygrip.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FrameFlag(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAME_FLAG_UNSPECIFIED: _ClassVar[FrameFlag]
    FRAME_FLAG_TRACKED: _ClassVar[FrameFlag]
    FRAME_FLAG_INTERPOLATED: _ClassVar[FrameFlag]
    FRAME_FLAG_MISSING: _ClassVar[FrameFlag]
FRAME_FLAG_UNSPECIFIED: FrameFlag
FRAME_FLAG_TRACKED: FrameFlag
FRAME_FLAG_INTERPOLATED: FrameFlag
FRAME_FLAG_MISSING: FrameFlag

class Skeleton(_message.Message):
    __slots__ = ("joint_names", "parents", "rest_offsets", "rest_rotations")
    JOINT_NAMES_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    REST_OFFSETS_FIELD_NUMBER: _ClassVar[int]
    REST_ROTATIONS_FIELD_NUMBER: _ClassVar[int]
    joint_names: _containers.RepeatedScalarFieldContainer[str]
    parents: _containers.RepeatedScalarFieldContainer[int]
    rest_offsets: _common_pb2.Tensor
    rest_rotations: _common_pb2.Tensor
    def __init__(self, joint_names: _Optional[_Iterable[str]] = ..., parents: _Optional[_Iterable[int]] = ..., rest_offsets: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., rest_rotations: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ...) -> None: ...

class MotionClip(_message.Message):
    __slots__ = ("skeleton", "fps", "times", "rotations", "root_translation", "confidence", "frame_flags", "contact_names", "contacts", "face_curve_names", "face_curves", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SKELETON_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    TIMES_FIELD_NUMBER: _ClassVar[int]
    ROTATIONS_FIELD_NUMBER: _ClassVar[int]
    ROOT_TRANSLATION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    FRAME_FLAGS_FIELD_NUMBER: _ClassVar[int]
    CONTACT_NAMES_FIELD_NUMBER: _ClassVar[int]
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    FACE_CURVE_NAMES_FIELD_NUMBER: _ClassVar[int]
    FACE_CURVES_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    skeleton: Skeleton
    fps: float
    times: _common_pb2.Tensor
    rotations: _common_pb2.Tensor
    root_translation: _common_pb2.Tensor
    confidence: _common_pb2.Tensor
    frame_flags: _common_pb2.Tensor
    contact_names: _containers.RepeatedScalarFieldContainer[str]
    contacts: _common_pb2.Tensor
    face_curve_names: _containers.RepeatedScalarFieldContainer[str]
    face_curves: _common_pb2.Tensor
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, skeleton: _Optional[_Union[Skeleton, _Mapping]] = ..., fps: _Optional[float] = ..., times: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., rotations: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., root_translation: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., confidence: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., frame_flags: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., contact_names: _Optional[_Iterable[str]] = ..., contacts: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., face_curve_names: _Optional[_Iterable[str]] = ..., face_curves: _Optional[_Union[_common_pb2.Tensor, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...
