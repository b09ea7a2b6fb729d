"""The motion_capture job (video in; MotionClip, BVH, raw landmarks and a QA preview out) and the
detect_people job (video in; every person in it as a track with a thumbnail)."""

from __future__ import annotations

import dataclasses
import importlib
import io
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from google.protobuf import message

from inference_server.capability import JobHandler
from inference_server.errors import InvalidInput
from inference_server.jobs.context import JobContext
from inference_server.jobs.failures import JobInput, describe_media
from inference_server.mocap.options import options_from_request

if TYPE_CHECKING:
    from inference_server.mocap.capture import MocapOutput
    from inference_server.mocap.people import People
from inference_server.motion.clip import FrameFlag
from inference_server.store.artifacts import ArtifactStore, artifact_ref, input_fingerprint, input_name, local_path
from keygrip.v1 import mocap_pb2


class CaptureHandler(JobHandler[mocap_pb2.CaptureMotionRequest]):
    """Runs capture.run_mocap and stores its results as artifacts.

    What it keeps between jobs is the loaded libraries (MediaPipe, PyAV, OpenCV, SciPy), imported
    once in setup(). MediaPipe graphs are not kept: a tracking graph carries state over from the
    clip before (results would depend on the previous job), and a fresh one costs about 10 ms to
    build while its models load on the first frame either way (reset() measured no faster).
    """

    request_type = mocap_pb2.CaptureMotionRequest

    def setup(self) -> None:
        importlib.import_module("mediapipe")
        importlib.import_module("inference_server.mocap.capture")

    def describe(self, request: mocap_pb2.CaptureMotionRequest, artifacts: ArtifactStore | None) -> JobInput:
        return describe_media(request.input, artifacts, "capturing", "footage",
                              smaller="a shorter frame range (start and end frame), or without hands and face")

    def run(self, request: mocap_pb2.CaptureMotionRequest, ctx: JobContext) -> mocap_pb2.CaptureMotionResult:
        from inference_server.mocap.capture import run_mocap, run_mocap_everyone

        path = local_path(ctx.artifacts, request.input, ctx.scratch)
        options = options_from_request(request)
        name = self.describe(request, ctx.artifacts).name
        people = self._people(request, path, ctx, name) if request.HasField("people_tracks") else None
        if not options.everyone:
            out = run_mocap(path, options, ctx, out_dir=ctx.scratch, name=name, people=people)
            result = mocap_pb2.CaptureMotionResult(subject_id=out.subject_id)
            self._store(out, request, path, ctx, result, "", name)
            return result
        people, outputs, missed = run_mocap_everyone(path, options, ctx, out_dir=ctx.scratch, name=name,
                                                     people=people)
        result = mocap_pb2.CaptureMotionResult(subject_id=outputs[0].subject_id)
        for out in outputs:
            person = result.people.add(subject_id=out.subject_id,
                                       thumbnail_png=people.thumbnails.get(out.subject_id, b""))
            self._store(out, request, path, ctx, person, f"person{out.subject_id}_", name)
        # The top-level fields name the first person's files, stored once above.
        first = result.people[0]
        for field in ("clip", "bvh", "landmarks", "preview", "summary"):
            if first.HasField(field):
                getattr(result, field).CopyFrom(getattr(first, field))
        result.warnings.extend(first.warnings)
        result.warnings.extend(missed)  # people the detector found whom no capture could follow
        return result

    @staticmethod
    def _people(request: mocap_pb2.CaptureMotionRequest, path: Path, ctx: JobContext, name: str) -> People:
        """DetectPeople's tracks the request names (people_tracks), checked against its input and frames."""
        from inference_server.mocap.people import people_from_proto

        digest = request.people_tracks.id
        try:
            tracks = mocap_pb2.PeopleTracks.FromString(ctx.artifacts.read_bytes(digest))
        except message.DecodeError:
            raise InvalidInput(f"people_tracks {digest} is not a PeopleTracks artifact: pass the tracks of a "
                               "DetectPeopleResult.", reason="PEOPLE_TRACKS_MISMATCH") from None
        end = request.frame_range.end or None
        return people_from_proto(tracks, path, input_fingerprint(request.input), request.frame_range.start, end, name)

    @staticmethod
    def _store(out: MocapOutput, request: mocap_pb2.CaptureMotionRequest, path: Path, ctx: JobContext,
               result: mocap_pb2.CaptureMotionResult | mocap_pb2.PersonCapture, prefix: str, name: str) -> None:
        """One capture's clip, BVH, landmarks, preview, summary and warnings into a result message.
        name: the footage as the user knows it (its camera's video, for a host to load as background)."""
        from inference_server.media.video import gap_warnings
        from inference_server.motion.bvh import write_bvh
        from inference_server.motion.wire import clip_to_proto

        clip = out.clip
        # The source's frame number of the clip's first frame (1001 for a plate from 1001), for hosts to key from.
        numbers = out.landmarks.frame_indices
        first_frame = int(numbers[0])
        clip.metadata.update({"source": input_name(request.input), "job_id": ctx.job_id,
                              "first_frame": str(first_frame)})
        if out.subject_id:
            clip.metadata["subject_id"] = str(out.subject_id)
        video = PurePath(name).name
        clip.cameras = [dataclasses.replace(c, name=PurePath(video).stem or c.name, video=video) for c in clip.cameras]
        ctx.progress("export", 0, 3, "writing results")
        result.warnings.extend(gap_warnings(path, first_frame, int(numbers[-1])))
        result.clip.CopyFrom(artifact_ref(ctx.put_bytes(clip_to_proto(clip).SerializeToString(),
                                                        f"{prefix}clip.keygrip-clip", "application/x-protobuf")))
        bvh = io.StringIO()
        write_bvh(clip, bvh)
        result.bvh.CopyFrom(artifact_ref(ctx.put_bytes(bvh.getvalue().encode(), f"{prefix}clip.bvh",
                                                       "application/x-bvh")))
        npz = ctx.scratch / f"{prefix}landmarks.npz"
        out.landmarks.save_npz(npz)
        result.landmarks.CopyFrom(artifact_ref(ctx.put_file(npz, f"{prefix}landmarks.npz", "application/x-npz")))
        if out.preview_path is not None:
            result.preview.CopyFrom(artifact_ref(ctx.put_file(out.preview_path, f"{prefix}preview.mp4",
                                                              "video/mp4")))
        ctx.progress("export", 3, 3, "done")
        flags = clip.frame_flags
        s = result.summary
        s.frames = clip.num_frames
        s.first_frame = first_frame
        s.tracked_frames = int((flags == FrameFlag.TRACKED).sum())
        s.interpolated_frames = int((flags == FrameFlag.INTERPOLATED).sum())
        s.missing_frames = int((flags == FrameFlag.MISSING).sum())
        total = out.timings.get("total", 0.0)
        s.processing_fps = clip.num_frames / total if total > 0 else 0.0
        s.stage_seconds.update(out.timings)
        # Steps the solver skipped or limited (a short clip, a low frame rate, no face found).
        result.warnings.extend(clip.warnings)


class DetectPeopleHandler(JobHandler[mocap_pb2.DetectPeopleRequest]):
    """Runs people.find_people: every person in the frames, with an id that holds through the clip."""

    request_type = mocap_pb2.DetectPeopleRequest

    def setup(self) -> None:
        importlib.import_module("mediapipe")
        importlib.import_module("inference_server.mocap.people")

    def describe(self, request: mocap_pb2.DetectPeopleRequest, artifacts: ArtifactStore | None) -> JobInput:
        return describe_media(request.input, artifacts, "looking for people in", "footage",
                              smaller="a shorter frame range (start and end frame)")

    def run(self, request: mocap_pb2.DetectPeopleRequest, ctx: JobContext) -> mocap_pb2.DetectPeopleResult:
        from inference_server.mocap.people import DEFAULT_MAX_PEOPLE, find_people, person_track

        path = local_path(ctx.artifacts, request.input, ctx.scratch)
        people = find_people(path, start=request.frame_range.start, end=request.frame_range.end or None,
                             max_people=request.max_people or DEFAULT_MAX_PEOPLE, ctx=ctx,
                             name=self.describe(request, ctx.artifacts).name, small_people=request.small_people)
        w, h = people.image_size
        tracks = people.to_proto(input_fingerprint(request.input)).SerializeToString()
        result = mocap_pb2.DetectPeopleResult(
            frames=len(people.frames), first_frame=int(people.frames[0]), width=w, height=h,
            processing_fps=len(people.frames) / people.seconds if people.seconds > 0 else 0.0,
            warnings=people.warnings,
            tracks=artifact_ref(ctx.put_bytes(tracks, "people.keygrip-people", "application/x-protobuf")))
        for t in people.tracks:
            person = result.people.add()
            person.CopyFrom(person_track(t, len(people.frames)))
            person.thumbnail_png = people.thumbnails.get(t.id, b"")
            person.thumbnail_frame = people.thumbnail_frames.get(t.id, t.frames[0])
        return result
