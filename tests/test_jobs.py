"""Jobs over real gRPC: probe end to end, watching, resuming, idempotency, errors."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import grpc
import pytest

import keygrip
from keygrip import events
from keygrip.v1 import common_pb2, jobs_pb2, media_pb2

DATA = Path(__file__).parent / "data"
CLIP = DATA / "video" / "pose2sim_cam01.mp4"


def test_probe_uploaded_clip_end_to_end(client: keygrip.Client, tmp_path: Path) -> None:
    job = client.probe(CLIP)
    seen = list(job.watch())
    result = job.result()
    assert (result.width, result.height) == (1080, 1920)
    assert result.fps == pytest.approx(60.0)
    assert result.frame_count == 100
    assert result.duration_seconds == pytest.approx(100 / 60, rel=0.02)
    assert result.codec == "h264"
    states = [e.state for e in seen if isinstance(e, events.StateEvent)]
    assert states[0] == "queued" and states[-1] == "succeeded"
    assert any(isinstance(e, events.ProgressEvent) for e in seen)
    thumb = client.download(result.thumbnail.id, tmp_path / "poster.png")
    assert thumb.read_bytes().startswith(b"\x89PNG")


def test_probe_by_server_path_inside_allowed_root(client: keygrip.Client) -> None:
    result = client.probe(str(CLIP.resolve()), server_path=True).result(timeout=60)
    assert result.frame_count == 100


def test_path_outside_allowed_roots_is_refused(client: keygrip.Client, tmp_path: Path) -> None:
    outside = tmp_path / "clip.mp4"
    outside.write_bytes(CLIP.read_bytes())
    with pytest.raises(keygrip.PermissionDenied, match="outside the directories"):
        client.probe(str(outside), server_path=True)
    with pytest.raises(keygrip.PermissionDenied):
        client.probe(str(DATA / ".." / ".." / "pyproject.toml"), server_path=True)


def test_not_media_fails_with_invalid_argument(client: keygrip.Client, tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    job = client.probe(text)
    with pytest.raises(keygrip.JobFailed) as info:
        job.result(timeout=60)
    assert info.value.code == "INVALID_ARGUMENT"
    assert job.state == "failed"


def test_empty_file_fails_with_invalid_argument(client: keygrip.Client, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(keygrip.JobFailed) as info:
        client.probe(empty).result(timeout=60)
    assert info.value.code == "INVALID_ARGUMENT"
    assert "empty" in info.value.message


def test_unknown_ids_are_not_found(client: keygrip.Client) -> None:
    with pytest.raises(keygrip.NotFound):
        client.get_job("no-such-job")
    with pytest.raises(keygrip.NotFound):
        client.stat("0" * 64)
    with pytest.raises(keygrip.NotFound):
        client.probe(common_pb2.ArtifactRef(id="1" * 64))
    with pytest.raises(keygrip.InvalidArgument):
        client.stat("not-a-digest")
    with pytest.raises(keygrip.NotFound):
        list(keygrip.Job(client, common_pb2.Job(id="missing")).watch())


def test_request_id_makes_submit_idempotent(client: keygrip.Client) -> None:
    first = client.probe(CLIP, request_id="retry-me-123")
    second = client.probe(CLIP, request_id="retry-me-123")
    assert first.id == second.id
    assert client.probe(CLIP).id != first.id


def test_watch_resumes_from_a_sequence_number(client: keygrip.Client) -> None:
    job = client.probe(CLIP)
    job.wait(timeout=60)
    stub = client.jobs_stub
    full = list(stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.id)))
    assert [e.sequence for e in full] == list(range(1, len(full) + 1))
    assert full[-1].terminal
    tail = list(stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.id, after_sequence=2)))
    assert [e.sequence for e in tail] == [e.sequence for e in full[2:]]
    assert list(stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.id, after_sequence=full[-1].sequence))) == []


def test_watcher_that_disconnects_does_not_cancel(client: keygrip.Client) -> None:
    job = client.probe(CLIP)
    stream = client.jobs_stub.WatchJob(jobs_pb2.WatchJobRequest(job_id=job.id))
    first = next(stream)
    stream.cancel()  # the watcher goes away after one event
    assert first.sequence == 1
    assert job.wait(timeout=60).state == "succeeded"
    # A new watcher resumes after what the first one saw.
    resumed = list(job.watch(after_sequence=first.sequence))
    assert resumed and resumed[-1].terminal


def test_list_get_delete(client: keygrip.Client) -> None:
    job = client.probe(CLIP)
    job.wait(timeout=60)
    listed = client.list_jobs(job_type="probe_media")
    assert job.id in [j.id for j in listed]
    done = client.list_jobs(states=[common_pb2.JOB_STATE_SUCCEEDED])
    assert all(j.state == "succeeded" for j in done)
    req = media_pb2.ProbeMediaRequest()
    client.get_job(job.id).proto.request.Unpack(req)
    assert req.input.artifact_id  # provenance: the request is kept with the job
    job.delete()
    with pytest.raises(keygrip.NotFound):
        client.get_job(job.id)


def test_two_clients_at_once(shared_server) -> None:
    results: list[int] = []
    errors: list[Exception] = []

    def work() -> None:
        try:
            with keygrip.Client(shared_server.address) as c:
                for _ in range(3):
                    results.append(c.probe(CLIP).result(timeout=120).frame_count)
        except Exception as exc:  # collected for the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [100] * 6


def test_server_down_gives_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: nothing can answer on this port
        address = f"127.0.0.1:{s.getsockname()[1]}"
        with keygrip.Client(address, timeout=3) as c, pytest.raises(keygrip.ServerUnavailable,
                                                                    match="keygrip serve"):
            c.info()


def test_raw_grpc_errors_carry_rpc_status_details(client: keygrip.Client) -> None:
    from google.rpc import error_details_pb2
    from grpc_status import rpc_status

    with pytest.raises(grpc.RpcError) as info:
        client.jobs_stub.GetJob(jobs_pb2.GetJobRequest(job_id="nope"))
    status = rpc_status.from_call(info.value)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    detail = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(detail) and detail.reason == "NOT_FOUND"


def test_server_info_lists_capabilities_and_models(client: keygrip.Client) -> None:
    info = client.info()
    assert info.version == keygrip.__version__
    assert any(d.kind == "CPU" for d in info.devices)
    caps = {c.name: c for c in info.capabilities}
    assert caps["media.probe"].available and caps["mocap.body"].available
    assert {m.name for m in info.models} >= {"mediapipe.pose_landmark_full"}
    assert info.limits.path_inputs
