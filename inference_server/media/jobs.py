"""The probe_media job: facts about a clip plus a poster-frame thumbnail."""

from __future__ import annotations

import importlib

from inference_server.capability import JobHandler
from inference_server.jobs.context import JobContext
from inference_server.jobs.failures import JobInput, describe_media
from inference_server.store.artifacts import ArtifactStore, artifact_ref, local_path
from keygrip.v1 import common_pb2, media_pb2


class ProbeHandler(JobHandler[media_pb2.ProbeMediaRequest]):
    request_type = media_pb2.ProbeMediaRequest

    def setup(self) -> None:
        # PyAV and OpenCV load once per worker, before the first job's clock starts.
        importlib.import_module("inference_server.media.video")

    def describe(self, request: media_pb2.ProbeMediaRequest, artifacts: ArtifactStore | None) -> JobInput:
        return describe_media(request.input, artifacts, "probing", "footage")

    def run(self, request: media_pb2.ProbeMediaRequest, ctx: JobContext) -> media_pb2.ProbeMediaResult:
        from inference_server.media import video

        path = local_path(ctx.artifacts, request.input, ctx.scratch)
        ctx.progress("probe", 0, 2, "reading the container")
        info = video.probe(path)
        ctx.check_cancelled()
        ctx.progress("probe", 1, 2, "rendering the poster frame")
        png = video.poster_frame_png(path, max_side=request.thumbnail_max_side or 256)
        thumb = ctx.put_bytes(png, "poster.png", "image/png")
        ctx.progress("probe", 2, 2, "done")
        return media_pb2.ProbeMediaResult(
            fps=info.fps, frame_count=info.frame_count, duration_seconds=info.duration_s, codec=info.codec,
            width=info.width, height=info.height, rotation_degrees=info.rotation_deg,
            variable_frame_rate=info.variable_frame_rate, is_image_sequence=info.is_image_sequence,
            has_audio=info.has_audio, pixel_format=info.pixel_format, thumbnail=artifact_ref(thumb),
            first_frame=info.first_frame, sequence_pattern=info.sequence_pattern,
            missing_frames=[common_pb2.FrameRange(start=a, end=b) for a, b in info.missing_frames],
        )
