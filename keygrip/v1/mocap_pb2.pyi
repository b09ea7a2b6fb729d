from keygrip.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CaptureMotionRequest(_message.Message):
    __slots__ = ("input", "frame_range", "fps_override", "hands", "face", "smoothing", "foot_lock", "root_motion", "subject_height_m", "focal_length_px", "fov_degrees", "preview", "request_id", "workers")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    FRAME_RANGE_FIELD_NUMBER: _ClassVar[int]
    FPS_OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    HANDS_FIELD_NUMBER: _ClassVar[int]
    FACE_FIELD_NUMBER: _ClassVar[int]
    SMOOTHING_FIELD_NUMBER: _ClassVar[int]
    FOOT_LOCK_FIELD_NUMBER: _ClassVar[int]
    ROOT_MOTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_HEIGHT_M_FIELD_NUMBER: _ClassVar[int]
    FOCAL_LENGTH_PX_FIELD_NUMBER: _ClassVar[int]
    FOV_DEGREES_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    input: _common_pb2.MediaInput
    frame_range: _common_pb2.FrameRange
    fps_override: float
    hands: bool
    face: bool
    smoothing: float
    foot_lock: bool
    root_motion: bool
    subject_height_m: float
    focal_length_px: float
    fov_degrees: float
    preview: bool
    request_id: str
    workers: int
    def __init__(self, input: _Optional[_Union[_common_pb2.MediaInput, _Mapping]] = ..., frame_range: _Optional[_Union[_common_pb2.FrameRange, _Mapping]] = ..., fps_override: _Optional[float] = ..., hands: bool = ..., face: bool = ..., smoothing: _Optional[float] = ..., foot_lock: bool = ..., root_motion: bool = ..., subject_height_m: _Optional[float] = ..., focal_length_px: _Optional[float] = ..., fov_degrees: _Optional[float] = ..., preview: bool = ..., request_id: _Optional[str] = ..., workers: _Optional[int] = ...) -> None: ...

class CaptureSummary(_message.Message):
    __slots__ = ("frames", "tracked_frames", "interpolated_frames", "missing_frames", "processing_fps", "stage_seconds")
    class StageSecondsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    TRACKED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    INTERPOLATED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MISSING_FRAMES_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_FPS_FIELD_NUMBER: _ClassVar[int]
    STAGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    frames: int
    tracked_frames: int
    interpolated_frames: int
    missing_frames: int
    processing_fps: float
    stage_seconds: _containers.ScalarMap[str, float]
    def __init__(self, frames: _Optional[int] = ..., tracked_frames: _Optional[int] = ..., interpolated_frames: _Optional[int] = ..., missing_frames: _Optional[int] = ..., processing_fps: _Optional[float] = ..., stage_seconds: _Optional[_Mapping[str, float]] = ...) -> None: ...

class CaptureMotionResult(_message.Message):
    __slots__ = ("clip", "bvh", "landmarks", "preview", "summary")
    CLIP_FIELD_NUMBER: _ClassVar[int]
    BVH_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    clip: _common_pb2.ArtifactRef
    bvh: _common_pb2.ArtifactRef
    landmarks: _common_pb2.ArtifactRef
    preview: _common_pb2.ArtifactRef
    summary: CaptureSummary
    def __init__(self, clip: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., bvh: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., landmarks: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., preview: _Optional[_Union[_common_pb2.ArtifactRef, _Mapping]] = ..., summary: _Optional[_Union[CaptureSummary, _Mapping]] = ...) -> None: ...
