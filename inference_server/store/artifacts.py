"""Content-addressed artifact store on the local file system.

Layout under <data_dir>/artifacts:
    objects/ab/abcdef...            the content, named by its sha256
    objects/ab/abcdef....json       name, media type, size, creation time
    uploads/abcdef....part          bytes of an upload in progress (resumable across restarts)

Objects appear atomically (written elsewhere, then renamed), so a reader never sees half a file and
worker processes can add results directly without going through the gRPC front.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from inference_server.errors import InvalidInput, NotFound
from keygrip.client import sha256_file
from keygrip.sequences import SequenceError, format_pattern, frame_name, parse_pattern
from keygrip.v1 import common_pb2

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
# An upload is named by its digest, or by "u" + 32 hex digits when the client hashes as it sends.
_UPLOAD_ID = re.compile(r"^(?:[0-9a-f]{64}|u[0-9a-f]{32})$")
CHUNK = 1024 * 1024


class UploadWriter:
    """Appends the chunks of one upload stream to its partial file, hashing them as they arrive.

    Two background threads, one writing (and flushing to disk every few MiB) and one hashing, work
    while the stream is still arriving (file I/O and hashlib release the GIL), so neither the
    digest nor the final fsync waits until the last byte. Reopening a partial (a resumed upload,
    maybe after a restart) hashes the bytes already held. A crash loses at most what was not
    flushed yet: the file size tells the client where to resume, and the digest check at the end
    catches anything else.
    """

    _FLUSH_EVERY = 16 * 1024 * 1024
    _DEPTH = 32  # chunks in flight per thread before write() blocks

    def __init__(self, path: Path) -> None:
        self.path = path
        self._hash = hashlib.sha256()
        if path.exists():
            with open(path, "rb") as fh:
                while block := fh.read(CHUNK):
                    self._hash.update(block)
        self._fh = open(path, "ab")  # noqa: SIM115 - held open across the chunks of one stream
        self.offset = self._fh.tell()
        self._error: BaseException | None = None
        self._to_disk: queue.Queue[bytes | None] = queue.Queue(maxsize=self._DEPTH)
        self._to_hash: queue.Queue[bytes | None] = queue.Queue(maxsize=self._DEPTH)
        self._threads = [threading.Thread(target=self._write_loop, name="keygrip-upload-write", daemon=True),
                         threading.Thread(target=self._hash_loop, name="keygrip-upload-hash", daemon=True)]
        for t in self._threads:
            t.start()

    def _write_loop(self) -> None:
        unflushed = 0
        while (data := self._to_disk.get()) is not None:
            if self._error is not None:
                continue
            try:
                self._fh.write(data)
                unflushed += len(data)
                if unflushed >= self._FLUSH_EVERY:
                    self._fh.flush()
                    os.fdatasync(self._fh.fileno())
                    unflushed = 0
            except OSError as exc:  # disk full, I/O error: reported on the next write or at close
                self._error = exc

    def _hash_loop(self) -> None:
        while (data := self._to_hash.get()) is not None:
            self._hash.update(data)

    @property
    def full(self) -> bool:
        return self._to_disk.full() or self._to_hash.full()

    def write(self, offset: int, data: bytes) -> int:
        """Queue a chunk (blocks only while the threads are _DEPTH chunks behind)."""
        if self._error is not None:
            raise self._error
        if offset != self.offset:
            raise InvalidInput(f"upload is at byte {self.offset}, not {offset}: "
                               "call StartUpload again to learn where to resume")
        self._to_disk.put(data)
        self._to_hash.put(data)
        self.offset += len(data)
        return self.offset

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def close(self, sync: bool = False) -> None:
        if self._fh.closed:
            return
        self._to_disk.put(None)
        self._to_hash.put(None)
        for t in self._threads:
            t.join()
        self._fh.flush()
        if sync:
            os.fsync(self._fh.fileno())
        self._fh.close()
        if self._error is not None:
            raise self._error


@dataclass(frozen=True)
class Artifact:
    id: str
    size: int
    name: str
    media_type: str
    created: float


def check_digest(digest: str) -> str:
    if not _DIGEST.match(digest or ""):
        raise InvalidInput(f"{digest!r} is not an artifact id: expected 64 lower-case hex digits (sha256)")
    return digest


def artifact_ref(art: Artifact) -> common_pb2.ArtifactRef:
    """How an artifact is named on the wire (in results and upload replies)."""
    return common_pb2.ArtifactRef(id=art.id, size=art.size, name=art.name, media_type=art.media_type)


def local_path(artifacts: ArtifactStore, media: common_pb2.MediaInput, scratch: Path | None = None) -> Path:
    """Where a checked input (services.inputs.check_media_input) lies on this machine.

    An uploaded image sequence is laid out in scratch (the job's own folder; required for one) as
    links to its frames' artifacts named by frame number, and its pattern there is returned, so
    that it is read by the same code as a sequence on disk.
    """
    which = media.WhichOneof("source")
    if which == "artifact_id":
        return artifacts.path(media.artifact_id)
    if which == "sequence":
        if scratch is None:
            raise ValueError("an uploaded image sequence needs the job's scratch folder to be laid out in")
        return lay_out_sequence(artifacts, media.sequence, Path(scratch) / "sequence")
    return Path(media.path)


def input_name(media: common_pb2.MediaInput) -> str:
    """How an input is named for people and provenance: its path, sequence pattern or artifact id."""
    which = media.WhichOneof("source")
    if which == "sequence":
        return media.sequence.pattern
    return media.path if which == "path" else media.artifact_id


def input_fingerprint(media: common_pb2.MediaInput) -> str:
    """sha256 of an input as a job received it (after the service checked it): the same upload, path or
    sequence of uploads gives the same fingerprint, so that results made from one input can say so."""
    return hashlib.sha256(media.SerializeToString(deterministic=True)).hexdigest()


def sequence_name(pattern: str) -> tuple[str, int, str]:
    """(head, padding, tail) of an uploaded sequence's pattern (its file name part only)."""
    name = pattern.replace("\\", "/").rsplit("/", 1)[-1]
    if "\x00" in name:
        raise InvalidInput("input.sequence.pattern holds a NUL character; name the files like plate.####.png")
    try:
        parsed = parse_pattern(name)
    except SequenceError as exc:
        raise InvalidInput(f"input.sequence.pattern: {exc}") from None
    if parsed is None:
        raise InvalidInput(f"input.sequence.pattern \"{pattern}\" has no frame-number token; "
                           "name the sequence's files like plate.####.png")
    return parsed


def lay_out_sequence(artifacts: ArtifactStore, sequence: common_pb2.ImageSequence, folder: Path) -> Path:
    """Links (copies where links cannot be made) named by frame number after the sequence's pattern,
    one per frame, in folder; returns the pattern's path there (folder / "plate.####.png")."""
    head, padding, tail = sequence_name(sequence.pattern)
    folder.mkdir(parents=True, exist_ok=True)
    for frame in sequence.frames:
        link = folder / frame_name(head, padding, tail, frame.number)
        target = artifacts.path(frame.artifact_id)
        link.unlink(missing_ok=True)
        try:
            link.symlink_to(target)
        except OSError:  # no symlinks here (some Windows set-ups): a copy reads the same
            shutil.copyfile(target, link)
    return folder / format_pattern(head, padding, tail)


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.uploads = self.root / "uploads"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)

    # Reading -------------------------------------------------------------------------------

    def path(self, digest: str) -> Path:
        """Where an artifact's bytes lie, to read them (a store on a Ray node fetches them first)."""
        return self._object(digest)

    def _object(self, digest: str) -> Path:
        check_digest(digest)
        return self.objects / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self._object(digest).is_file()

    def stat(self, digest: str) -> Artifact:
        path = self.path(digest)
        if not path.is_file():
            raise NotFound(f"artifact {digest} does not exist on this server; upload it first")
        meta = self._read_meta(path)
        return Artifact(digest, path.stat().st_size, meta.get("name", ""), meta.get("media_type", ""),
                        float(meta.get("created", path.stat().st_mtime)))

    def read_bytes(self, digest: str) -> bytes:
        self.stat(digest)
        return self.path(digest).read_bytes()

    def all(self) -> list[Artifact]:
        out = []
        for path in self.objects.glob("??/*"):
            if path.suffix != ".json" and _DIGEST.match(path.name):
                out.append(self.stat(path.name))
        return out

    # Writing -------------------------------------------------------------------------------

    def put_bytes(self, data: bytes, name: str = "", media_type: str = "") -> Artifact:
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            tmp = self._tmp_file()
            tmp.write_bytes(data)
            self._commit(tmp, digest, name, media_type)
        return self.stat(digest)

    def put_file(self, src: Path, name: str = "", media_type: str = "") -> Artifact:
        """Copy a file in (used for results that jobs wrote to a scratch path)."""
        digest = sha256_file(src)
        if not self.exists(digest):
            tmp = self._tmp_file()
            shutil.copyfile(src, tmp)
            self._commit(tmp, digest, name or Path(src).name, media_type)
        return self.stat(digest)

    def delete(self, digest: str) -> None:
        path = self._object(digest)
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".json").unlink(missing_ok=True)

    # Resumable uploads ---------------------------------------------------------------------

    def upload_path(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id or ""):
            raise InvalidInput(f"{upload_id!r} is not an upload id: use the one StartUpload returned")
        return self.uploads / f"{upload_id}.part"

    def upload_offset(self, upload_id: str) -> int:
        part = self.upload_path(upload_id)
        return part.stat().st_size if part.exists() else 0

    def open_upload(self, upload_id: str) -> UploadWriter:
        return UploadWriter(self.upload_path(upload_id))

    def finish_upload(self, writer: UploadWriter, expected: str, name: str, media_type: str) -> Artifact:
        """Check the digest of a complete upload and publish it; a mismatch discards the bytes."""
        writer.close(sync=True)
        actual = writer.hexdigest()
        if expected and actual != expected:
            writer.path.unlink(missing_ok=True)
            raise InvalidInput(f"upload digest mismatch: declared {expected}, received bytes hash to {actual}; "
                               "the upload was discarded, send it again", reason="DIGEST_MISMATCH")
        if self.exists(actual):
            writer.path.unlink(missing_ok=True)  # someone else uploaded the same bytes meanwhile
        else:
            self._commit(writer.path, actual, name, media_type)
        return self.stat(actual)

    def stale_uploads(self, older_than: float) -> list[Path]:
        return [p for p in self.uploads.glob("*.part") if p.stat().st_mtime < older_than]

    # Internals -----------------------------------------------------------------------------

    def _tmp_file(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.uploads, suffix=".tmp")
        os.close(fd)
        return Path(name)

    def _commit(self, tmp: Path, digest: str, name: str, media_type: str) -> None:
        dest = self._object(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        meta = {"name": name, "media_type": media_type, "created": time.time()}
        meta_tmp = self._tmp_file()
        meta_tmp.write_text(json.dumps(meta))
        os.replace(meta_tmp, dest.with_name(dest.name + ".json"))
        os.replace(tmp, dest)

    @staticmethod
    def _read_meta(path: Path) -> dict:
        try:
            return json.loads(path.with_name(path.name + ".json").read_text())
        except (OSError, ValueError):
            return {}
