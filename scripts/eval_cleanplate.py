"""Clean plate on a synthetic locked-off clip with a known background.

A GRID talking head (../shared/data/face_video/grid, keyed off its blue backdrop as in eval_matte.py)
moves a third of the way across real footage from a locked-off camera (the Sports2D clip's trees and
buildings, where nobody walks; leaves and light move), so the background of the reference frame and
where the person covered it are known exactly; part of the frame is covered in every frame. The clean plate is
made by the job's own code (matte -> dilate -> masked median -> inpaint, registration off and on).

Prints PSNR where the background was ever visible (the issue's target: >= 35 dB), PSNR of the
inpainted pixels, and how the coverage map compares with the pixels the person truly always covered
(the map is grown by the matte's dilation, so it holds them all and some more).

Run: .venv/bin/python scripts/eval_cleanplate.py [--frames 40] [--data ../shared/data]
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

from eval_matte import BACKGROUND, key_grid  # noqa: E402

from inference_server.compositing.cleanplate import Registration, clean_plate, uncovered  # noqa: E402
from inference_server.compositing.matte import MatteChain, Segmenter  # noqa: E402
from inference_server.compositing.options import DEFAULT_DILATE, MatteOptions  # noqa: E402
from inference_server.media.video import iter_frames  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    err = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10.0 * np.log10(255.0 ** 2 / err) if err > 0 else float("inf")


def synthetic_clip(data: Path, frames: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(backgrounds, composites, alphas) of the synthetic locked-off clip: the GRID head keyed off its
    backdrop over the Sports2D trees, moving a third of the way across; 960x768 uint8 RGB and (H, W) float32
    alpha per frame."""
    bgs = [cv2.resize(f.image[0:480, 1100:1700], (960, 768), interpolation=cv2.INTER_AREA)
           for f in iter_frames(data / BACKGROUND, 0, frames)]
    h, w = bgs[0].shape[:2]
    images, alphas = [], []
    for k, frame in enumerate(iter_frames(data / "face_video" / "grid" / "lwbsza.mpg", 0, frames)):
        fg, alpha = key_grid(frame.image)
        ph, pw = alpha.shape
        x = round(k * (w - pw) / 3 / max(frames - 1, 1))
        img = bgs[k].astype(np.float32)
        a = alpha[..., None]
        img[h - ph:, x:x + pw] = img[h - ph:, x:x + pw] * (1 - a) + fg * a
        full = np.zeros((h, w), np.float32)
        full[h - ph:, x:x + pw] = alpha
        images.append(np.clip(img, 0, 255).astype(np.uint8))
        alphas.append(full)
    return bgs, images, alphas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                    help="the shared data folder (../shared/data)")
    args = ap.parse_args()
    bgs, images, alphas = synthetic_clip(args.data, args.frames)
    h, w = bgs[0].shape[:2]
    covered = [a > 0 for a in alphas]
    never_seen = np.logical_and.reduce(covered)
    seg = Segmenter()
    chain = MatteChain(MatteOptions(stabilize=False), seg)
    masks = [uncovered(chain(img), DEFAULT_DILATE) for img in images]
    ref = len(images) // 2
    bg = bgs[ref]
    print(f"{len(images)} frames {w}x{h}; the person always covers {never_seen.mean() * 100:.2f}% of the frame")
    print(f"{'registration':14s}{'PSNR seen':>12s}{'PSNR filled':>13s}{'map px':>9s}{'true px':>9s}"
          f"{'missed':>8s}{'skipped':>9s}")
    print("(PSNR against the reference frame's own background; map px: pixels the coverage map calls never "
          "seen; true px: pixels the person covered in every frame; missed: true ones the map lacks)")
    for register in (False, True):
        frames, valid, skipped = [], [], []
        reg = Registration(images[ref], masks[ref]) if register else None
        for i, (img, m) in enumerate(zip(images, masks, strict=True)):
            if reg is not None and i != ref:
                hom = reg.homography(img, m)
                if hom is None:
                    skipped.append(i)
                    continue
                img = cv2.warpPerspective(img, hom, (w, h), flags=cv2.INTER_LINEAR)
                m = cv2.warpPerspective(m.astype(np.uint8), hom, (w, h), flags=cv2.INTER_NEAREST).astype(bool)
            frames.append(img)
            valid.append(m)
        plate = clean_plate(np.stack(frames), np.stack(valid), list(range(len(frames))), skipped)
        seen = ~plate.unseen
        filled = psnr(plate.rgb[plate.unseen], bg[plate.unseen]) if plate.unseen.any() else float("nan")
        print(f"{'homography' if register else 'off':14s}{psnr(plate.rgb[seen], bg[seen]):12.2f}{filled:13.2f}"
              f"{int(plate.unseen.sum()):9d}{int(never_seen.sum()):9d}{int((never_seen & seen).sum()):8d}"
              f"{len(skipped):9d}")
    seg.close()


if __name__ == "__main__":
    main()
