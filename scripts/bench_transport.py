"""Transport benchmark: the SDK over real gRPC against a raw loopback socket, in the same run.

    .venv/bin/python scripts/bench_transport.py [--size-mib 256] [--clients 16] [--probes 40]

Measures (each printed as a table):
1. upload and download of one file through the SDK (resumable chunks, sha256 check on the
   server for uploads and on the client for downloads, fsync) against a raw TCP socket copy of
   the same bytes file-to-file (with fsync) between two processes;
2. submit-to-done latency of ProbeMedia on a tiny clip (p50, p95);
3. 16 clients submitting probe jobs at once: errors, jobs per second, the deepest queue seen;
4. resident memory of an idle server (front and workers).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keygrip  # noqa: E402

BLOCK = 1024 * 1024


# Raw baseline ----------------------------------------------------------------------------------

def _raw_receiver(port_q: mp.Queue, dest: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port_q.put(srv.getsockname()[1])
        conn, _ = srv.accept()
        buf = bytearray(BLOCK)
        view = memoryview(buf)
        with conn, open(dest, "wb") as fh:
            while n := conn.recv_into(buf):
                fh.write(view[:n])
            fh.flush()
            os.fsync(fh.fileno())
            conn.sendall(b"k")


def _raw_sender(port_q: mp.Queue, src: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port_q.put(srv.getsockname()[1])
        conn, _ = srv.accept()
        with conn, open(src, "rb") as fh:
            while data := fh.read(BLOCK):
                conn.sendall(data)


def raw_upload(src: Path, dest: Path) -> float:
    q: mp.Queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_raw_receiver, args=(q, str(dest)))
    proc.start()
    port = q.get()
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s, open(src, "rb") as fh:
        while data := fh.read(BLOCK):
            s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b"k"
    elapsed = time.perf_counter() - t0
    proc.join()
    return elapsed


def raw_download(src: Path, dest: Path) -> float:
    q: mp.Queue = mp.get_context("spawn").Queue()
    proc = mp.get_context("spawn").Process(target=_raw_sender, args=(q, str(src)))
    proc.start()
    port = q.get()
    t0 = time.perf_counter()
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    with socket.create_connection(("127.0.0.1", port)) as s, open(dest, "wb") as fh:
        while n := s.recv_into(buf):
            fh.write(view[:n])
        fh.flush()
        os.fsync(fh.fileno())
    elapsed = time.perf_counter() - t0
    proc.join()
    return elapsed


# Server ------------------------------------------------------------------------------------------

def start_server(data_dir: Path, workers: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "inference_server", "--listen", "127.0.0.1:0", "--data-dir",
                             str(data_dir), "--workers", str(workers), "--log-level", "WARNING"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        raise SystemExit("the server did not start")
    return proc, line.rsplit("listening on ", 1)[1].strip()


def tiny_clip(path: Path) -> Path:
    import av
    import numpy as np

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(10):
            img = np.full((64, 64, 3), i * 20, dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    return path


def rss_mib(pid: int) -> tuple[float, float]:
    front = psutil.Process(pid)
    kids = front.children(recursive=True)
    return front.memory_info().rss / 2**20, sum(k.memory_info().rss for k in kids) / 2**20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--jobs-per-client", type=int, default=4)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="transfer rounds (medians are reported)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="keygrip-bench-") as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "payload.bin"
        with open(src, "wb") as fh:
            for _ in range(args.size_mib):
                fh.write(os.urandom(BLOCK))
        size = src.stat().st_size
        proc, address = start_server(tmp / "data", args.workers)
        try:
            time.sleep(2.0)  # let the workers finish starting before measuring idle memory
            front_mib, workers_mib = rss_mib(proc.pid)
            client = keygrip.Client(address, timeout=120)

            # Alternate raw and SDK runs and take medians: single runs on a shared machine swing 2x.
            ups, downs, raw_ups, raw_downs = [], [], [], []
            hash_s = 0.0
            for i in range(args.repeat):
                raw_ups.append(raw_upload(src, tmp / "raw_up.bin"))
                with open(src, "r+b") as fh:  # new content each round, or the upload is skipped
                    fh.write(i.to_bytes(8, "little") + os.urandom(8))
                t0 = time.perf_counter()
                digest = hashlib.sha256(src.read_bytes()).hexdigest()
                hash_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                ref = client.upload(src)
                ups.append(time.perf_counter() - t0)
                assert ref.id == digest
                raw_downs.append(raw_download(src, tmp / "raw_down.bin"))
                t0 = time.perf_counter()
                client.download(ref.id, tmp / "sdk_down.bin")
                downs.append(time.perf_counter() - t0)
            raw_up, sdk_up = statistics.median(raw_ups), statistics.median(ups)
            raw_down, sdk_down = statistics.median(raw_downs), statistics.median(downs)

            mib = size / 2**20
            print(f"\nTransfer of {mib:.0f} MiB over loopback, median of {args.repeat} alternating runs "
                  f"(the server hashes every upload; sha256 of the file alone takes {hash_s:.2f} s here)")
            print(f"{'':<10}{'raw socket':>14}{'SDK':>14}{'SDK / raw':>12}")
            for name, raw, sdk in (("upload", raw_up, sdk_up), ("download", raw_down, sdk_down)):
                print(f"{name:<10}{mib / raw:>10.0f} MiB/s{mib / sdk:>10.0f} MiB/s{raw / sdk:>11.0%}")

            clip_ref = client.upload(tiny_clip(tmp / "tiny.mp4"))
            client.probe(clip_ref).result(timeout=60)  # warm the workers
            lat = []
            for _ in range(args.probes):
                t0 = time.perf_counter()
                client.probe(clip_ref).result(timeout=60)
                lat.append((time.perf_counter() - t0) * 1000)
            print(f"\nProbeMedia submit-to-done on a 10-frame 64x64 clip, {args.probes} runs: "
                  f"p50 {statistics.median(lat):.1f} ms, p95 {percentile(lat, 0.95):.1f} ms")

            errors: list[Exception] = []
            deepest = [0]

            def one_client() -> None:
                with keygrip.Client(address, timeout=120) as c:
                    for _ in range(args.jobs_per_client):
                        try:
                            job = c.probe(clip_ref)
                            deepest[0] = max(deepest[0], job.proto.queue_position)
                            job.result(timeout=300)
                        except Exception as exc:  # counted and reported
                            errors.append(exc)

            threads = [threading.Thread(target=one_client) for _ in range(args.clients)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0
            total = args.clients * args.jobs_per_client
            print(f"\n{args.clients} clients x {args.jobs_per_client} probe jobs at once: {len(errors)} errors, "
                  f"{total / elapsed:.1f} jobs/s, deepest queue position seen {deepest[0]} "
                  f"(limit {client.info().limits.max_queue})")
            print(f"\nIdle server resident memory: front {front_mib:.0f} MiB, "
                  f"{args.workers} workers {workers_mib:.0f} MiB together")
            client.close()
            return 1 if errors else 0
        finally:
            proc.terminate()
            proc.wait(20)


if __name__ == "__main__":
    sys.exit(main())
