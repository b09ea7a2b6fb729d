"""The Ray executor against a real local Ray cluster of two nodes (Ray's own multi-node test cluster on
this machine) and the real server started with --executor ray: jobs run on actors of either node with
their progress, cancel works, and a job whose actor is killed mid-job runs again and finishes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ray_cluster_utils = pytest.importorskip("ray.cluster_utils")

from server_process import ServerProcess  # noqa: E402

import keygrip  # noqa: E402
from keygrip import events  # noqa: E402

CLIP = Path(__file__).parent / "data" / "video" / "pose2sim_cam01.mp4"


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    c = ray_cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def ray_server(cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("ray-server"), "--executor", "ray", "--ray-address",
                        cluster.address, workers=2)
    srv.start(timeout=180)
    yield srv
    srv.stop()


def _actor_pids() -> set[int]:
    """The job slots' actor processes on this machine (Ray names them after the actor class)."""
    import psutil

    pids = set()
    for proc in psutil.process_iter(["pid", "name"]):
        if (proc.info["name"] or "").startswith("ray::_JobActor"):
            pids.add(int(proc.info["pid"]))
    return pids


def _until(what: str, check: Callable[[], bool], timeout: float = 120.0) -> None:
    """Poll check() until it holds (AssertionError naming `what` after `timeout`)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.1)


def _wait_inference(job: keygrip.Job) -> None:
    for ev in job.watch(timeout=120):
        if isinstance(ev, events.ProgressEvent) and ev.stage == "inference" and ev.value > 0:
            return
        if isinstance(ev, events.StateEvent) and ev.terminal:
            raise AssertionError(f"the job ended before the test could act: {ev}")


def test_jobs_run_on_both_nodes_with_progress(ray_server: ServerProcess) -> None:
    _until("two job slots running", lambda: len(_actor_pids()) == 2)
    with keygrip.Client(ray_server.address) as c:
        # Each node has one CPU and each slot takes one: both nodes hold a slot, none is left free.
        assert c.info().cluster.free["CPU"] == 0
        probes = [c.probe(CLIP) for _ in range(4)]
        assert {p.result(timeout=120).frame_count for p in probes} == {100}
        job = c.capture_motion(CLIP, workers=1, end_frame=20)
        stages = {ev.stage for ev in job.watch(timeout=300) if isinstance(ev, events.ProgressEvent)}
        assert job.result().summary.frames == 20 and "inference" in stages


def test_server_info_shows_the_cluster(ray_server: ServerProcess) -> None:
    with keygrip.Client(ray_server.address) as c:
        cluster = c.info().cluster
    assert cluster.executor == "ray"
    alive = [n for n in cluster.nodes if n.alive]
    assert len(alive) == 2 and all(n.resources["CPU"] == 1 for n in alive)
    assert 0 <= cluster.free["CPU"] <= 2


def test_cancel_a_running_and_a_queued_job(ray_server: ServerProcess) -> None:
    with keygrip.Client(ray_server.address) as c:
        running = [c.capture_motion(CLIP, workers=1) for _ in range(2)]  # both actors busy
        queued = c.probe(CLIP)
        _wait_inference(running[0])
        queued.cancel()
        for job in running:
            job.cancel()
        for job in (*running, queued):
            job.wait(timeout=60)
            assert job.state == "cancelled"
        assert c.probe(CLIP).result(timeout=120).frame_count == 100  # the actors are free again


def test_an_actor_killed_mid_job_is_replaced_and_the_job_runs_again(ray_server: ServerProcess) -> None:
    _until("two job slots running", lambda: len(_actor_pids()) == 2)
    killed = _actor_pids()
    with keygrip.Client(ray_server.address) as c:
        job = c.capture_motion(CLIP, workers=1, end_frame=40)
        _wait_inference(job)
        for pid in killed:  # both slots: the job's is one of them, the idle one must be replaced too
            os.kill(pid, signal.SIGKILL)
        assert job.result(timeout=300).summary.frames == 40
        messages = [e.message for e in job.watch() if isinstance(e, events.StateEvent)]
        assert any("the worker died" in m and "(attempt 1 of 3); requeued" in m for m in messages), messages
    # A new actor for each one killed, the idle one included.
    _until("two new job slots", lambda: len(_actor_pids() - killed) == 2)


def test_a_front_end_killed_mid_job_resumes_it_after_restart(ray_server: ServerProcess) -> None:
    with keygrip.Client(ray_server.address) as c:
        job = c.capture_motion(CLIP, workers=1, end_frame=30)
        _wait_inference(job)
    ray_server.kill()  # the front end and nothing else: the cluster stays up
    ray_server.start(timeout=180)
    with keygrip.Client(ray_server.address) as c:
        again = c.get_job(job.id)
        assert again.result(timeout=300).summary.frames == 30
        messages = [e.message for e in again.watch() if isinstance(e, events.StateEvent)]
        assert "the server stopped while it ran (attempt 1 of 3); requeued" in messages
