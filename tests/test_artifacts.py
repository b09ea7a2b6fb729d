"""Artifacts over real gRPC: dedupe, resumable uploads, digest checks, size limits, downloads."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import grpc
import pytest

import keygrip
from keygrip.v1 import artifacts_pb2


def _random_file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def test_upload_download_round_trip_and_dedupe(client: keygrip.Client, tmp_path: Path) -> None:
    src = _random_file(tmp_path / "blob.bin", 3 * 1024 * 1024 + 17)
    seen: list[int] = []
    ref = client.upload(src, progress=lambda done, total: seen.append(done))
    assert ref.id == hashlib.sha256(src.read_bytes()).hexdigest()
    assert ref.size == src.stat().st_size and ref.name == "blob.bin"
    assert seen[-1] == ref.size
    # Already on the server: nothing is sent again.
    seen.clear()
    again = client.upload(src, progress=lambda done, total: seen.append(done))
    assert again.id == ref.id and seen == [ref.size]
    out = client.download(ref.id, tmp_path / "copy.bin")
    assert out.read_bytes() == src.read_bytes()
    assert client.stat(ref.id).size == ref.size


def test_upload_cut_in_the_middle_resumes(client: keygrip.Client, shared_server, tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024)
    src = tmp_path / "cut.bin"
    src.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    stub = client.artifacts_stub
    status = stub.StartUpload(artifacts_pb2.StartUploadRequest(sha256=digest, size=len(data), name="cut.bin"))
    assert status.offset == 0 and not status.complete

    part = shared_server.data_dir / "artifacts" / "uploads" / f"{digest}.part"

    landed: list[bool] = []

    def first_two_chunks_then_break():
        for i in range(2):
            yield artifacts_pb2.UploadChunk(upload_id=digest, offset=i * 2**20, data=data[i * 2**20:(i + 1) * 2**20])
        # Bytes still in flight when a cable is pulled are lost; break once these two have landed.
        deadline = time.monotonic() + 20
        while (not part.exists() or part.stat().st_size < 2 * 2**20) and time.monotonic() < deadline:
            time.sleep(0.01)
        landed.append(part.exists() and part.stat().st_size >= 2 * 2**20)
        raise ConnectionError("network cable pulled")

    with pytest.raises(grpc.RpcError):
        stub.Upload(first_two_chunks_then_break())
    assert landed == [True], "the server did not write the first two chunks within 20 s"
    resumed = stub.StartUpload(artifacts_pb2.StartUploadRequest(sha256=digest, size=len(data), name="cut.bin"))
    assert resumed.offset == 2 * 2**20  # the server kept what arrived
    ref = client.upload(src)  # the SDK picks up from there
    assert ref.id == digest
    assert client.download_bytes(ref.id) == data


def test_wrong_digest_is_rejected_and_discarded(client: keygrip.Client) -> None:
    data = os.urandom(100_000)
    claimed = hashlib.sha256(b"something else").hexdigest()
    stub = client.artifacts_stub
    stub.StartUpload(artifacts_pb2.StartUploadRequest(sha256=claimed, size=len(data)))
    with pytest.raises(grpc.RpcError) as info:
        stub.Upload(iter([artifacts_pb2.UploadChunk(upload_id=claimed, offset=0, data=data)]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "digest mismatch" in info.value.details()
    with pytest.raises(keygrip.NotFound):
        client.stat(claimed)
    again = stub.StartUpload(artifacts_pb2.StartUploadRequest(sha256=claimed, size=len(data)))
    assert again.offset == 0


def test_chunk_at_wrong_offset_is_rejected(client: keygrip.Client) -> None:
    data = os.urandom(1000)
    digest = hashlib.sha256(data).hexdigest()
    client.artifacts_stub.StartUpload(artifacts_pb2.StartUploadRequest(sha256=digest, size=len(data)))
    with pytest.raises(grpc.RpcError) as info:
        client.artifacts_stub.Upload(iter([artifacts_pb2.UploadChunk(upload_id=digest, offset=500, data=data[500:])]))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_upload_without_start_is_not_found(client: keygrip.Client) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.artifacts_stub.Upload(iter([artifacts_pb2.UploadChunk(upload_id="a" * 64, offset=0, data=b"x")]))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_oversized_upload_and_oversized_message(server_factory, tmp_path: Path) -> None:
    srv = server_factory("--max-upload-bytes", "1000")
    with keygrip.Client(srv.address) as c:
        big = _random_file(tmp_path / "big.bin", 5000)
        with pytest.raises(keygrip.ResourceExhausted, match="more than this server accepts"):
            c.upload(big)
        # A single message larger than the server's limit is refused, and the server lives on.
        huge = artifacts_pb2.UploadChunk(upload_id="b" * 64, offset=0, data=b"\0" * (9 * 2**20))
        channel = grpc.insecure_channel(srv.address, options=[("grpc.max_send_message_length", 64 * 2**20)])
        with pytest.raises(grpc.RpcError) as info:
            keygrip.v1.artifacts_pb2_grpc.ArtifactsStub(channel).Upload(iter([huge]))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        channel.close()
        assert c.info().version


def test_upload_without_digest_is_named_by_the_server_and_resumes(client: keygrip.Client, tmp_path: Path) -> None:
    data = os.urandom(3 * 2**20)
    digest = hashlib.sha256(data).hexdigest()
    stub = client.artifacts_stub
    # Started without a digest: the server names the upload and hashes the bytes itself.
    st = stub.StartUpload(artifacts_pb2.StartUploadRequest(size=len(data), name="big.bin"))
    assert st.upload_id.startswith("u") and st.offset == 0
    stub.Upload(iter([artifacts_pb2.UploadChunk(upload_id=st.upload_id, offset=0, data=data[:2**20])]))
    resumed = stub.StartUpload(artifacts_pb2.StartUploadRequest(upload_id=st.upload_id))
    assert resumed.offset == 2**20
    done = stub.Upload(iter([artifacts_pb2.UploadChunk(upload_id=st.upload_id, offset=2**20, data=data[2**20:])]))
    assert done.complete and done.artifact.id == digest
    # A digest on the completing chunk is checked.
    other = os.urandom(1000)
    st = stub.StartUpload(artifacts_pb2.StartUploadRequest(size=len(other)))
    with pytest.raises(grpc.RpcError) as info:
        stub.Upload(iter([artifacts_pb2.UploadChunk(upload_id=st.upload_id, offset=0, data=other, sha256=digest)]))
    assert "digest mismatch" in info.value.details()
    # The SDK sends big files this way, then remembers the digest: a second upload sends nothing.
    big = _random_file(tmp_path / "big.bin", 65 * 2**20)
    ref = client.upload(big)
    assert ref.id == hashlib.sha256(big.read_bytes()).hexdigest()
    sent: list[int] = []
    assert client.upload(big, progress=lambda done, total: sent.append(done)).id == ref.id
    assert sent == [big.stat().st_size]


def test_upload_resumes_across_a_server_restart(server_factory, tmp_path: Path) -> None:
    srv = server_factory()
    data = os.urandom(3 * 2**20)
    digest = hashlib.sha256(data).hexdigest()
    with keygrip.Client(srv.address) as c:
        c.artifacts_stub.StartUpload(artifacts_pb2.StartUploadRequest(sha256=digest, size=len(data)))
        c.artifacts_stub.Upload(iter([artifacts_pb2.UploadChunk(upload_id=digest, offset=0, data=data[:2**20])]))
    srv.kill()
    srv.start()
    src = tmp_path / "r.bin"
    src.write_bytes(data)
    with keygrip.Client(srv.address) as c:
        st = c.artifacts_stub.StartUpload(artifacts_pb2.StartUploadRequest(sha256=digest, size=len(data)))
        assert st.offset == 2**20
        assert c.upload(src).id == digest
        assert c.download_bytes(digest) == data


def test_a_download_stopped_by_its_progress_callback_leaves_nothing(client: keygrip.Client, tmp_path: Path) -> None:
    """A host stops a transfer by raising from its progress callback (a cancel): no partial file stays."""
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(5 * 2**20))
    ref = client.upload(src)
    dest = tmp_path / "copy.bin"
    calls = []

    def stop(done: int, total: int) -> None:
        calls.append(done)
        raise keygrip.JobCancelled("cancelled")

    with pytest.raises(keygrip.JobCancelled):
        client.download(ref.id, dest, progress=stop)
    assert calls and calls[0] < ref.size  # stopped after the first chunk, not at the end
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()
