"""Cancellation, restarts and retention against a real server running real capture jobs."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from server_process import wait_running

import keygrip
from keygrip import events

CLIP = Path(__file__).parent / "data" / "video" / "pose2sim_cam01.mp4"


def test_cancel_running_and_queued_jobs(server_factory) -> None:
    srv = server_factory(workers=1)
    with keygrip.Client(srv.address) as c:
        long_job = c.capture_motion(CLIP, workers=1)
        # Once the only worker is busy with frames, the next job waits, first in line (however long the
        # worker took to start or to set its handler up).
        wait_running(long_job)
        queued = c.probe(CLIP)
        assert queued.refresh().proto.queue_position == 1
        queued.cancel()
        assert queued.refresh().state == "cancelled"
        with pytest.raises(keygrip.JobCancelled):
            queued.result()
        long_job.cancel()
        long_job.wait(timeout=30)
        assert long_job.state == "cancelled"
        assert "cancel" in long_job.proto.error.message
        # The worker is free again: the next job runs.
        assert c.probe(CLIP).result(timeout=60).frame_count == 100


def test_restart_with_jobs_queued_running_and_finished(server_factory) -> None:
    srv = server_factory(workers=1)
    with keygrip.Client(srv.address) as c:
        finished = c.probe(CLIP)
        finished.wait(timeout=60)
        running = c.capture_motion(CLIP, workers=1)
        queued = c.probe(CLIP, request_id="queued-across-restart")
        wait_running(running)
    srv.kill()  # a crash: no chance to tidy up
    srv.start()
    with keygrip.Client(srv.address) as c:
        assert c.get_job(finished.id).result().frame_count == 100
        # The job that was running runs again, first, and finishes; its events say what happened.
        crashed = c.get_job(running.id)
        assert crashed.result(timeout=300).summary.frames == 100
        messages = [e.message for e in crashed.watch() if isinstance(e, events.StateEvent)]
        assert "the server stopped while it ran (attempt 1 of 3); requeued" in messages
        assert any(m.endswith("(attempt 2 of 3)") for m in messages)
        # The queued job survived and runs after the restart; its history is intact.
        again = c.get_job(queued.id)
        assert again.result(timeout=120).frame_count == 100
        seqs = [e.sequence for e in again.watch()]
        assert seqs == sorted(seqs)
        assert c.probe(CLIP, request_id="queued-across-restart").id == queued.id


def _worker_pids(srv) -> list[int]:
    """The server's worker processes (its multiprocessing children, not the resource tracker)."""
    import psutil

    return [p.pid for p in psutil.Process(srv.proc.pid).children()
            if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]


def test_a_worker_killed_mid_job_is_replaced_and_the_job_runs_again(server_factory) -> None:
    import os
    import signal

    srv = server_factory(workers=1)
    with keygrip.Client(srv.address) as c:
        job = c.capture_motion(CLIP, workers=1, end_frame=40)
        wait_running(job)
        (pid,) = _worker_pids(srv)
        os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would
        assert job.result(timeout=300).summary.frames == 40
        messages = [e.message for e in job.watch() if isinstance(e, events.StateEvent)]
        requeued = [m for m in messages if "requeued" in m]
        assert len(requeued) == 1 and requeued[0].startswith("the worker died (exit code -9, error id ")
        assert "(attempt 1 of 3)" in requeued[0]
        assert _worker_pids(srv) != [pid]
        # A job submitted not to be requeued fails at once, saying so.
        once = c.capture_motion(CLIP, workers=1, end_frame=40, requeue=False)
        assert once.proto.options.no_requeue
        wait_running(once)
        (pid,) = _worker_pids(srv)
        os.kill(pid, signal.SIGKILL)
        once.wait(timeout=60)
        assert once.state == "failed" and once.proto.error.reason == "WORKER_DIED"
        assert once.proto.error.message.endswith("(not run again: the job was submitted with no_requeue)")
        assert not [e for e in once.watch() if isinstance(e, events.StateEvent) and "requeued" in e.message]


def test_a_graceful_stop_requeues_a_running_job_unless_it_opted_out(server_factory) -> None:
    srv = server_factory(workers=2)
    with keygrip.Client(srv.address) as c:
        again = c.capture_motion(CLIP, workers=1, end_frame=30)
        # The whole clip, so that it is still running when the stop comes however fast the machine.
        once = c.capture_motion(CLIP, workers=1, requeue=False)
        wait_running(again)
        wait_running(once)
    srv.stop()  # SIGTERM: a clean shutdown
    srv.start()
    with keygrip.Client(srv.address) as c:
        assert c.get_job(again.id).result(timeout=300).summary.frames == 30
        stopped = c.get_job(once.id)
        assert stopped.state == "failed" and stopped.proto.error.reason == "SERVER_STOPPED"
        assert "not run again: the job was submitted with no_requeue" in stopped.proto.error.message


def test_with_one_attempt_a_job_the_server_died_under_fails_saying_so(server_factory) -> None:
    srv = server_factory("--max-attempts", "1", workers=1)
    with keygrip.Client(srv.address) as c:
        running = c.capture_motion(CLIP, workers=1)
        wait_running(running)
    srv.kill()
    srv.start()
    with keygrip.Client(srv.address) as c:
        crashed = c.get_job(running.id)
        assert crashed.state == "failed" and crashed.proto.error.reason == "SERVER_RESTARTED"
        assert "its only attempt; submit it again" in crashed.proto.error.message


def test_metrics_endpoint(server_factory) -> None:
    srv = server_factory("--metrics-listen", "127.0.0.1:0")
    # Logged on stderr before the server announces itself on stdout; wait for it rather than read a snapshot.
    port = int(srv.wait_for_log(r'"msg": "metrics listening".*"port": (\d+)').group(1))
    with keygrip.Client(srv.address) as c:
        c.probe(CLIP).result(timeout=60)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert "keygrip_queue_depth" in body
    assert 'keygrip_jobs_total{state="succeeded",type="probe_media"} 1.0' in body
    assert "keygrip_job_duration_seconds_bucket" in body
    assert "keygrip_worker_resident_bytes" in body


def test_cleanup_applies_retention(server_factory, tmp_path: Path) -> None:
    from inference_server.cleanup import cleanup
    from inference_server.config import Config

    srv = server_factory()
    with keygrip.Client(srv.address) as c:
        job = c.probe(CLIP)
        job.result(timeout=60)
        loose = tmp_path / "loose.bin"
        loose.write_bytes(b"unreferenced" * 100)
        loose_ref = c.upload(loose)
    srv.stop()
    cfg = Config(data_dir=srv.data_dir)
    # Nothing is old enough yet.
    assert cleanup(cfg, max_age_days=1).jobs_deleted == 0
    report = cleanup(cfg, max_age_days=0)
    assert report.jobs_deleted == 1 and report.artifacts_deleted >= 2
    srv.start()
    with keygrip.Client(srv.address) as c:
        with pytest.raises(keygrip.NotFound):
            c.get_job(job.id)
        with pytest.raises(keygrip.NotFound):
            c.stat(loose_ref.id)


def test_a_data_directory_from_before_attempts_opens_and_counts_them(tmp_path: Path) -> None:
    import sqlite3

    from inference_server.store import jobs as js

    old = sqlite3.connect(tmp_path / "jobs.sqlite3")
    old.executescript(js._SCHEMA.replace(",\n    attempts INTEGER NOT NULL DEFAULT 0", ""))
    old.execute("INSERT INTO jobs (id, type, state, created) VALUES ('a', 'probe_media', ?, 1.0)", (js.RUNNING,))
    old.commit()
    old.close()
    store = js.JobStore(tmp_path / "jobs.sqlite3")
    rec = store.get("a")
    assert rec is not None and rec.attempts == 0
    store.update("a", attempts=1)
    assert store.get("a").attempts == 1
    store.close()
