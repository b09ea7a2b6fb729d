"""Matte quality: the default chain against bare Selfie Segmentation, in one run.

Ground truth made here: the GRID talking heads (../shared/data/face_video/grid, real people and hair in
front of a uniform blue backdrop) keyed off the backdrop (alpha from B - R, soft between two
thresholds), upscaled 2x, and composited over real moving footage (a panning crop of the Sports2D clip's
trees and buildings, where nobody walks). Metrics, written from their published definitions:

- SAD: sum of |alpha - truth| per frame, in thousands; MSE: mean squared error per frame (x 1e3);
- gradient error (Rhemann et al. 2009): sum of (|grad alpha| - |grad truth|)^2 with Gaussian derivative
  filters (sigma 1.4), in thousands;
- connectivity (Rhemann et al. 2009): for each pixel the threshold l at which it leaves the largest
  4-connected region of both mattes above the threshold (steps of 0.1), d = alpha - l,
  phi = 1 - d * [d >= 0.15]; the error is sum |phi(alpha) - phi(truth)|, in thousands;
- dtSSD (Erofeev et al. 2015): per frame the root of the summed squared difference of the temporal
  derivatives, sqrt(sum(((a_t - a_t-1) - (g_t - g_t-1))^2)), x 100 / sqrt(pixels);
- MESSDdt (Erofeev et al. 2015): per frame sum |E_t(p) - E_t-1(p + v(p))| with E the squared error and
  v the motion between the frames (DIS flow on the composites), per million pixels.

Without ground truth, on real clips (the Pose2Sim balancing trial, 1080x1920, and the Sports2D clip):
flicker where the image does not change (mean |alpha_t - alpha_t-1| over pixels whose luma changed
by less than 2/255 and that lie within 10 px of the matte's edge or inside the person), and edge
alignment (mean image gradient where the matte has its edges, over the image's mean gradient).

Run: .venv/bin/python scripts/eval_matte.py [--frames N] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inference_server.compositing.matte import MatteChain, Segmenter, luma  # noqa: E402
from inference_server.compositing.options import MatteOptions  # noqa: E402
from inference_server.media.video import iter_frames  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data"
GRID = ["bbaf2n.mpg", "lwbsza.mpg", "id2_vcd_swwp2s.mpg"]
BACKGROUND = Path("video/sports2d_walk_jump/demo.mp4")
REAL = [Path("video/pose2sim_balancing/videos/cam01.mp4"), BACKGROUND]


# ---- ground truth ----

def key_grid(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(foreground without blue spill, alpha) of a GRID frame, cropped to the backdrop's inside."""
    f = rgb[2:260, 6:354].astype(np.float32)
    d = f[..., 2] - f[..., 0]
    alpha = np.clip(1.0 - (d - 40.0) / 80.0, 0.0, 1.0)
    fg = f.copy()
    fg[..., 2] = np.minimum(fg[..., 2], np.maximum(fg[..., 0], fg[..., 1]))  # despill
    return fg, alpha


def composites(clip: Path, frames: int, bg_frames: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    images, truths = [], []
    for k, frame in enumerate(iter_frames(clip, 0, frames)):
        fg, alpha = key_grid(frame.image)
        h, w = fg.shape[0] * 2, fg.shape[1] * 2
        fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_CUBIC)
        alpha = np.clip(cv2.resize(alpha, (w, h), interpolation=cv2.INTER_CUBIC), 0.0, 1.0)
        src = bg_frames[k % len(bg_frames)]
        x0 = 2 * k  # a slow pan across real, moving footage
        bg = cv2.resize(src[0:480, 1100 + x0:1100 + x0 + 600], (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        comp = fg * alpha[..., None] + bg * (1.0 - alpha[..., None])
        images.append(np.clip(comp, 0, 255).astype(np.uint8))
        truths.append(alpha.astype(np.float32))
    return images, truths


# ---- metrics ----

def sad(a: np.ndarray, g: np.ndarray) -> float:
    return float(np.abs(a - g).sum() / 1000.0)


def mse(a: np.ndarray, g: np.ndarray) -> float:
    return float(((a - g) ** 2).mean() * 1000.0)


def gradient_error(a: np.ndarray, g: np.ndarray, sigma: float = 1.4) -> float:
    def mag(x: np.ndarray) -> np.ndarray:
        gx = ndimage.gaussian_filter(x.astype(np.float64), sigma, order=(0, 1))
        gy = ndimage.gaussian_filter(x.astype(np.float64), sigma, order=(1, 0))
        return np.hypot(gx, gy)

    return float(((mag(a) - mag(g)) ** 2).sum() / 1000.0)


def connectivity_error(a: np.ndarray, g: np.ndarray, step: float = 0.1) -> float:
    thresholds = np.arange(0.0, 1.0 + step, step)
    level = np.ones_like(a)  # the threshold at which each pixel leaves the connected source region
    for t in thresholds[1:]:
        both = (a >= t) & (g >= t)
        labels, n = ndimage.label(both)  # 4-connectivity (the default structuring element)
        if n == 0:
            keep = np.zeros_like(both)
        else:
            sizes = np.bincount(labels.ravel())
            sizes[0] = 0
            keep = labels == int(sizes.argmax())
        leaving = (level == 1) & ~keep
        level[leaving] = t - step
    def phi(x: np.ndarray) -> np.ndarray:
        d = x - level
        return 1.0 - d * (d >= 0.15)

    return float(np.abs(phi(a) - phi(g)).sum() / 1000.0)


def dtssd(a: list[np.ndarray], g: list[np.ndarray]) -> float:
    vals = [np.sqrt((((a[t] - a[t - 1]) - (g[t] - g[t - 1])) ** 2).sum()) / np.sqrt(a[t].size) * 100.0
            for t in range(1, len(a))]
    return float(np.mean(vals))


def messddt(a: list[np.ndarray], g: list[np.ndarray], images: list[np.ndarray]) -> float:
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    vals = []
    for t in range(1, len(a)):
        cur = cv2.cvtColor(images[t], cv2.COLOR_RGB2GRAY)
        prev = cv2.cvtColor(images[t - 1], cv2.COLOR_RGB2GRAY)
        flow = np.asarray(dis.calc(cur, prev, np.zeros((*cur.shape, 2), np.float32)))
        h, w = cur.shape
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        e_now = (a[t] - g[t]) ** 2
        e_prev = cv2.remap((a[t - 1] - g[t - 1]) ** 2, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        vals.append(np.abs(e_now - e_prev).sum() / a[t].size * 1e6)
    return float(np.mean(vals))


def static_flicker(mattes: list[np.ndarray], images: list[np.ndarray]) -> float:
    """Mean |alpha_t - alpha_t-1| where the image did not change, near or inside the person."""
    total, count = 0.0, 0
    kernel = np.ones((21, 21), np.uint8)
    for t in range(1, len(mattes)):
        still = np.abs(luma(images[t]) - luma(images[t - 1])) < 2.0 / 255.0
        near = cv2.dilate((mattes[t - 1] > 0.05).astype(np.uint8), kernel) > 0
        sel = still & near
        total += float(np.abs(mattes[t] - mattes[t - 1])[sel].sum())
        count += int(sel.sum())
    return total / max(count, 1)


def edge_alignment(mattes: list[np.ndarray], images: list[np.ndarray]) -> float:
    """Image gradient where the matte has its edges, over the image's mean gradient (higher: edges
    on the image's edges)."""
    vals = []
    for m, img in zip(mattes, images, strict=True):
        gi = luma(img)
        img_grad = np.hypot(cv2.Sobel(gi, cv2.CV_32F, 1, 0), cv2.Sobel(gi, cv2.CV_32F, 0, 1))
        m_grad = np.hypot(cv2.Sobel(m, cv2.CV_32F, 1, 0), cv2.Sobel(m, cv2.CV_32F, 0, 1))
        if m_grad.sum() > 0:
            vals.append(float((m_grad * img_grad).sum() / m_grad.sum() / max(img_grad.mean(), 1e-6)))
    return float(np.mean(vals)) if vals else 0.0


# ---- methods ----

def bare(seg: Segmenter) -> object:
    """Bare Selfie Segmentation: the model on the full frame, its mask as it comes."""
    return lambda rgb: seg(rgb)


def run(method: object, images: list[np.ndarray]) -> list[np.ndarray]:
    return [method(img) for img in images]  # type: ignore[operator]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=60, help="frames per clip")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data folder (../shared/data)")
    args = ap.parse_args()
    seg = Segmenter()
    methods = {"bare": lambda: bare(seg), "chain": lambda: MatteChain(MatteOptions(), seg),
               "chain, no mirror": lambda: MatteChain(MatteOptions(mirror=False), seg),
               "no band matting": lambda: MatteChain(MatteOptions(band_matting=False), seg),
               "refine only": lambda: MatteChain(MatteOptions(stabilize=False), seg),
               "stabilize only": lambda: MatteChain(MatteOptions(refine=False), seg)}
    bg_frames = [f.image for f in iter_frames(args.data / BACKGROUND, 0, args.frames)]
    names = ["SAD", "MSE", "Grad", "Conn", "dtSSD", "MESSDdt"]
    scores: dict[str, dict[str, list[float]]] = {m: {n: [] for n in names} for m in methods}
    for clip in GRID:
        images, truths = composites(args.data / "face_video" / "grid" / clip, args.frames, bg_frames)
        for label, make in methods.items():
            mattes = run(make(), images)
            s = scores[label]
            s["SAD"].append(np.mean([sad(a, g) for a, g in zip(mattes, truths, strict=True)]))
            s["MSE"].append(np.mean([mse(a, g) for a, g in zip(mattes, truths, strict=True)]))
            s["Grad"].append(np.mean([gradient_error(a, g) for a, g in zip(mattes, truths, strict=True)]))
            s["Conn"].append(np.mean([connectivity_error(a, g) for a, g in zip(mattes, truths, strict=True)]))
            s["dtSSD"].append(dtssd(mattes, truths))
            s["MESSDdt"].append(messddt(mattes, truths, images))
    h, w = truths[0].shape
    print(f"Ground truth: {len(GRID)} GRID heads keyed and composited over Sports2D footage, {args.frames} frames "
          f"each, {w}x{h}")
    print(f"{'method':16s}" + "".join(f"{n:>10s}" for n in names))
    for label in methods:
        print(f"{label:16s}" + "".join(f"{np.mean(scores[label][n]):10.4f}" for n in names))
    print(f"{'chain / bare':16s}" + "".join(f"{np.mean(scores['chain'][n]) / np.mean(scores['bare'][n]):10.3f}"
                                            for n in names))
    print("\nReal clips, no ground truth:")
    print(f"{'clip':28s}{'method':16s}{'flicker':>10s}{'edges':>10s}")
    ratios = []
    for clip in REAL:
        images = [f.image for f in iter_frames(args.data / clip, 0, args.frames)]
        results = {}
        for label in ("bare", "chain"):
            mattes = run(methods[label](), images)
            results[label] = (static_flicker(mattes, images), edge_alignment(mattes, images))
            print(f"{clip.name:28s}{label:16s}{results[label][0]:10.5f}{results[label][1]:10.3f}")
        ratios.append(results["chain"][0] / results["bare"][0])
        print(f"{clip.name:28s}{'chain / bare':16s}{ratios[-1]:10.2f}{results['chain'][1] / results['bare'][1]:10.2f}")
    c = {n: np.mean(scores["chain"][n]) / np.mean(scores["bare"][n]) for n in names}
    print("\nTargets (chain / bare): flicker <= 0.5: " + ", ".join(f"{r:.2f}" for r in ratios)
          + f"; dtSSD <= 0.6: {c['dtSSD']:.3f}; MSE <= 0.7: {c['MSE']:.3f}; Grad <= 0.7: {c['Grad']:.3f}; "
          f"SAD <= 1: {c['SAD']:.3f}")
    seg.close()


if __name__ == "__main__":
    main()
