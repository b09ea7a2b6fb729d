"""The Artifacts service: resumable, digest-checked uploads and chunked downloads."""

from __future__ import annotations

import asyncio
import hashlib
import json

import grpc

from inference_server.config import Config
from inference_server.errors import InvalidInput, NotFound, ResourceExhausted
from inference_server.services.errors import rpc_errors
from inference_server.store.artifacts import Artifact, ArtifactStore, check_digest
from keygrip.v1 import artifacts_pb2, artifacts_pb2_grpc, common_pb2

MAX_CHUNK = 4 * 1024 * 1024
DEFAULT_DOWNLOAD_CHUNK = 1024 * 1024


def artifact_ref(art: Artifact) -> common_pb2.ArtifactRef:
    return common_pb2.ArtifactRef(id=art.id, size=art.size, name=art.name, media_type=art.media_type)


class ArtifactsService(artifacts_pb2_grpc.ArtifactsServicer):
    def __init__(self, config: Config, store: ArtifactStore) -> None:
        self.config = config
        self.store = store
        # Running digests of uploads in progress, so the final check does not re-read the file.
        self._hashers: dict[str, tuple[int, hashlib._Hash]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _declared(self, digest: str) -> dict:
        try:
            return json.loads(self.store.upload_path(digest).with_suffix(".json").read_text())
        except (OSError, ValueError):
            raise NotFound(f"no upload of {digest[:12]} is in progress: call StartUpload first") from None

    @rpc_errors
    async def StartUpload(self, request: artifacts_pb2.StartUploadRequest, context: grpc.aio.ServicerContext):
        digest = check_digest(request.sha256.lower())
        if request.size < 0:
            raise InvalidInput("size must not be negative")
        if self.store.exists(digest):
            return artifacts_pb2.UploadStatus(upload_id=digest, offset=request.size, complete=True,
                                              artifact=artifact_ref(self.store.stat(digest)),
                                              max_chunk_bytes=MAX_CHUNK)
        if request.size > self.config.max_upload_bytes:
            raise ResourceExhausted(
                f"{request.size} bytes is more than this server accepts ({self.config.max_upload_bytes}); "
                "raise max_upload_bytes in the server's configuration", reason="UPLOAD_TOO_LARGE")
        offset = self.store.upload_offset(digest)
        if offset > request.size:  # a stale partial of a different declared size
            self.store.upload_path(digest).unlink()
            offset = 0
        meta = {"size": request.size, "name": request.name, "media_type": request.media_type}
        self.store.upload_path(digest).with_suffix(".json").write_text(json.dumps(meta))
        if request.size == 0:
            self.store.upload_path(digest).touch()
            return await self._finish(digest, meta)
        return artifacts_pb2.UploadStatus(upload_id=digest, offset=offset, max_chunk_bytes=MAX_CHUNK)

    @rpc_errors
    async def Upload(self, request_iterator, context: grpc.aio.ServicerContext):
        digest = ""
        offset = 0
        meta: dict = {}
        async for chunk in request_iterator:
            if not digest:
                digest = check_digest(chunk.upload_id)
                meta = self._declared(digest)
                lock = self._locks.setdefault(digest, asyncio.Lock())
                if lock.locked():
                    raise InvalidInput(f"another upload of {digest[:12]} is in progress")
                await lock.acquire()
            elif chunk.upload_id and chunk.upload_id != digest:
                raise InvalidInput("all chunks of one Upload call must carry the same upload_id")
            if len(chunk.data) > MAX_CHUNK:
                raise InvalidInput(f"chunks may hold at most {MAX_CHUNK} bytes")
            if chunk.offset + len(chunk.data) > meta["size"]:
                raise InvalidInput(f"chunk at {chunk.offset} runs past the declared size {meta['size']}")
            offset = self.store.append_upload(digest, chunk.offset, chunk.data)
            held, hasher = self._hashers.get(digest, (0, hashlib.sha256()))
            if held == chunk.offset:
                hasher.update(chunk.data)
                self._hashers[digest] = (offset, hasher)
            else:
                self._hashers.pop(digest, None)
        try:
            if not digest:
                raise InvalidInput("an Upload call must send at least one chunk")
            if offset == meta["size"]:
                return await self._finish(digest, meta)
            return artifacts_pb2.UploadStatus(upload_id=digest, offset=offset, max_chunk_bytes=MAX_CHUNK)
        finally:
            if digest and digest in self._locks and self._locks[digest].locked():
                self._locks[digest].release()

    async def _finish(self, digest: str, meta: dict) -> artifacts_pb2.UploadStatus:
        held, hasher = self._hashers.pop(digest, (-1, None))
        verified = hasher is not None and held == meta["size"]
        if verified and hasher.hexdigest() != digest:
            self.store.upload_path(digest).unlink(missing_ok=True)
            raise InvalidInput(f"upload digest mismatch: declared {digest}, received bytes hash to "
                               f"{hasher.hexdigest()}; the upload was discarded, send it again",
                               reason="DIGEST_MISMATCH")
        art = await asyncio.to_thread(self.store.finish_upload, digest, meta["name"], meta["media_type"],
                                    verified)
        self.store.upload_path(digest).with_suffix(".json").unlink(missing_ok=True)
        return artifacts_pb2.UploadStatus(upload_id=digest, offset=art.size, complete=True,
                                          artifact=artifact_ref(art), max_chunk_bytes=MAX_CHUNK)

    @rpc_errors
    async def Download(self, request: artifacts_pb2.DownloadRequest, context: grpc.aio.ServicerContext):
        art = self.store.stat(check_digest(request.artifact_id))
        size = min(request.chunk_bytes or DEFAULT_DOWNLOAD_CHUNK, MAX_CHUNK)
        if not 0 <= request.offset <= art.size:
            raise InvalidInput(f"offset {request.offset} is outside the artifact (0..{art.size})")
        with open(self.store.path(art.id), "rb") as fh:
            fh.seek(request.offset)
            offset = request.offset
            while data := fh.read(size):
                yield artifacts_pb2.DownloadChunk(offset=offset, data=data, total_size=art.size)
                offset += len(data)

    @rpc_errors
    async def Stat(self, request: artifacts_pb2.StatRequest, context: grpc.aio.ServicerContext):
        return artifact_ref(self.store.stat(check_digest(request.artifact_id)))
