"""Benchmark: texture generation through the server against a plain diffusers pipeline in one process.

The same model (a small random-weight Stable Diffusion built here: nothing is downloaded), the same
steps, size and seed run both ways in the same invocation, alternating, because these machines are
noisy. Reports time per step, the server's overhead (submit to result, PNG and EXR written, against the
bare pipeline call), the tiling overhead (circular padding in UNet and VAE against none), the latency
of the first step preview, and the peak resident memory of the server's worker.

    python scripts/bench_generate.py [--size 128] [--steps 20] [--rounds 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the tiny-model builder and the server process helper


_PLAIN = """
import contextlib, json, sys, time
import torch
from diffusers import StableDiffusionPipeline
from inference_server.scene.tiling import seamless
model, prompt, steps, size, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
pipe = StableDiffusionPipeline.from_pretrained(model, local_files_only=True)
pipe.set_progress_bar_config(disable=True)
out = {}
for tile in (False, True, False, True):  # the first of each warms up; the second is timed
    with seamless(pipe, "xy") if tile else contextlib.nullcontext():
        t0 = time.perf_counter()
        pipe(prompt, num_inference_steps=steps, width=size, height=size, guidance_scale=7.0,
             generator=torch.Generator("cpu").manual_seed(seed), output_type="np")
        out["tiled" if tile else "plain"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def _plain(model: Path, prompt: str, steps: int, size: int, seed: int) -> dict[str, float]:
    """Seconds for a bare pipeline call (what a user would write), with and without our tiling, in a
    process of its own like the server's worker (two torch processes in one would share thread pools)."""
    import json
    import subprocess

    run = subprocess.run([sys.executable, "-c", _PLAIN, str(model), prompt, str(steps), str(size), str(seed)],
                         capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


class _PeakRss:
    """Peak resident memory of a process's children (the server's workers), sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.wait(0.05):
            try:
                rss = max((c.memory_info().rss for c in self.proc.children(recursive=True)), default=0)
            except psutil.Error:
                continue
            self.peak = max(self.peak, rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import torch
    from diffusion_models import save_diffusers, tiny_sd_pipeline
    from server_process import ServerProcess

    import keygrip
    from keygrip import events

    prompt, seed = "weathered oak planks", 11
    with tempfile.TemporaryDirectory(prefix="keygrip-bench-") as tmp:
        root = Path(tmp)
        model = save_diffusers(tiny_sd_pipeline(root / "src"), root / "model")
        toml = root / "keygrip.toml"
        toml.write_text(f'[models.bench]\npath = "{model}"\n')
        srv = ServerProcess(root / "data", "--config", str(toml), workers=1).start()
        try:
            with keygrip.Client(srv.address) as client:
                # Warm both: the worker loads the model once (kept resident), the plain pipeline runs once.
                client.generate_texture("bench", prompt, seed=seed, steps=1, width=args.size,
                                        height=args.size).result(timeout=600)
                plain, plain_tiled, served, first_preview = [], [], [], []
                peak = _PeakRss(srv.proc.pid)
                for r in range(args.rounds):
                    times = _plain(model, prompt, args.steps, args.size, seed + r)
                    plain.append(times["plain"])
                    plain_tiled.append(times["tiled"])
                    t0 = time.perf_counter()
                    job = client.generate_texture("bench", prompt, seed=seed + r, steps=args.steps,
                                                  width=args.size, height=args.size)
                    seen = None
                    for ev in job.watch(timeout=600):
                        if seen is None and isinstance(ev, events.ProgressEvent) and ev.preview_png:
                            seen = time.perf_counter() - t0
                    job.result()
                    served.append(time.perf_counter() - t0)
                    first_preview.append(seen if seen is not None else float("nan"))
                rss = peak.stop()
        finally:
            srv.stop()

    med = statistics.median
    steps = args.steps
    print(f"model: small random-weight SD (UNet 32/64 channels, VAE scale 2), {args.size}x{args.size}, {steps} steps, "
          f"device {'cuda' if torch.cuda.is_available() else 'cpu'}, torch {torch.__version__}, "
          f"medians of {args.rounds} alternating rounds")
    print(f"{'run':<44}{'s total':>9}{'ms/step':>10}")
    print(f"{'plain diffusers pipeline (baseline)':<44}{med(plain):>9.3f}{1000 * med(plain) / steps:>10.1f}")
    print(f"{'plain pipeline under seamless() tiling':<44}{med(plain_tiled):>9.3f}"
          f"{1000 * med(plain_tiled) / steps:>10.1f}")
    print(f"{'server: submit to result, tiled, PNG + EXR':<44}{med(served):>9.3f}{1000 * med(served) / steps:>10.1f}")
    print(f"tiling overhead: {100 * (med(plain_tiled) / med(plain) - 1):+.1f}%   "
          f"server overhead over the same tiled pipeline: {100 * (med(served) / med(plain_tiled) - 1):+.1f}%")
    print(f"first step preview after {1000 * med(first_preview):.0f} ms; worker peak resident memory "
          f"{rss / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
