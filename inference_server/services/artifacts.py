"""The Artifacts service: resumable, digest-checked uploads and chunked downloads."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from inference_server.config import Config
from inference_server.errors import InvalidInput, NotFound, ResourceExhausted
from inference_server.services.errors import rpc_errors
from inference_server.store.artifacts import ArtifactStore, UploadWriter, artifact_ref, check_digest
from keygrip.v1 import artifacts_pb2, artifacts_pb2_grpc, common_pb2

MAX_CHUNK = 4 * 1024 * 1024
DEFAULT_DOWNLOAD_CHUNK = 1024 * 1024
_LOCK_WAIT_S = 5.0


class ArtifactsService(artifacts_pb2_grpc.ArtifactsServicer):
    def __init__(self, config: Config, store: ArtifactStore) -> None:
        self.config = config
        self.store = store
        self._locks: dict[str, asyncio.Lock] = {}  # one stream at a time per upload

    def _meta_path(self, upload_id: str) -> Path:
        return self.store.upload_path(upload_id).with_suffix(".json")

    def _declared(self, upload_id: str) -> dict:
        try:
            return json.loads(self._meta_path(upload_id).read_text())
        except (OSError, ValueError):
            raise NotFound(f"no upload {upload_id[:12]} is in progress: call StartUpload first") from None

    def _status(self, upload_id: str, offset: int) -> artifacts_pb2.UploadStatus:
        return artifacts_pb2.UploadStatus(upload_id=upload_id, offset=offset, max_chunk_bytes=MAX_CHUNK)

    @rpc_errors
    async def StartUpload(self, request: artifacts_pb2.StartUploadRequest,
                          context: grpc.aio.ServicerContext) -> artifacts_pb2.UploadStatus:
        if request.upload_id:  # resuming an upload that was started without a digest
            self._declared(request.upload_id)
            return self._status(request.upload_id, self.store.upload_offset(request.upload_id))
        if request.size < 0:
            raise InvalidInput("size must not be negative")
        digest = check_digest(request.sha256.lower()) if request.sha256 else ""
        if digest and self.store.exists(digest):
            return artifacts_pb2.UploadStatus(upload_id=digest, offset=request.size, complete=True,
                                              artifact=artifact_ref(self.store.stat(digest)),
                                              max_chunk_bytes=MAX_CHUNK)
        if request.size > self.config.max_upload_bytes:
            raise ResourceExhausted(
                f"{request.size} bytes is more than this server accepts ({self.config.max_upload_bytes}); "
                "raise max_upload_bytes in the server's configuration", reason="UPLOAD_TOO_LARGE")
        upload_id = digest or "u" + uuid.uuid4().hex
        offset = self.store.upload_offset(upload_id)
        if offset > request.size:  # a stale partial of a different declared size
            self.store.upload_path(upload_id).unlink()
            offset = 0
        meta = {"size": request.size, "name": request.name, "media_type": request.media_type, "sha256": digest}
        self._meta_path(upload_id).write_text(json.dumps(meta))
        if request.size == 0 and digest:
            writer = self.store.open_upload(upload_id)
            return await self._finish(upload_id, writer, meta, digest)
        return self._status(upload_id, offset)

    @rpc_errors
    async def Upload(self, request_iterator: AsyncIterator[artifacts_pb2.UploadChunk],
                     context: grpc.aio.ServicerContext) -> artifacts_pb2.UploadStatus:
        upload_id = ""
        writer = None
        meta: dict = {}
        try:
            async for chunk in request_iterator:
                if writer is None:
                    meta = self._declared(chunk.upload_id)
                    lock = self._locks.setdefault(chunk.upload_id, asyncio.Lock())
                    # A client resuming after a break may arrive while the broken stream still
                    # closes its file: wait for that, but not for a stream that is really sending.
                    try:
                        await asyncio.wait_for(lock.acquire(), timeout=_LOCK_WAIT_S)
                    except TimeoutError:
                        raise InvalidInput(f"another stream is already sending upload {chunk.upload_id[:12]}") from None
                    upload_id = chunk.upload_id
                    writer = await asyncio.to_thread(self.store.open_upload, upload_id)
                elif chunk.upload_id and chunk.upload_id != upload_id:
                    raise InvalidInput("all chunks of one Upload call must carry the same upload_id")
                if len(chunk.data) > MAX_CHUNK:
                    raise InvalidInput(f"chunks may hold at most {MAX_CHUNK} bytes")
                if chunk.offset + len(chunk.data) > meta["size"]:
                    raise InvalidInput(f"chunk at {chunk.offset} runs past the declared size {meta['size']}")
                # The writer's thread writes and hashes; wait off the loop only when it falls behind.
                if writer.full:
                    await asyncio.to_thread(writer.write, chunk.offset, chunk.data)
                else:
                    writer.write(chunk.offset, chunk.data)
                if writer.offset == meta["size"]:
                    expected = meta["sha256"] or chunk.sha256
                    return await self._finish(upload_id, writer, meta, check_digest(expected) if expected else "")
            if writer is None:
                raise InvalidInput("an Upload call must send at least one chunk")
            return self._status(upload_id, writer.offset)
        finally:
            if upload_id:
                try:
                    if writer is not None:
                        await asyncio.to_thread(writer.close)
                finally:
                    self._locks[upload_id].release()
                    if writer is not None and writer.offset == meta["size"]:
                        self._locks.pop(upload_id, None)  # complete: no stream will come back

    async def _finish(self, upload_id: str, writer: UploadWriter, meta: dict,
                      expected: str) -> artifacts_pb2.UploadStatus:
        art = await asyncio.to_thread(self.store.finish_upload, writer, expected, meta["name"], meta["media_type"])
        self._meta_path(upload_id).unlink(missing_ok=True)
        return artifacts_pb2.UploadStatus(upload_id=upload_id, offset=art.size, complete=True,
                                          artifact=artifact_ref(art), max_chunk_bytes=MAX_CHUNK)

    @rpc_errors
    async def Download(self, request: artifacts_pb2.DownloadRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[artifacts_pb2.DownloadChunk]:
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
    async def Stat(self, request: artifacts_pb2.StatRequest,
                   context: grpc.aio.ServicerContext) -> common_pb2.ArtifactRef:
        return artifact_ref(self.store.stat(check_digest(request.artifact_id)))
