"""Benchmark: jobs through the Ray executor against the local executor, in the same run.

Starts the real server twice (--executor local, then --executor ray on a local Ray test cluster of N
one-CPU nodes) and measures, on the bundled test clip:
- per-job latency of a short job (probe_media: submit to result), median of sequential jobs;
- throughput of a batch of short jobs submitted at once, with 1, 2 and 3 nodes (as many job slots);
- recovery: from a worker killed mid-capture (SIGKILL) to the job running again.

    python scripts/bench_cluster.py [--jobs 100] [--nodes 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the server process helper

import contextlib  # noqa: E402

import keygrip  # noqa: E402
from keygrip import events  # noqa: E402

CLIP = REPO / "tests" / "data" / "video" / "pose2sim_cam01.mp4"


def _server(executor: str, slots: int, address: str = ""):
    from server_process import ServerProcess

    # A queue that holds the whole batch submitted at once.
    extra = ["--executor", executor, "--max-queue", "1000"] + (["--ray-address", address] if address else [])
    return ServerProcess(Path(tempfile.mkdtemp(prefix="bench-cluster-")), *extra, workers=slots).start(timeout=180)


def _latency(address: str, rounds: int) -> float:
    with keygrip.Client(address) as c:
        c.probe(CLIP).result(timeout=120)  # warm: the handler is set up
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            c.probe(CLIP).result(timeout=120)
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _throughput(address: str, jobs: int) -> float:
    with keygrip.Client(address) as c:
        t0 = time.perf_counter()
        submitted = [c.probe(CLIP) for _ in range(jobs)]
        for job in submitted:
            job.result(timeout=600)
        return jobs / (time.perf_counter() - t0)


def _recovery(srv) -> float:
    """Seconds from SIGKILL of the worker running a capture to the job running again."""
    with keygrip.Client(srv.address) as c:
        job = c.capture_motion(CLIP, workers=1)
        for ev in job.watch(timeout=120):
            if isinstance(ev, events.ProgressEvent) and ev.stage == "inference" and ev.value > 0:
                break
        import psutil

        # The Ray task running the capture (Ray titles a worker process after what it runs), else the local workers.
        pids = [p.pid for p in psutil.process_iter(["cmdline"])
                if " ".join(p.info["cmdline"] or ()).startswith("ray::job_task")]
        if not pids:
            pids = [p.pid for p in psutil.Process(srv.proc.pid).children()
                    if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]
        t0 = time.perf_counter()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        for ev in job.watch(timeout=120):
            if isinstance(ev, events.StateEvent) and ev.state == "running" and "attempt 2" in ev.message:
                elapsed = time.perf_counter() - t0
                job.cancel()
                return elapsed
    raise RuntimeError("the job did not run again")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args(argv)
    from ray.cluster_utils import Cluster

    rows = []
    for nodes in args.nodes:
        local = _server("local", nodes)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        on_ray = _server("ray", nodes, cluster.address)
        try:
            row: dict[str, float] = {"nodes": nodes,
                   "local_ms": 1000 * _latency(local.address, args.rounds),
                   "ray_ms": 1000 * _latency(on_ray.address, args.rounds),
                   "local_jobs_s": _throughput(local.address, args.jobs),
                   "ray_jobs_s": _throughput(on_ray.address, args.jobs)}
            if nodes == args.nodes[0]:
                row["local_recovery_s"] = _recovery(local)
                row["ray_recovery_s"] = _recovery(on_ray)
            rows.append(row)
            print(json.dumps(row))
        finally:
            on_ray.stop()
            local.stop()
            cluster.shutdown()
    print("\n| slots (nodes) | probe latency local | through Ray | overhead | jobs/s local | jobs/s Ray |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['nodes']} | {r['local_ms']:.0f} ms | {r['ray_ms']:.0f} ms | {r['ray_ms'] - r['local_ms']:+.0f} ms "
              f"| {r['local_jobs_s']:.1f} | {r['ray_jobs_s']:.1f} |")
    first = rows[0]
    print(f"\nrecovery after SIGKILL: local {first['local_recovery_s']:.2f} s, Ray {first['ray_recovery_s']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
