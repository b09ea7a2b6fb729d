"""A clean plate: the background of one frame of a shot, without the person.

For each sampled frame the person matte (matte.py) is grown by `dilate` pixels (soft edges, motion
blur and the segmenter's misses stay out); the frame is registered onto the reference frame with a
homography from ORB features on its uncovered background (a moving camera; a locked-off one gives
the identity); then every pixel is the median over the frames where it was uncovered (robust to
what moves through the background for a few frames). Pixels never uncovered are the coverage map;
they are filled by OpenCV's inpainting (Telea), from the pixels around them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Frames the median is taken over, spread evenly over the range: the median of 32 samples is as
# robust as that of 300, at a tenth of the memory (a 1080p frame is 6 MB).
MAX_SAMPLES = 32
_MIN_MATCHES = 12


@dataclass
class CleanPlate:
    rgb: np.ndarray        # (H, W, 3) uint8 sRGB, unseen pixels inpainted
    unseen: np.ndarray     # (H, W) bool: never uncovered in any frame
    used: list[int]        # frame numbers that contributed
    skipped: list[int]     # frames that could not be registered


def sample_numbers(numbers: tuple[int, ...], reference: int, limit: int = MAX_SAMPLES) -> list[int]:
    """At most `limit` frame numbers spread evenly over `numbers`, always with the reference."""
    if len(numbers) <= limit:
        return list(numbers)
    picks = {numbers[round(i)] for i in np.linspace(0, len(numbers) - 1, limit - 1)}
    return sorted(picks | {reference})


def uncovered(matte: np.ndarray, dilate: int) -> np.ndarray:
    """(H, W) bool: pixels the person does not cover, with the matte grown by `dilate` pixels."""
    covered = (matte > 0.05).astype(np.uint8)
    if dilate > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
        return np.asarray(cv2.dilate(covered, kernel)) == 0
    return covered == 0


class Registration:
    """Homographies from frames onto the reference frame, from ORB features on their backgrounds."""

    def __init__(self, reference: np.ndarray, reference_mask: np.ndarray) -> None:
        self._orb = cv2.ORB.create(nfeatures=3000)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
        self._ref = self._orb.detectAndCompute(_grey(reference), reference_mask.astype(np.uint8) * 255)

    def homography(self, rgb: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
        """The 3x3 homography taking this frame's pixels onto the reference's; None when too few
        background features match."""
        kp, desc = self._orb.detectAndCompute(_grey(rgb), mask.astype(np.uint8) * 255)
        ref_kp, ref_desc = self._ref
        if desc is None or ref_desc is None or len(kp) < _MIN_MATCHES:
            return None
        matches = self._matcher.match(desc, ref_desc)
        if len(matches) < _MIN_MATCHES:
            return None
        src = np.array([kp[m.queryIdx].pt for m in matches], dtype=np.float32)
        dst = np.array([ref_kp[m.trainIdx].pt for m in matches], dtype=np.float32)
        h, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 2.0)
        if h is None or int(inliers.sum()) < _MIN_MATCHES:
            return None
        return np.asarray(h, dtype=np.float64)


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def masked_median(frames: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the (lower) median of the frames' values where valid, and how many were valid.

    frames: (N, H, W, 3) uint8; valid: (N, H, W) bool. Invalid samples sort last (as 256 in uint16),
    so the median is the ((count - 1) // 2)-th sorted value; 0 where no frame is valid.
    """
    values = np.where(valid[..., None], frames.astype(np.uint16), np.uint16(256))
    values.sort(axis=0)
    count = valid.sum(axis=0)
    k = np.maximum(count - 1, 0) // 2
    median = np.take_along_axis(values, k[None, ..., None].repeat(3, axis=-1), axis=0)[0]
    median[count == 0] = 0
    return median.astype(np.uint8), count


def clean_plate(frames: np.ndarray, valid: np.ndarray, numbers: list[int], skipped: list[int]) -> CleanPlate:
    """The median plate over registered frames and masks, with never-seen pixels inpainted."""
    median, count = masked_median(frames, valid)
    unseen = count == 0
    rgb = median
    if unseen.any():
        radius = max(3, round(max(median.shape[:2]) / 200))
        rgb = cv2.inpaint(median, unseen.astype(np.uint8) * 255, radius, cv2.INPAINT_TELEA)
    return CleanPlate(rgb=rgb, unseen=unseen, used=numbers, skipped=skipped)
