"""Benchmark for a GPU machine: real-architecture SD 1.5 and SDXL denoisers with random weights.

Nothing is downloaded: the UNets and the VAE are built from their published architectures (the sizes
below) with random weights, in fp16 on CUDA. For each architecture, in the same process, it times one
denoising step (batch 2, as classifier-free guidance runs it) and one VAE decode:

- eager against torch.compile (Module.compile, in place, as the model manager's `compile = true` does);
- without and with seamless tiling (circular padding in every convolution, scene/tiling.py), eager and
  compiled.

and prints the ratios: compiled / eager speed-up (the issue's target: at least 1.3x) and the tiling
overhead (target: at most 10%).

    python scripts/bench_gpu_unet.py                        # CUDA, fp16, SD 1.5 at 512 and SDXL at 1024
    python scripts/bench_gpu_unet.py --device cpu --latent 16 --arch sd15 --no-compile   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from inference_server.scene.tiling import seamless  # noqa: E402

# The published architectures (diffusers configs of runwayml SD 1.5 and SDXL base 1.0).
UNETS: dict[str, dict[str, Any]] = {
    "sd15": dict(in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                 cross_attention_dim=768, attention_head_dim=8),
    "sdxl": dict(in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20),
                 cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816),
}
LATENT = {"sd15": 64, "sdxl": 128}  # 512 and 1024 pixels
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
           block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
           up_block_types=("UpDecoderBlock2D",) * 4)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Any, device: torch.device, repeats: int) -> float:
    """Median seconds of fn() after two warm-up calls (the first compiles, when compiled)."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench(arch: str, device: torch.device, dtype: torch.dtype, latent: int, repeats: int,
          compile_: bool) -> dict[str, float]:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=latent, **UNETS[arch]).to(device, dtype).eval()
    vae = AutoencoderKL(sample_size=latent * 8, **VAE).to(device, dtype).eval()
    pipe = SimpleNamespace(unet=unet, vae=vae)  # what seamless() patches
    x = torch.randn(2, 4, latent, latent, device=device, dtype=dtype)
    t = torch.tensor([500, 500], device=device)
    context = torch.randn(2, 77, UNETS[arch]["cross_attention_dim"], device=device, dtype=dtype)
    extra = {}
    if arch == "sdxl":
        extra["added_cond_kwargs"] = {"text_embeds": torch.randn(2, 1280, device=device, dtype=dtype),
                                      "time_ids": torch.randn(2, 6, device=device, dtype=dtype)}
    z = torch.randn(1, 4, latent, latent, device=device, dtype=dtype)

    def step() -> None:
        unet(x, t, encoder_hidden_states=context, **extra)

    def decode() -> None:
        vae.decode(z)

    out: dict[str, float] = {}
    with torch.inference_mode():
        for compiled in (False, True) if compile_ else (False,):
            if compiled:
                unet.compile()
                vae.decoder.compile()
            name = "compiled" if compiled else "eager"
            for tiled in (False, True):
                with seamless(pipe, "xy") if tiled else nullcontext():
                    key = f"{name}{'_tiled' if tiled else ''}"
                    out[f"{key}_step_ms"] = 1000 * _time(step, device, repeats)
                    out[f"{key}_decode_ms"] = 1000 * _time(decode, device, max(3, repeats // 4))
    if device.type == "cuda":
        out["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--arch", choices=[*UNETS, "all"], default="all")
    parser.add_argument("--latent", type=int, default=0, help="latent side (default: 64 for SD 1.5, 128 for SDXL)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    results = {}
    for arch in UNETS if args.arch == "all" else [args.arch]:
        latent = args.latent or LATENT[arch]
        r = bench(arch, device, dtype, latent, args.repeats, not args.no_compile)
        results[arch] = r
        print(f"{arch} at {latent * 8}x{latent * 8}, {dtype}, {device}:")
        for key, value in r.items():
            print(f"  {key:<28} {value:9.2f}")
        print(f"  tiling overhead, eager step    {r['eager_tiled_step_ms'] / r['eager_step_ms'] - 1:+.1%}")
        if "compiled_step_ms" in r:
            print(f"  compiled speed-up, step        {r['eager_step_ms'] / r['compiled_step_ms']:.2f}x")
            print(f"  compiled speed-up, VAE decode  {r['eager_decode_ms'] / r['compiled_decode_ms']:.2f}x")
            print(f"  tiling overhead, compiled step {r['compiled_tiled_step_ms'] / r['compiled_step_ms'] - 1:+.1%}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
