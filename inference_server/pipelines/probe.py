"""The probe_media job: facts about a clip plus a poster-frame thumbnail."""

from __future__ import annotations

from google.protobuf import any_pb2

from inference_server.jobs.workers import WorkerContext
from inference_server.services.artifacts import artifact_ref
from inference_server.services.inputs import local_path
from keygrip.v1 import media_pb2


def run(request: any_pb2.Any, ctx: WorkerContext) -> media_pb2.ProbeMediaResult:
    from inference_server.media import video

    req = media_pb2.ProbeMediaRequest()
    request.Unpack(req)
    path = local_path(ctx.artifacts, req.input)
    ctx.progress("probe", 0, 2, "reading the container")
    info = video.probe(path)
    ctx.check_cancelled()
    ctx.progress("probe", 1, 2, "rendering the poster frame")
    png = video.poster_frame_png(path, max_side=req.thumbnail_max_side or 256)
    thumb = ctx.put_bytes(png, "poster.png", "image/png")
    ctx.progress("probe", 2, 2, "done")
    return media_pb2.ProbeMediaResult(
        fps=info.fps, frame_count=info.frame_count, duration_seconds=info.duration_s, codec=info.codec,
        width=info.width, height=info.height, rotation_degrees=info.rotation_deg,
        variable_frame_rate=info.variable_frame_rate, is_image_sequence=info.is_image_sequence,
        has_audio=info.has_audio, pixel_format=info.pixel_format, thumbnail=artifact_ref(thumb),
    )
