"""The Ray executor against a real local Ray cluster of two nodes (Ray's own multi-node test cluster on
this machine: a CPU node and a node that declares one GPU, which the CPU-only torch here never uses) and
the real server started with --executor ray: stateless jobs run as tasks with their progress, cancel
works, a job whose process is killed mid-job runs again and finishes, generation jobs of one model share
an actor that keeps it loaded, and a GPU job fails fast once the GPU node has left."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ray_cluster_utils = pytest.importorskip("ray.cluster_utils")

from diffusion_models import save_diffusers, tiny_sd_pipeline  # noqa: E402
from server_process import ServerProcess, wait_running  # noqa: E402

import keygrip  # noqa: E402
from keygrip import events  # noqa: E402

CLIP = Path(__file__).parent / "data" / "video" / "pose2sim_cam01.mp4"
SIZE = 64


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    c = ray_cluster_utils.Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.gpu_node = c.add_node(num_cpus=1, num_gpus=1)
    c.wait_for_nodes()
    yield c
    c.shutdown()


@pytest.fixture(scope="module")
def ray_server(cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("ray-server")
    model = save_diffusers(tiny_sd_pipeline(root / "src"), root / "tiny-sd")
    toml = root / "keygrip.toml"
    toml.write_text(f'[models.tiny]\npath = "{model}"\n')
    srv = ServerProcess(root / "data", "--config", str(toml), "--executor", "ray", "--ray-address", cluster.address,
                        workers=2)
    srv.start(timeout=180)
    yield srv
    srv.stop()


def _processes(title: str) -> set[int]:
    """This machine's Ray worker processes whose title (Ray sets it to what they run) starts with `title`."""
    import psutil

    pids = set()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if " ".join(proc.info["cmdline"] or ()).startswith(title):
            pids.add(int(proc.info["pid"]))
    return pids


def _messages(job: keygrip.Job, kind: type) -> list[str]:
    return [e.message for e in job.watch() if isinstance(e, kind)]


def test_stateless_jobs_run_as_tasks_with_progress(ray_server: ServerProcess) -> None:
    with keygrip.Client(ray_server.address) as c:
        probes = [c.probe(CLIP) for _ in range(4)]
        assert {p.result(timeout=120).frame_count for p in probes} == {100}
        job = c.capture_motion(CLIP, workers=1, end_frame=20)
        stages = {ev.stage for ev in job.watch(timeout=300) if isinstance(ev, events.ProgressEvent)}
        assert job.result().summary.frames == 20 and "inference" in stages
    assert not _processes("ray::_JobActor")  # no actor for stateless jobs: Ray tasks


def test_server_info_shows_the_cluster(ray_server: ServerProcess) -> None:
    with keygrip.Client(ray_server.address) as c:
        cluster = c.info().cluster
    assert cluster.executor == "ray"
    alive = [n for n in cluster.nodes if n.alive]
    assert len(alive) == 2 and all(n.resources["CPU"] == 1 for n in alive)
    assert sorted(n.resources.get("GPU", 0) for n in alive) == [0, 1]
    assert 0 <= cluster.free["CPU"] <= 2


def test_cancel_a_running_and_a_queued_job(ray_server: ServerProcess) -> None:
    with keygrip.Client(ray_server.address) as c:
        running = [c.capture_motion(CLIP, workers=1) for _ in range(2)]  # both slots busy
        queued = c.probe(CLIP)
        wait_running(running[0])
        queued.cancel()
        for job in running:
            job.cancel()
        for job in (*running, queued):
            job.wait(timeout=60)
            assert job.state == "cancelled"
        assert c.probe(CLIP).result(timeout=120).frame_count == 100  # the slots are free again


def test_a_task_killed_mid_job_runs_again_unless_submitted_not_to(ray_server: ServerProcess) -> None:
    with keygrip.Client(ray_server.address) as c:
        job = c.capture_motion(CLIP, workers=1, end_frame=40)
        wait_running(job)
        killed = _processes("ray::job_task")
        assert len(killed) == 1
        os.kill(killed.pop(), signal.SIGKILL)
        assert job.result(timeout=300).summary.frames == 40
        messages = _messages(job, events.StateEvent)
        assert any("the worker died" in m and "(attempt 1 of 3); requeued" in m for m in messages), messages
        # One submitted not to run again fails instead.
        once = c.capture_motion(CLIP, workers=1, end_frame=40, requeue=False)
        wait_running(once)
        os.kill(_processes("ray::job_task").pop(), signal.SIGKILL)
        once.wait(timeout=120)
        assert once.state == "failed" and once.proto.error.reason == "WORKER_DIED"
        assert "not run again: the job was submitted with no_requeue" in once.proto.error.message


def test_generation_jobs_of_one_model_share_an_actor_that_keeps_it_loaded(ray_server: ServerProcess) -> None:
    with keygrip.Client(ray_server.address) as c:
        loads = []
        for seed in (1, 2):
            job = c.generate_texture("tiny", "oak planks", seed=seed, steps=2, width=SIZE, height=SIZE)
            assert job.result(timeout=300).width == SIZE
            loads.append([m for m in _messages(job, events.ProgressEvent) if "model tiny" in m])
    first, second = loads
    # On the CPU: the node declares a GPU to Ray, but this machine's torch has none to use.
    assert len(first) == 1 and first[0].startswith("loading model tiny on cpu in worker process ")
    assert first[0].endswith("(load 1 there)")
    pid = first[0].split("worker process ")[1].split()[0]
    assert second == [f"model tiny already loaded on cpu in worker process {pid} (1 loads there)"]
    assert _processes("ray::_JobActor") == {int(pid)}  # the pool's one actor, on the GPU node


def test_without_shared_storage_inputs_and_results_travel_through_the_object_store(
        cluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A second server on the same cluster, with ray_storage = "object_store": its jobs' processes work in
    a folder of their node's own (under the temporary folder), never in the server's data directory."""
    srv = ServerProcess(tmp_path_factory.mktemp("ray-object-store"), "--executor", "ray", "--ray-address",
                        cluster.address, "--ray-storage", "object_store", workers=1)
    srv.start(timeout=180)
    node_copies: list[Path] = []
    try:
        with keygrip.Client(srv.address) as c:
            clip = c.upload(CLIP)
            job = c.capture_motion(clip, end_frame=10, workers=1)
            result = job.result(timeout=300)
            assert result.summary.frames == 10
            bvh = c.download_bytes(result.bvh.id)  # the result came back into the front's store
            assert bvh.startswith(b"HIERARCHY")
        front = srv.data_dir / "artifacts" / "objects"
        assert (front / result.bvh.id[:2] / result.bvh.id).is_file()
        node_copies = list((Path(tempfile.gettempdir()) / "keygrip-node").glob(f"*/*/artifacts/objects/*/{clip.id}"))
        assert node_copies and all(srv.data_dir not in p.parents for p in node_copies)  # fetched onto the node
    finally:
        srv.stop()
        for copy in node_copies:  # the node folders of this test cluster
            shutil.rmtree(copy.parents[4], ignore_errors=True)


def test_a_front_end_killed_mid_job_resumes_it_after_restart(ray_server: ServerProcess) -> None:
    with keygrip.Client(ray_server.address) as c:
        job = c.capture_motion(CLIP, workers=1, end_frame=30)
        wait_running(job)
    ray_server.kill()  # the front end and nothing else: the cluster stays up
    ray_server.start(timeout=180)
    with keygrip.Client(ray_server.address) as c:
        again = c.get_job(job.id)
        assert again.result(timeout=300).summary.frames == 30
        assert "the server stopped while it ran (attempt 1 of 3); requeued" in _messages(again, events.StateEvent)


def test_a_gpu_job_fails_fast_once_no_node_has_a_gpu(cluster, ray_server: ServerProcess) -> None:
    """Last: it takes the GPU node away. A generation job running there fails (its node left and no other
    has a GPU), and a new one is refused at submit, both naming what is missing."""
    with keygrip.Client(ray_server.address) as c:
        running = c.generate_texture("tiny", "oak planks", seed=3, steps=200, width=SIZE, height=SIZE)
        for ev in running.watch(timeout=120):
            if isinstance(ev, events.ProgressEvent) and ev.stage == "denoise":
                break
        cluster.remove_node(cluster.gpu_node)
        with pytest.raises(keygrip.errors.JobFailed) as failed:
            running.result(timeout=120)
        assert (failed.value.code, failed.value.reason) == ("FAILED_PRECONDITION", "NO_NODE_FOR_JOB")
        assert "a generate_texture job needs 1 GPU" in str(failed.value)
        with pytest.raises(keygrip.errors.FailedPrecondition) as refused:
            c.generate_texture("tiny", "oak planks", steps=2, width=SIZE, height=SIZE)
        assert "a generate_texture job needs 1 GPU" in str(refused.value)
        assert "none of the Ray cluster's 1 alive node(s) has it" in str(refused.value)
        assert c.probe(CLIP).result(timeout=120).frame_count == 100  # CPU jobs still run
