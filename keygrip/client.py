"""The blocking Python client. Hosts call it from a worker thread; scripts call it directly.

Every call raises a keygrip.errors exception (never a raw grpc.RpcError) with the server's message.

A capability's SDK surface is one method here: build its request, then
`self._submit(self.stub(<service>Stub).<Method>, request)`. Stubs are made on first use, and a job's
result message is found by its type name in the protobuf descriptor pool, so nothing else lists it.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, Union

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf import message as pb_message

from keygrip import errors, events, sequences
from keygrip.v1 import (
    animation_pb2,
    animation_pb2_grpc,
    artifacts_pb2,
    artifacts_pb2_grpc,
    calibrate_pb2,
    calibrate_pb2_grpc,
    common_pb2,
    compositing_pb2,
    compositing_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    media_pb2,
    media_pb2_grpc,
    mocap_pb2,
    mocap_pb2_grpc,
    motion_pb2,
    multicam_pb2,
    multicam_pb2_grpc,
    scene_pb2,
    scene_pb2_grpc,
    server_pb2,
    server_pb2_grpc,
)

DEFAULT_ADDRESS = "127.0.0.1:50051"
CHUNK_BYTES = 2 * 1024 * 1024
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
STREAM_HASH_MIN_BYTES = 64 * 1024 * 1024
# Where a multi-camera capture's floor and up axis come from (multicam_pb2.FloorSource, by name).
FLOOR_SOURCES = ("auto", "calibration", "feet")
# (path, size, mtime, inode) -> sha256 of files this process hashed, uploaded or downloaded: a file seen
# before and unchanged since is not read again (a re-send is skipped, a re-run download keeps it).
_DIGESTS: dict[tuple[str, int, int, int], str] = {}
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)
_ENDED = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED)

ProgressCallback = Callable[[int, int], None]
# A file, an image sequence (a pattern such as plate.####.png, a folder of frames, a first frame, or a
# Sequence already found), an artifact already on the server, or an input media_input() made before
# (to probe and capture one upload). typing.Union: evaluated on Python 3.9 too.
Source = Union[str, "os.PathLike[str]", common_pb2.ArtifactRef, sequences.Sequence, common_pb2.MediaInput]
M = TypeVar("M", bound=pb_message.Message)
R = TypeVar("R", bound=pb_message.Message)
S = TypeVar("S")


class _JobRequest(Protocol):
    """What every capability's job request has (a message with request_id and job_options fields)."""

    request_id: str

    @property
    def job_options(self) -> common_pb2.JobOptions: ...  # a message field: set inside, never replaced

    def SerializeToString(self) -> bytes: ...  # noqa: N802 - protobuf's name


def message_class(full_name: str) -> type[pb_message.Message]:
    """The generated class of a message type by its full name ("keygrip.v1.CaptureMotionResult").

    Every keygrip.v1 module the SDK imports registers its types in the default descriptor pool, so a
    new capability's result is found here without being listed anywhere.
    """
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    except KeyError:
        raise errors.KeygripError(f"this SDK does not know the message type {full_name!r}; "
                                  "update the Keygrip SDK to match the server") from None
    return message_factory.GetMessageClass(descriptor)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            h.update(block)
    return h.hexdigest()


def _file_key(path: Path, st: os.stat_result) -> tuple[str, int, int, int]:
    return str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino


def known_sha256(path: str | os.PathLike) -> str:
    """sha256_file, read once per process: a file this process hashed, uploaded or downloaded and that
    has not changed since (same size, modification time and inode) is not read again."""
    path = Path(path)
    key = _file_key(path, path.stat())
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = _DIGESTS[key] = sha256_file(path)
    return digest


class _ThreadedHash:
    """sha256 computed on a helper thread (hashlib releases the GIL), overlapping the receive loop."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=32)
        self._thread = threading.Thread(target=self._run, name="keygrip-hash", daemon=True)

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            self._hash.update(data)

    def __enter__(self) -> _ThreadedHash:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()

    def update(self, data: bytes) -> None:
        self._queue.put(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def find_local_sequence(path: str | os.PathLike[str]) -> sequences.Sequence | None:
    """The image sequence a local path names (pattern, folder or first frame), or None for one file.

    Raises NotFound when a pattern matches no file and InvalidArgument for a folder that holds no
    numbered sequence or several; the message names the folder and the pattern searched.
    """
    try:
        return sequences.find_sequence(path)
    except sequences.SequenceNotFound as exc:
        raise errors.NotFound(str(exc), reason="NO_FRAMES") from None
    except sequences.SequenceError as exc:
        raise errors.InvalidArgument(str(exc)) from None


class _Chunks:
    """A file's chunks from an offset, for one Upload stream. A progress callback that raises (a cancel)
    ends the stream after the chunks already handed over, so the server keeps them for a resume; the
    exception is kept in `stopped` and raised by the caller once the stream has closed."""

    def __init__(self, path: Path, upload_id: str, offset: int, chunk: int, size: int,
                 progress: ProgressCallback | None) -> None:
        self.path, self.upload_id, self.offset, self.chunk, self.size = path, upload_id, offset, chunk, size
        self.progress = progress
        self.start = offset
        self.stopped: BaseException | None = None

    def __iter__(self) -> Iterator[artifacts_pb2.UploadChunk]:
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            while data := fh.read(self.chunk):
                yield artifacts_pb2.UploadChunk(upload_id=self.upload_id, offset=self.offset, data=data)
                self.offset += len(data)
                if self.progress:
                    try:
                        self.progress(self.offset, self.size)
                    except BaseException as exc:  # noqa: BLE001 - raised again once the stream is closed
                        self.stopped = exc
                        return

    @property
    def sent(self) -> int:
        return self.offset - self.start


@dataclass(frozen=True)
class Uploaded:
    """What one upload did: the artifact, and how many bytes went over the wire for it (0: the server
    had it; less than its size: a broken upload resumed)."""

    artifact: common_pb2.ArtifactRef
    sent_bytes: int


@dataclass
class SequenceUpload:
    """What uploading a sequence's frames did: the ImageSequence a MediaInput names, which frames were
    sent (wholly or resumed) and which the server already held, and the bytes sent of the bytes in all."""

    sequence: common_pb2.ImageSequence
    sent_frames: list[int] = field(default_factory=list)
    skipped_frames: list[int] = field(default_factory=list)
    sent_bytes: int = 0
    total_bytes: int = 0

    @property
    def media_input(self) -> common_pb2.MediaInput:
        return common_pb2.MediaInput(sequence=self.sequence)


class Client:
    """A connection to one Keygrip server.

    address: "host:port" or "unix:///path/to/socket". token: sent as "authorization: Bearer ..."
    when given. root_certificates: PEM bytes to connect with TLS.
    """

    def __init__(self, address: str | None = None, token: str | None = None, *,
                 root_certificates: bytes | None = None, timeout: float = 30.0) -> None:
        self.address = address or os.environ.get("KEYGRIP_ADDRESS") or DEFAULT_ADDRESS
        token = token if token is not None else os.environ.get("KEYGRIP_TOKEN")
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
        if root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates)
            self._channel = grpc.secure_channel(self.address, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(self.address, options=options)
        self._stubs: dict[object, object] = {}

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def stub(self, stub_class: Callable[[grpc.Channel], S]) -> S:
        """The generated stub of a service on this client's channel (made once, on first use).

            client.call(client.stub(media_pb2_grpc.MediaStub).ProbeMedia, request)
        """
        stub = self._stubs.get(stub_class)
        if stub is None:
            stub = self._stubs[stub_class] = stub_class(self._channel)
        return stub  # type: ignore[return-value]  # keyed by its own class

    # The spine's services, which every capability's jobs and artifacts go through.
    @property
    def jobs_stub(self) -> jobs_pb2_grpc.JobsStub:
        return self.stub(jobs_pb2_grpc.JobsStub)

    @property
    def artifacts_stub(self) -> artifacts_pb2_grpc.ArtifactsStub:
        return self.stub(artifacts_pb2_grpc.ArtifactsStub)

    @property
    def server_stub(self) -> server_pb2_grpc.ServerStub:
        return self.stub(server_pb2_grpc.ServerStub)

    def call(self, method: Callable[..., Any], request: object, *, timeout: float | None = None) -> Any:
        """Invoke a unary stub method with auth and error mapping (for calls not wrapped below)."""
        try:
            return method(request, metadata=self._metadata, timeout=timeout or self.timeout)
        except grpc.RpcError as err:
            raise errors.from_rpc_error(err, self.address) from None

    def _submit(self, method: Callable[..., Any], request: _JobRequest, requeue: bool = True) -> Job[Any]:
        """Submit a job through a capability's rpc (one that answers with a Job). A request without a
        request_id (the server's idempotency key) gets a fresh one. requeue=False: the job runs at most
        once (a crash under it fails it instead of running it again; JobOptions.no_requeue)."""
        if not request.request_id:
            request.request_id = uuid.uuid4().hex
        if not requeue:
            request.job_options.no_requeue = True
        return Job(self, self.call(method, request))

    # Discovery -----------------------------------------------------------------------------

    def info(self) -> server_pb2.ServerInfo:
        return self.call(self.server_stub.GetServerInfo, server_pb2.GetServerInfoRequest())

    # Artifacts -----------------------------------------------------------------------------

    def upload(self, path: str | os.PathLike, *, name: str | None = None, media_type: str | None = None,
               progress: ProgressCallback | None = None, retries: int = 5) -> common_pb2.ArtifactRef:
        """Upload a file; skipped when the server already holds its digest, resumed after a break.

        Small files are hashed first, so that content the server has is never sent. A big file
        seen for the first time is sent unhashed (hashing first would cost as long as the
        transfer): the server hashes it on arrival, and the digest it returns is remembered, so
        sending the same unchanged file again is skipped. A progress callback that raises stops the
        upload where it is (the server keeps what arrived, for the next try) and its exception
        propagates.
        """
        return self.upload_file(path, name=name, media_type=media_type, progress=progress, retries=retries).artifact

    def upload_file(self, path: str | os.PathLike, *, name: str | None = None, media_type: str | None = None,
                    progress: ProgressCallback | None = None, retries: int = 5) -> Uploaded:
        """upload(), saying how many bytes were sent (0 when the server already held the file)."""
        path = Path(path)
        if not path.is_file():
            raise errors.InvalidArgument(f"{path} is not a file")
        st = path.stat()
        key = _file_key(path, st)
        digest = _DIGESTS.get(key)
        if digest is None and st.st_size < STREAM_HASH_MIN_BYTES:
            digest = sha256_file(path)
        start = artifacts_pb2.StartUploadRequest(
            sha256=digest or "", size=st.st_size, name=name or path.name,
            media_type=media_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        upload_id = ""
        sent = 0
        for attempt in range(retries + 1):
            try:
                if upload_id and not digest:
                    start = artifacts_pb2.StartUploadRequest(upload_id=upload_id)
                status = self.artifacts_stub.StartUpload(start, metadata=self._metadata, timeout=self.timeout)
                upload_id = status.upload_id
                if not status.complete:
                    chunk = min(CHUNK_BYTES, status.max_chunk_bytes or CHUNK_BYTES)
                    chunks = _Chunks(path, upload_id, status.offset, chunk, st.st_size, progress)
                    try:
                        status = self.artifacts_stub.Upload(iter(chunks), metadata=self._metadata)
                    finally:
                        sent += chunks.sent
                    if chunks.stopped is not None:
                        raise chunks.stopped
                if status.complete:
                    _DIGESTS[key] = status.artifact.id
                    if progress:
                        progress(st.st_size, st.st_size)
                    return Uploaded(status.artifact, sent)
            except grpc.RpcError as err:
                if err.code() not in _RETRYABLE or attempt == retries:
                    raise errors.from_rpc_error(err, self.address) from None
                time.sleep(min(2.0, 0.2 * 2**attempt))
        raise errors.ServerUnavailable(f"upload of {path} did not complete after {retries} retries")

    def stat(self, artifact_id: str) -> common_pb2.ArtifactRef:
        return self.call(self.artifacts_stub.Stat, artifacts_pb2.StatRequest(artifact_id=artifact_id))

    def download(self, artifact_id: str, dest: str | os.PathLike, *, retries: int = 5,
                 progress: ProgressCallback | None = None) -> Path:
        """Download to a file (written beside it, then renamed), resuming after a broken connection.

        The bytes are hashed as they arrive and checked against the artifact id before the rename.
        """
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        hasher = _ThreadedHash()
        offset = 0
        try:
            with hasher, open(part, "wb") as fh:
                for attempt in range(retries + 1):
                    try:
                        stream = self.artifacts_stub.Download(
                            artifacts_pb2.DownloadRequest(artifact_id=artifact_id, offset=offset,
                                                          chunk_bytes=CHUNK_BYTES),
                            metadata=self._metadata)
                        for chunk in stream:
                            fh.write(chunk.data)
                            hasher.update(chunk.data)
                            offset += len(chunk.data)
                            if progress:
                                progress(offset, chunk.total_size)  # may raise to stop (a cancel)
                        break
                    except grpc.RpcError as err:
                        if err.code() not in _RETRYABLE or attempt == retries:
                            raise errors.from_rpc_error(err, self.address) from None
                        time.sleep(min(2.0, 0.2 * 2**attempt))
        except BaseException:
            part.unlink(missing_ok=True)  # however it ended early, leave no partial file behind
            raise
        if hasher.hexdigest() != artifact_id:
            part.unlink(missing_ok=True)
            raise errors.KeygripError(f"downloaded bytes of {artifact_id[:12]} do not match their digest")
        os.replace(part, dest)
        _DIGESTS[_file_key(dest, dest.stat())] = artifact_id
        return dest

    def download_bytes(self, artifact_id: str) -> bytes:
        """A small artifact in memory, checked against its digest like download()."""
        try:
            stream = self.artifacts_stub.Download(artifacts_pb2.DownloadRequest(artifact_id=artifact_id),
                                                  metadata=self._metadata)
            data = b"".join(chunk.data for chunk in stream)
        except grpc.RpcError as err:
            raise errors.from_rpc_error(err, self.address) from None
        if hashlib.sha256(data).hexdigest() != artifact_id:
            raise errors.KeygripError(f"downloaded bytes of {artifact_id[:12]} do not match their digest")
        return data

    def read_message(self, ref: common_pb2.ArtifactRef | str, cls: type[M]) -> M:
        """Download an artifact holding a serialized message (a MotionClip, a RigAnimation)."""
        message = cls()
        message.ParseFromString(self.download_bytes(ref if isinstance(ref, str) else ref.id))
        return message

    def read_clip(self, ref: common_pb2.ArtifactRef | str) -> motion_pb2.MotionClip:
        return self.read_message(ref, motion_pb2.MotionClip)

    # Jobs ------------------------------------------------------------------------------------

    def upload_sequence(self, sequence: sequences.Sequence, *, frames: Iterable[int] | None = None,
                        progress: ProgressCallback | None = None) -> common_pb2.ImageSequence:
        """Upload the frames of an image sequence (one artifact each) and name them for a MediaInput.

        frames: which frame numbers (e.g. a working range without its handles); None: all. See
        upload_frames, which also says what was sent.
        """
        return self.upload_frames(sequence, frames=frames, progress=progress).sequence

    def upload_frames(self, sequence: sequences.Sequence, *, frames: Iterable[int] | None = None,
                      progress: ProgressCallback | None = None) -> SequenceUpload:
        """Upload frames of an image sequence, deduplicated and resumable, and say what was sent.

        Each frame goes through upload_file(): a frame the server already holds (by its sha256) is not
        sent again, and one whose upload broke off resumes where the server's copy ends, so running an
        interrupted upload again sends only what is missing. Nothing assumes the server sees this
        disk. frames: the frame numbers to send (those not on disk are left out); None: all.
        progress(bytes done, bytes in all) covers the frames asked for; a callback that raises stops
        the upload (see upload()).
        """
        wanted = None if frames is None else set(frames)
        paths = [(n, p) for n, p in sequence.paths() if wanted is None or n in wanted]
        sizes = {number: path.stat().st_size for number, path in paths}
        report = SequenceUpload(common_pb2.ImageSequence(pattern=sequence.file_pattern()),
                                total_bytes=sum(sizes.values()))
        done = 0
        for number, path in paths:
            frame_progress = None
            if progress is not None:
                def frame_progress(sent: int, _size: int, base: int = done) -> None:
                    progress(base + sent, report.total_bytes)
            uploaded = self.upload_file(path, progress=frame_progress)
            report.sequence.frames.add(number=number, artifact_id=uploaded.artifact.id)
            (report.sent_frames if uploaded.sent_bytes else report.skipped_frames).append(number)
            report.sent_bytes += uploaded.sent_bytes
            done += sizes[number]
        if progress is not None and not sizes:
            progress(0, 0)
        return report

    def media_input(self, source: Source, *, server_path: bool = False,
                    progress: ProgressCallback | None = None) -> common_pb2.MediaInput:
        """What a job reads: an uploaded file or image sequence (the default), a path on the server's
        machine (server_path=True: a file, a folder of frames or a pattern, sent as is), an
        existing artifact, or an input made before (returned as is).

        An image sequence is a pattern (plate.####.png, plate.%04d.png, plate.$F4.png), a folder of
        numbered frames or the first frame's path (keygrip.sequences); its frames are uploaded one
        artifact each and sent as MediaInput.sequence with their numbers.
        """
        if isinstance(source, common_pb2.MediaInput):
            return source
        if isinstance(source, common_pb2.ArtifactRef):
            return common_pb2.MediaInput(artifact_id=source.id)
        if isinstance(source, sequences.Sequence):
            if server_path:
                return common_pb2.MediaInput(path=source.pattern())
            return common_pb2.MediaInput(sequence=self.upload_sequence(source, progress=progress))
        if server_path:
            return common_pb2.MediaInput(path=str(source))
        seq = find_local_sequence(source)
        if seq is not None:
            return common_pb2.MediaInput(sequence=self.upload_sequence(seq, progress=progress))
        return common_pb2.MediaInput(artifact_id=self.upload(source, progress=progress).id)

    # Capabilities: one method each -------------------------------------------------------------

    def probe(self, source: Source, *, server_path: bool = False, request_id: str | None = None,
              thumbnail_max_side: int = 0, requeue: bool = True,
              upload_progress: ProgressCallback | None = None) -> Job[media_pb2.ProbeMediaResult]:
        """Start a probe of a video file or image sequence (see media_input for what source may be)."""
        req = media_pb2.ProbeMediaRequest(input=self.media_input(source, server_path=server_path,
                                                                 progress=upload_progress),
                                          request_id=request_id or "", thumbnail_max_side=thumbnail_max_side)
        return self._submit(self.stub(media_pb2_grpc.MediaStub).ProbeMedia, req, requeue)

    def capture_motion(self, source: Source, *, server_path: bool = False,
                       upload_progress: ProgressCallback | None = None, requeue: bool = True,
                       **options: Any) -> Job[mocap_pb2.CaptureMotionResult]:
        """Start a motion capture. Options are CaptureMotionRequest fields: hands, face, smoothing,
        foot_lock, root_motion, subject_height_m, fov_degrees, preview, start_frame, end_frame, ...;
        subject: who to capture among several people (a person's id from detect_people, "X,Y@FRAME",
        "auto" or a mocap_pb2.Subject; see keygrip.people). people_tracks: with subject or everyone, a
        detect_people result over the same video and frames (or its .tracks, or that artifact's id): the
        capture follows those tracks, by those ids, instead of looking for the people again."""
        start, end = options.pop("start_frame", 0), options.pop("end_frame", 0)
        tracks = options.pop("people_tracks", None)
        if isinstance(tracks, mocap_pb2.DetectPeopleResult):
            options["people_tracks"] = tracks.tracks
        elif isinstance(tracks, str) and tracks:
            options["people_tracks"] = common_pb2.ArtifactRef(id=tracks)
        elif tracks:
            options["people_tracks"] = tracks
        if options.get("subject") not in (None, ""):
            from keygrip.people import subject

            options["subject"] = subject(options["subject"])
        else:
            options.pop("subject", None)
        req = mocap_pb2.CaptureMotionRequest(
            input=self.media_input(source, server_path=server_path, progress=upload_progress),
            frame_range=common_pb2.FrameRange(start=int(start), end=int(end or 0)),
            request_id=str(options.pop("request_id", "") or ""), **options)
        return self._submit(self.stub(mocap_pb2_grpc.MotionCaptureStub).CaptureMotion, req, requeue)

    def capture_multiview(self, videos: Iterable[Source], calibration: Source, *, server_path: bool = False,
                          frame_offsets: Iterable[int] | None = None, video_names: Iterable[str] | None = None,
                          floor: str = "auto", upload_progress: ProgressCallback | None = None, requeue: bool = True,
                          **options: Any) -> Job[multicam_pb2.MultiViewCaptureResult]:
        """Start a capture from several calibrated videos of one take (two at least, one per camera of
        the calibration: Pose2Sim/OpenCV TOML, Qualisys .qca.txt or keygrip JSON). frame_offsets: per
        video (None: from timecodes or the person's motion). video_names: the videos as the user knows
        them (default: their file names). floor: where the world's floor and up axis come from, one of
        FLOOR_SOURCES ("auto": the feet's where the calibration does not say or is far off; "calibration";
        "feet"). Options are MultiViewCaptureRequest fields: hands, face, smoothing, foot_lock,
        root_motion, max_side, workers, start_frame, end_frame, request_id."""
        if floor not in FLOOR_SOURCES:
            raise ValueError(f"floor must be one of {', '.join(FLOOR_SOURCES)}, not {floor!r}")
        sources = list(videos)
        start, end = options.pop("start_frame", 0), options.pop("end_frame", 0)
        names = list(video_names) if video_names is not None else [
            Path(str(v)).name for v in sources if isinstance(v, (str, os.PathLike))]
        req = multicam_pb2.MultiViewCaptureRequest(
            videos=[self.media_input(v, server_path=server_path, progress=upload_progress) for v in sources],
            calibration=self.media_input(calibration, server_path=server_path),
            frame_range=common_pb2.FrameRange(start=int(start), end=int(end or 0)),
            frame_offsets=[int(o) for o in frame_offsets or ()],
            video_names=names if len(names) == len(sources) else [],
            floor=multicam_pb2.FloorSource.Value(f"FLOOR_SOURCE_{floor.upper()}"),
            request_id=str(options.pop("request_id", "") or ""), **options)
        return self._submit(self.stub(multicam_pb2_grpc.MultiCameraStub).CaptureMultiView, req, requeue)

    def detect_people(self, source: Source, *, server_path: bool = False, start_frame: int = 0, end_frame: int = 0,
                      max_people: int = 0, small_people: bool = False, request_id: str = "", requeue: bool = True,
                      upload_progress: ProgressCallback | None = None) -> Job[mocap_pb2.DetectPeopleResult]:
        """Start finding every person in frames start_frame <= n < end_frame (0: to the end): tracks with
        ids that capture_motion(subject=id) takes over the same frames, a thumbnail each, and their frames.

        small_people: also look for people far from the camera (down to about a sixth of the frame's
        height); about twice the time, and person-like things may be reported too. Capture such a
        person along this result's tracks (capture_motion(people_tracks=result))."""
        req = mocap_pb2.DetectPeopleRequest(
            input=self.media_input(source, server_path=server_path, progress=upload_progress),
            frame_range=common_pb2.FrameRange(start=int(start_frame), end=int(end_frame or 0)),
            max_people=int(max_people), small_people=bool(small_people), request_id=request_id)
        return self._submit(self.stub(mocap_pb2_grpc.MotionCaptureStub).DetectPeople, req, requeue)

    def rig_file(self, path: str | os.PathLike[str], *, skeleton: str = "", server_path: bool = False
                 ) -> animation_pb2.RigFile:
        """A character file (.glb, .gltf, .vrm, .fbx, .bvh) as a RigFile for map_bones and RetargetRequest.rig_file:
        uploaded (deduplicated), or named as a path on the server with server_path. A bone map preset
        beside it (rigs.sidecar_preset: hero.bonemap.json for hero.vrm) goes with it as declared roles.

        skeleton: which skeleton of a file with several (armature or skin name, or index); "": the biggest.
        """
        from keygrip import rigs

        rig_file = animation_pb2.RigFile(skeleton=skeleton, name=Path(path).name)
        if server_path:
            rig_file.path = os.fspath(path)
        else:
            rig_file.artifact_id = self.upload(path).id
        sidecar = rigs.sidecar_preset(path)
        if sidecar.is_file():
            mapping, _ = rigs.load_bone_map_preset(sidecar)
            rig_file.sidecar.CopyFrom(rigs.bone_map_from_dict(mapping))
        return rig_file

    def map_bones(self, rig: animation_pb2.Rig | animation_pb2.RigFile) -> animation_pb2.BoneMap:
        """The server's bone map for a rig description or a character file (its declared map first)."""
        request = (animation_pb2.MapBonesRequest(rig_file=rig) if isinstance(rig, animation_pb2.RigFile)
                   else animation_pb2.MapBonesRequest(rig=rig))
        return self.call(self.stub(animation_pb2_grpc.AnimationStub).MapBones, request)

    def retarget(self, request: animation_pb2.RetargetRequest, *,
                 requeue: bool = True) -> Job[animation_pb2.RetargetResult]:
        req = animation_pb2.RetargetRequest()
        req.CopyFrom(request)
        return self._submit(self.stub(animation_pb2_grpc.AnimationStub).Retarget, req, requeue)

    # Scene generation ---------------------------------------------------------------------------

    def generate_texture(self, model: str, prompt: str, *, tileable: bool = True,
                         init_image: str | os.PathLike[str] | common_pb2.ArtifactRef | None = None,
                         strength: float = 0.0, maps: bool = False, request_id: str = "", requeue: bool = True,
                         **settings: Any) -> Job[scene_pb2.GeneratedImage]:
        """Start a texture generation (seamless in X and Y unless tileable=False). settings are
        GenerationSettings fields: negative_prompt, seed, steps, guidance, width, height, scheduler.
        init_image: a file (uploaded, deduplicated) or an ArtifactRef to start from. maps: also a
        height and a normal map (result.height_map, result.normal_map)."""
        req = scene_pb2.GenerateTextureRequest(
            settings=scene_pb2.GenerationSettings(model=model, prompt=prompt, **settings),
            tileable=tileable, strength=strength, maps=maps, request_id=request_id)
        if init_image is not None:
            req.init_image_artifact_id = (init_image.id if isinstance(init_image, common_pb2.ArtifactRef)
                                          else self.upload(init_image).id)
        return self._submit(self.stub(scene_pb2_grpc.SceneGenerationStub).GenerateTexture, req, requeue)

    def generate_world(self, model: str, prompt: str, *, highlight_gain: float = 0.0, request_id: str = "",
                       requeue: bool = True, **settings: Any) -> Job[scene_pb2.GeneratedImage]:
        """Start a 360-degree world (equirectangular, width = 2 x height, periodic in X). settings as
        for generate_texture. highlight_gain: the EXR's brightest pixels scaled up to this many times
        (8 to 32 gives a sun that casts shadows); 0: off."""
        req = scene_pb2.GenerateWorldRequest(
            settings=scene_pb2.GenerationSettings(model=model, prompt=prompt, **settings),
            highlight_gain=highlight_gain, request_id=request_id)
        return self._submit(self.stub(scene_pb2_grpc.SceneGenerationStub).GenerateWorld, req, requeue)

    def project_texture(self, model: str, prompt: str, views: Iterable[scene_pb2.CameraView], *,
                        controlnet: str = "", control_scale: float = 0.0, request_id: str = "",
                        requeue: bool = True, **settings: Any) -> Job[scene_pb2.ProjectedTexture]:
        """Start a texture painted onto a scene from its cameras: one image per view, generated with the
        view's depth as conditioning, later views inpainting only what earlier ones did not cover.
        views: CameraViews with their depth (and mask) uploaded (keygrip.projection.View.upload makes
        them). controlnet: a depth ControlNet beside `model`; empty when `model` is a depth model.
        settings as for generate_texture (width and height come from the views)."""
        req = scene_pb2.ProjectTextureRequest(
            settings=scene_pb2.GenerationSettings(model=model, prompt=prompt, **settings), views=list(views),
            controlnet=controlnet, control_scale=control_scale, request_id=request_id)
        return self._submit(self.stub(scene_pb2_grpc.SceneGenerationStub).ProjectTexture, req, requeue)

    # Compositing --------------------------------------------------------------------------------

    def matte(self, source: Source, *, server_path: bool = False, start_frame: int = 0, end_frame: int = 0,
              format: compositing_pb2.OutputFormat.ValueType = compositing_pb2.OUTPUT_FORMAT_EXR_HALF,
              premultiplied_rgba: bool = False, preview: bool = False, request_id: str = "",
              upload_progress: ProgressCallback | None = None, requeue: bool = True,
              **settings: Any) -> Job[compositing_pb2.MatteResult]:
        """Start a person matte over frames [start_frame, end_frame) of a plate (the plate's own numbers;
        end 0: to the last), written as matte.####.exr numbered like the plate. settings are
        MatteSettings fields: refine, refine_radius, refine_epsilon, stabilize, temporal_weight,
        flow_tolerance, working_size, mirror, band_matting, model."""
        req = compositing_pb2.MatteRequest(
            input=self.media_input(source, server_path=server_path, progress=upload_progress),
            frame_range=common_pb2.FrameRange(start=start_frame, end=end_frame),
            settings=compositing_pb2.MatteSettings(**settings), format=format,
            premultiplied_rgba=premultiplied_rgba, preview=preview, request_id=request_id)
        return self._submit(self.stub(compositing_pb2_grpc.CompositingStub).Matte, req, requeue)

    def depth(self, source: Source, *, server_path: bool = False, start_frame: int = 0, end_frame: int = 0,
              format: compositing_pb2.OutputFormat.ValueType = compositing_pb2.OUTPUT_FORMAT_EXR_HALF,
              request_id: str = "", upload_progress: ProgressCallback | None = None, requeue: bool = True,
              **settings: Any) -> Job[compositing_pb2.DepthResult]:
        """Start a relative depth pass (depth.####.exr, channel Z, larger is farther) from the server's
        depth model. settings are DepthSettings fields: model, stabilize, temporal_weight, working_size."""
        req = compositing_pb2.DepthRequest(
            input=self.media_input(source, server_path=server_path, progress=upload_progress),
            frame_range=common_pb2.FrameRange(start=start_frame, end=end_frame),
            settings=compositing_pb2.DepthSettings(**settings), format=format, request_id=request_id)
        return self._submit(self.stub(compositing_pb2_grpc.CompositingStub).Depth, req, requeue)

    def clean_plate(self, source: Source, *, server_path: bool = False, start_frame: int = 0, end_frame: int = 0,
                    format: compositing_pb2.OutputFormat.ValueType = compositing_pb2.OUTPUT_FORMAT_EXR_HALF,
                    reference_frame: int = 0, dilate: int = 0, register: bool = True, preview: bool = False,
                    request_id: str = "", upload_progress: ProgressCallback | None = None, requeue: bool = True,
                    matte: compositing_pb2.MatteSettings | None = None, inpaint_model: str = "",
                    classical_fill: bool = False, inpaint_steps: int = 0) -> Job[compositing_pb2.CleanPlateResult]:
        """Start a clean plate: the background at reference_frame (0: the range's middle) without the
        person, with a coverage map of pixels never seen. Those are filled by an inpainting model
        (inpaint_model, or the server's first one when it has one) unless classical_fill."""
        req = compositing_pb2.CleanPlateRequest(
            input=self.media_input(source, server_path=server_path, progress=upload_progress),
            frame_range=common_pb2.FrameRange(start=start_frame, end=end_frame), matte=matte,
            dilate=dilate, register=register, reference_frame=reference_frame, format=format, preview=preview,
            inpaint_model=inpaint_model, classical_fill=classical_fill, inpaint_steps=inpaint_steps,
            request_id=request_id)
        return self._submit(self.stub(compositing_pb2_grpc.CompositingStub).CleanPlate, req, requeue)

    # Calibration --------------------------------------------------------------------------------

    def calibrate(self, board: calibrate_pb2.CalibrationBoard, cameras: Mapping[str, Iterable[str | os.PathLike[str]]],
                  extrinsics: Mapping[str, Iterable[str | os.PathLike[str]]] | None = None, *,
                  server_path: bool = False, max_frames: int = 0, floor_frame: int | None = None,
                  request_id: str = "", upload_progress: ProgressCallback | None = None, requeue: bool = True
                  ) -> Job[calibrate_pb2.CalibrateResult]:
        """Start calibrating cameras from a board (keygrip.calibrate.parse_board): each camera's
        intrinsics views (name -> images, videos or folders of images) and extrinsics views (the board
        several cameras saw at once, the first on the floor; matched by frame number, or by the place of
        a separate image in each camera's list). A separate image is uploaded as itself, never as a
        sequence of its numbered neighbours; a folder is uploaded as its images."""
        from keygrip import calibrate

        def inputs(paths: Iterable[str | os.PathLike[str]]) -> list[common_pb2.MediaInput]:
            out = []
            for p in paths:
                if server_path:
                    out.append(common_pb2.MediaInput(path=str(p)))
                elif Path(p).is_dir():
                    out.append(self.media_input(p, progress=upload_progress))
                else:
                    out.append(common_pb2.MediaInput(artifact_id=self.upload(p, progress=upload_progress).id))
            return out

        req = calibrate.request(board, {n: inputs(p) for n, p in cameras.items()},
                                {n: inputs(p) for n, p in (extrinsics or {}).items()}, max_frames=max_frames,
                                floor_frame=floor_frame, request_id=request_id)
        return self._submit(self.stub(calibrate_pb2_grpc.CalibratorStub).Calibrate, req, requeue)

    # Jobs of any capability ---------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job[Any]:
        return Job(self, self.call(self.jobs_stub.GetJob, jobs_pb2.GetJobRequest(job_id=job_id)))

    def list_jobs(self, states: Iterable[common_pb2.JobState.ValueType] = (), job_type: str = "",
                  limit: int = 100) -> list[Job[Any]]:
        """Jobs, newest first. states: common_pb2.JobState values such as JOB_STATE_RUNNING (none: all)."""
        state_values = list(states)
        out: list[Job[Any]] = []
        token = ""
        while len(out) < limit:
            resp = self.call(self.jobs_stub.ListJobs, jobs_pb2.ListJobsRequest(
                states=state_values, type=job_type, page_size=min(limit - len(out), 1000), page_token=token))
            out += [Job(self, j) for j in resp.jobs]
            token = resp.next_page_token
            if not token:
                break
        return out


class Job(Generic[R]):
    """A handle on a server job: watch its events, wait for its result, cancel it.

    R is the job's result message (Job[mocap_pb2.CaptureMotionResult] from capture_motion); a job
    looked up by id is a Job[Any].
    """

    def __init__(self, client: Client, proto: common_pb2.Job) -> None:
        self.client = client
        self.proto = proto

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.type} {self.state}>"

    @property
    def id(self) -> str:
        return self.proto.id

    @property
    def type(self) -> str:
        return self.proto.type

    @property
    def state(self) -> str:
        return events.state_name(self.proto.state)

    @property
    def done(self) -> bool:
        return self.proto.state in _ENDED

    def refresh(self) -> Job[R]:
        self.proto = self.client.call(self.client.jobs_stub.GetJob, jobs_pb2.GetJobRequest(job_id=self.id))
        return self

    def watch(self, after_sequence: int = 0, *, timeout: float | None = None,
              reconnects: int = 5) -> Iterator[events.ProgressEvent | events.StateEvent]:
        """Typed events until the job ends. A broken stream is resumed from the last sequence seen."""
        last, state, attempt = after_sequence, 0, 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                stream = self.client.jobs_stub.WatchJob(
                    jobs_pb2.WatchJobRequest(job_id=self.id, after_sequence=last),
                    metadata=self.client._metadata, timeout=remaining)
                for ev in stream:
                    attempt = 0
                    last = ev.sequence
                    yield from events.from_proto(ev, state)
                    state = ev.state
                    if ev.terminal:
                        self.refresh()
                        return
                self.refresh()
                if self.done:
                    return
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise TimeoutError(f"job {self.id} did not finish within {timeout} s") from None
                if err.code() not in _RETRYABLE or attempt >= reconnects:
                    raise errors.from_rpc_error(err, self.client.address) from None
                attempt += 1
                time.sleep(min(2.0, 0.2 * 2**attempt))

    def wait(self, timeout: float | None = None) -> Job[R]:
        for _ in self.watch(self.proto.last_sequence if self.done else 0, timeout=timeout):
            pass
        return self.refresh()

    def result(self, timeout: float | None = None) -> R:
        """The job's result message; raises JobFailed or JobCancelled with the server's reason."""
        if not self.done:
            self.wait(timeout)
        if self.proto.state != common_pb2.JOB_STATE_SUCCEEDED:
            err = self.proto.error
            raise errors.for_job_error(err.code, err.reason, err.message or f"job {self.id} {self.state}")
        result = message_class(self.proto.result.TypeName())()
        self.proto.result.Unpack(result)
        return result  # type: ignore[return-value]  # R names the type the server sends for this job

    def cancel(self) -> Job[R]:
        self.proto = self.client.call(self.client.jobs_stub.CancelJob, jobs_pb2.CancelJobRequest(job_id=self.id))
        return self

    def delete(self) -> None:
        self.client.call(self.client.jobs_stub.DeleteJob, jobs_pb2.DeleteJobRequest(job_id=self.id))
