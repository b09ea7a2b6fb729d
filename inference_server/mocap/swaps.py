"""Undo MediaPipe's left/right label swaps.

When a body is seen from the side or from behind, MediaPipe sometimes decides for a run of frames
that the subject faces the other way: every left landmark then carries the right one's position
and vice versa. In the image this is a jump, the left knee suddenly sitting where the right knee
was a frame earlier, while the joints themselves moved smoothly.

Each pair of frames up to NEIGHBOURS valid frames apart says how much more smoothly the landmarks
move between them with the same labelling than with one of them relabelled; the labelling of the
whole clip is the one that agrees best with all these pairwise measurements at once (a Z2
synchronisation problem, solved by the leading eigenvector of their sparse symmetric matrix, as in
spectral synchronisation). A single frame whose pose went wrong (a limb taken from someone beside
the subject), or a few where MediaPipe flickers while the body is side-on, fit both labellings
about equally: their measurements are weak, and the frames around them, compared with each other
across them, outvote them.

On the Pose2Sim balancing trial, cam02 has such a run (about frames 42 to 76, partly flickering);
undoing it lowered that view's Procrustes-aligned joint error of the solved skeleton from 125 to
76 mm (scripts/eval_mocap.py). The other three views have no swaps and are left unchanged. The
two-state Viterbi chain this replaced compared each frame with the one before only, and a glitch
or a flicker could flip the labels of the rest of the clip: on cam02 with a second person crossing
(140 mm instead of 84) and in runs of the clean cam02 clip (178 mm instead of 80); the recordings
in tests/data/pose2sim are those cases.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sparse
from scipy.sparse.linalg import eigsh

from inference_server.mocap.landmarks import Landmarks

# MediaPipe Pose left/right landmark pairs (eyes, ears, mouth, arms, hands, legs, feet).
LEFT = np.array([1, 2, 3, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31])
RIGHT = np.array([4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32])
# Each frame is compared with the next this many valid frames (about 0.1-0.2 s): far enough to
# reach past a glitch or a flicker, near enough that the body has not moved by a limb's spread.
NEIGHBOURS = 5


def _mirror_index() -> np.ndarray:
    index = np.arange(33)
    index[LEFT], index[RIGHT] = RIGHT, LEFT
    return index


MIRROR = _mirror_index()


def find_swaps(image_xy: np.ndarray, visibility: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Frames (F,) bool whose left and right labels should be exchanged.

    image_xy: (F, 33, 2) landmark pixels; visibility (F, 33); present (F,) bool. Frames without a
    person carry the labelling of the last frame with one. Of the two labellings consistent over
    time, the one MediaPipe uses in most frames is taken as right.
    """
    f = len(image_xy)
    valid = np.asarray(present, dtype=bool) & np.all(np.isfinite(image_xy), axis=(1, 2))
    frames = np.flatnonzero(valid)
    n = len(frames)
    if n < 2:
        return np.zeros(f, dtype=bool)
    xy = np.nan_to_num(image_xy)
    weight = np.minimum(visibility[:, LEFT], visibility[:, RIGHT])
    pairs = np.concatenate([LEFT, RIGHT])
    rows, cols, agree = [], [], []
    for k in range(1, min(NEIGHBOURS, n - 1) + 1):
        a, b = frames[:-k], frames[k:]
        w = np.minimum(weight[a], weight[b])
        w = np.concatenate([w, w], axis=1)
        same = _moved(xy[a][:, pairs], xy[b][:, pairs], w)
        relabelled = _moved(xy[a][:, pairs], xy[b][:, MIRROR][:, pairs], w)
        # +1: the same labelling is far smoother, -1: one of them relabelled is; ~0: no telling.
        agree.append((relabelled - same) / np.maximum(relabelled + same, 1e-9))
        rows.append(np.arange(n - k))
        cols.append(np.arange(k, n))
    i, j, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(agree)
    matrix = sparse.csr_matrix((np.concatenate([v, v]), (np.concatenate([i, j]), np.concatenate([j, i]))),
                               shape=(n, n))
    if n <= 2 * NEIGHBOURS + 2:  # too small for ARPACK
        leading = np.linalg.eigh(matrix.toarray())[1][:, -1]
    else:
        leading = eigsh(matrix, k=1, which="LA", v0=np.ones(n))[1][:, 0]
    swapped = np.zeros(f, dtype=bool)
    swapped[frames] = leading < 0
    # Frames without a person carry the labelling of the last one with a person (the first's, before it).
    carried = np.maximum.accumulate(np.where(valid, np.arange(f), -1))
    swapped = swapped[np.where(carried >= 0, carried, frames[0])]
    if swapped[valid].sum() * 2 > valid.sum():
        swapped = ~swapped
    return swapped & valid


def _moved(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(N,) how far the points (N, K, 2) moved from a to b, their mean weighted by w (N, K)."""
    return (np.linalg.norm(a - b, axis=-1) * w).sum(axis=-1) / np.maximum(w.sum(axis=-1), 1e-9)


def unswap(lm: Landmarks, swapped: np.ndarray) -> Landmarks:
    """A copy with left and right exchanged in the swapped frames (F,).

    Pose image and world landmarks and visibility are relabelled, and so are the hand tracks:
    Holistic names hands after the pose's wrists, so a swapped pose came with swapped hands.
    """
    def fix(a: np.ndarray) -> np.ndarray:
        out = np.array(a, copy=True)
        out[swapped] = out[swapped][:, MIRROR]
        return out

    changes = {"pose_image": fix(lm.pose_image), "pose_world": fix(lm.pose_world),
               "pose_visibility": fix(lm.pose_visibility)}
    if lm.left_hand_image is not None and lm.right_hand_image is not None:
        left, right = np.array(lm.left_hand_image, copy=True), np.array(lm.right_hand_image, copy=True)
        left[swapped], right[swapped] = lm.right_hand_image[swapped], lm.left_hand_image[swapped]
        changes.update(left_hand_image=left, right_hand_image=right)
    return Landmarks(**{**vars(lm), **changes})
