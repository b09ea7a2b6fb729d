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
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from inference_server.errors import InvalidInput, NotFound

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


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


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.uploads = self.root / "uploads"
        self.objects.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)

    # Reading -------------------------------------------------------------------------------

    def path(self, digest: str) -> Path:
        check_digest(digest)
        return self.objects / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

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
        """Copy a file in (used for results that pipelines wrote to a scratch path)."""
        digest = _sha256_file(src)
        if not self.exists(digest):
            tmp = self._tmp_file()
            shutil.copyfile(src, tmp)
            self._commit(tmp, digest, name or Path(src).name, media_type)
        return self.stat(digest)

    def delete(self, digest: str) -> None:
        path = self.path(digest)
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".json").unlink(missing_ok=True)

    # Resumable uploads ---------------------------------------------------------------------

    def upload_path(self, digest: str) -> Path:
        return self.uploads / f"{check_digest(digest)}.part"

    def upload_offset(self, digest: str) -> int:
        part = self.upload_path(digest)
        return part.stat().st_size if part.exists() else 0

    def append_upload(self, digest: str, offset: int, data: bytes) -> int:
        """Append a chunk at offset (which must be the bytes held so far); returns the new offset."""
        held = self.upload_offset(digest)
        if offset != held:
            raise InvalidInput(f"upload of {digest[:12]} is at byte {held}, not {offset}: "
                               "call StartUpload again to learn where to resume")
        # No fsync per chunk (it would halve throughput): after a crash the file size tells how
        # much arrived, and the digest check at the end catches anything the OS lost.
        with open(self.upload_path(digest), "ab") as fh:
            fh.write(data)
        return held + len(data)

    def finish_upload(self, digest: str, name: str, media_type: str, verified: bool = False) -> Artifact:
        """Verify the digest of a complete upload and publish it; a mismatch discards the bytes.

        verified: the caller hashed the bytes as they arrived, so they need not be read again.
        """
        part = self.upload_path(digest)
        with open(part, "rb+") as fh:
            os.fsync(fh.fileno())
        actual = digest if verified else _sha256_file(part)
        if actual != digest:
            part.unlink(missing_ok=True)
            raise InvalidInput(f"upload digest mismatch: declared {digest}, received bytes hash to {actual}; "
                               "the upload was discarded, send it again")
        self._commit(part, digest, name, media_type)
        return self.stat(digest)

    def stale_uploads(self, older_than: float) -> list[Path]:
        return [p for p in self.uploads.glob("*.part") if p.stat().st_mtime < older_than]

    # Internals -----------------------------------------------------------------------------

    def _tmp_file(self) -> Path:
        fd, name = tempfile.mkstemp(dir=self.uploads, suffix=".tmp")
        os.close(fd)
        return Path(name)

    def _commit(self, tmp: Path, digest: str, name: str, media_type: str) -> None:
        dest = self.path(digest)
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
