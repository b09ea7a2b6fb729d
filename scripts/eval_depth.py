"""Depth stabilisation on real footage, against per-frame depth, with a known answer.

No real depth model can be used here (no downloads), so this measures what Keygrip adds around one:
the scale-and-shift fit along the optical flow and the flow blend of compositing/depth.py. The clip is
eval_cleanplate.py's synthetic locked-off shot (a real head keyed over real trees, so the flow runs on
real images). Its true disparity is made up: the background recedes towards the top of the frame, the
head stands nearer. The "model" returns that truth as a monocular model does: up to a scale and shift
that change every frame (Depth Anything's output is affine-invariant per image), plus smooth
spatial noise. The same model output goes through DepthChain with stabilisation off (each frame
normalised by the first frame's percentiles: what frame-by-frame tools do) and on (the default).

Prints, for both and their ratio:
- flicker: mean |depth(t) - depth(t-1)| on background pixels the head covers in neither frame
  (the truth does not change there, so all of it is flicker);
- error: RMSE against the true depth after one scale and shift fitted over the whole clip (the
  output is relative, so one affine map is allowed; a per-frame one would hide flicker);
- the same error's floor: with a scale and shift fitted to every frame on its own.

Run: .venv/bin/python scripts/eval_depth.py [--frames 40] [--drift 0.15] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from eval_cleanplate import synthetic_clip  # noqa: E402

from inference_server.compositing.depth import DepthChain, model_shape  # noqa: E402
from inference_server.compositing.options import DEPTH_TEMPORAL_WEIGHT  # noqa: E402

WORKING_SIZE = 518  # Depth Anything's own input size


def true_disparity(alpha: np.ndarray) -> np.ndarray:
    """(H, W) made-up disparity: a ground receding to the top (0.2 far .. 1 near), the head at 1.4."""
    h, w = alpha.shape
    ground = np.linspace(0.2, 1.0, h, dtype=np.float32)[:, None].repeat(w, axis=1)
    return ground * (1.0 - alpha) + np.float32(1.4) * alpha


class SimulatedModel(DepthChain):
    """DepthChain whose model returns the next frame's prepared disparity (a real model cannot be
    downloaded here); the rest of the chain, the stabilisation, is the job's own."""

    def __init__(self, outputs: list[np.ndarray], *, stabilize: bool) -> None:
        import torch

        super().__init__(torch.nn.Linear(1, 1), WORKING_SIZE, stabilize=stabilize, weight=DEPTH_TEMPORAL_WEIGHT)
        self.outputs = iter(outputs)

    def disparity(self, rgb: np.ndarray) -> np.ndarray:
        return next(self.outputs)


def model_outputs(truths: list[np.ndarray], drift: float, noise: float, seed: int) -> list[np.ndarray]:
    """What a per-frame monocular model gives: each frame's truth at the model's size, scaled and shifted
    by its own random amounts, with smooth spatial noise."""
    rng = np.random.default_rng(seed)
    h, w = model_shape(truths[0].shape[0], truths[0].shape[1], WORKING_SIZE)
    out = []
    for t in truths:
        d = cv2.resize(t, (w, h), interpolation=cv2.INTER_AREA)
        scale, shift = np.exp(rng.normal(0.0, drift)), rng.normal(0.0, drift)
        field = cv2.GaussianBlur(rng.normal(0.0, 1.0, (h, w)).astype(np.float32), (0, 0), 12)
        field = field * np.float32(noise / max(float(field.std()), 1e-6))
        out.append((d * scale + shift + field).astype(np.float32))
    return out


def measure(depths: list[np.ndarray], truths: list[np.ndarray], alphas: list[np.ndarray]) -> tuple[float, ...]:
    d, t = np.stack(depths), 1.0 - np.stack(truths)  # depth grows with distance: 1 - disparity
    static = [(alphas[i] == 0) & (alphas[i - 1] == 0) for i in range(1, len(alphas))]
    flicker = float(np.mean([np.abs(d[i] - d[i - 1])[static[i - 1]].mean() for i in range(1, len(d))]))
    a = np.stack([d.ravel(), np.ones(d.size)], axis=1)
    (s, b), *_ = np.linalg.lstsq(a, t.ravel(), rcond=None)
    rmse = float(np.sqrt(np.mean((d * s + b - t) ** 2)))
    floor = []
    for di, ti in zip(d, t, strict=True):
        (s, b), *_ = np.linalg.lstsq(np.stack([di.ravel(), np.ones(di.size)], axis=1), ti.ravel(), rcond=None)
        floor.append(np.mean((di * s + b - ti) ** 2))
    # Flicker and error in units of the true depth range, so they read as fractions of near..far.
    span = float(t.max() - t.min())
    return flicker / span, rmse / span, float(np.sqrt(np.mean(floor))) / span


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--drift", type=float, default=0.15, help="the model's per-frame scale (log) and shift spread")
    ap.add_argument("--noise", type=float, default=0.02, help="the model's smooth spatial noise (std)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                    help="the shared data folder (../shared/data)")
    args = ap.parse_args()
    _, images, alphas = synthetic_clip(args.data, args.frames)
    truths = [true_disparity(a) for a in alphas]
    outputs = model_outputs(truths, args.drift, args.noise, args.seed)
    print(f"{len(images)} frames {images[0].shape[1]}x{images[0].shape[0]}; model drift {args.drift:g}, "
          f"noise {args.noise:g} (flicker and errors as fractions of the true near..far range)")
    print(f"{'':22s}{'flicker':>9s}{'error':>9s}{'floor':>9s}")
    rows = {}
    for name, stabilize in (("per frame (off)", False), ("stabilised (default)", True)):
        chain = SimulatedModel(outputs, stabilize=stabilize)
        rows[name] = measure([chain(img) for img in images], truths, alphas)
        print(f"{name:22s}" + "".join(f"{v:9.4f}" for v in rows[name]))
    off, on = rows["per frame (off)"], rows["stabilised (default)"]
    print(f"{'ratio on / off':22s}" + "".join(f"{b / a:9.2f}" for a, b in zip(off, on, strict=True)))


if __name__ == "__main__":
    main()
