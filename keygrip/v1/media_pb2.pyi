from keygrip.v1 import common_pb2 as _common_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProbeMediaRequest(_message.Message):
    __slots__ = ("input", "request_id", "thumbnail_max_side")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    input: _common_pb2.MediaInput
    request_id: str
    thumbnail_max_side: int
    def __init__(self, input: _Optional[_Union[_common_pb2.MediaInput, _Mapping]] = ..., request_id: _Optional[str] = ..., thumbnail_max_side: _Optional[int] = ...) -> None: ...

class ProbeMediaResult(_message.Message):
    __slots__ = ("fps", "frame_count", "duration_seconds", "codec", "width", "height", "rotation_degrees", "variable_frame_rate", "is_image_sequence", "has_audio", "pixel_format", "thumbnail")
    FPS_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ROTATION_DEGREES_FIELD_NUMBER: _ClassVar[int]
    VARIABLE_FRAME_RATE_FIELD_NUMBER: _ClassVar[int]
    IS_IMAGE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HAS_AUDIO_FIELD_NUMBER: _ClassVar[int]
    PIXEL_FORMAT_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    fps: float
    frame_count: int
    duration_seconds: float
    codec: str
    width: int
    height: int
    rotation_degrees: int
    variable_frame_rate: bool
    is_image_sequence: bool
    has_audio: bool
    pixel_format: str
    thumbnail: _common_pb2.ArtifactRef
    def __init__(self, fps: _Optional[float] = ..., frame_count: _Optional[int] = ..., duration_seconds: _Optional[float] = ..., codec: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., rotation_degrees: _Optional[int] = ..., variable_frame_rate: bool = ..., is_image_sequence: bool = ..., has_audio: bool = ..., pixel_format: _Optional[str] = ..., thumbnail: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ...) -> None: ...
