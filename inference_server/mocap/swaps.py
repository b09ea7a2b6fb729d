"""Undo MediaPipe's left/right label swaps.

When a body is seen from the side or from behind, MediaPipe sometimes decides for a run of frames
that the subject faces the other way: every left landmark then carries the right one's position
and vice versa. In the image this is a jump, the left knee suddenly sitting where the right knee
was a frame earlier, while the joints themselves moved smoothly. A two-state Viterbi pass over the
clip picks, per frame, the labelling that keeps every landmark's image track smooth.

On the Pose2Sim balancing trial, cam02 has such a run (about frames 42 to 76, partly flickering);
undoing it lowered that view's Procrustes-aligned joint error of the solved skeleton from 125 to
76 mm (scripts/eval_mocap.py). The other three views have no swaps and are left unchanged.

A frame whose pose went wrong (a limb taken from someone beside the subject) fits neither labelling,
and one where MediaPipe flickers while the body is side-on fits both about equally; chained
through, either can flip the labels of everything after it (on cam02 with a second person
crossing: from frame 55 to the end, 140 mm instead of 84; on the clean cam02 clip, encoded
differently, from frame 0 to 84: 178 mm instead of 80). Such frames are left out of the chain and
labelled afterwards like the good frame after them. The three cam02 recordings in
tests/data/pose2sim are the cases.
"""

from __future__ import annotations

import numpy as np

from inference_server.mocap.landmarks import Landmarks

# MediaPipe Pose left/right landmark pairs (eyes, ears, mouth, arms, hands, legs, feet).
LEFT = np.array([1, 2, 3, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31])
RIGHT = np.array([4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32])
# Cost of changing the labelling between two frames, in units of the body's image size: a real
# swap moves every pair by about a limb's spread, far more. Ambiguous frames (limbs overlapping in
# the image) are skipped (below), so it only has to outweigh noise; at 0.1 it outweighed the step
# of a real swap on frames where MediaPipe flickers every frame (0.06-0.09) and lost one of them.
_SWITCH_COST = 0.05
# A step costing more than this many times the clip's median step, either way, is a glitch; one
# whose dearer labelling costs less than AMBIGUOUS_RATIO times the cheaper is ambiguous.
GLITCH_RATIO = 5.0
GLITCH_FLOOR = 0.1
AMBIGUOUS_RATIO = 2.0
# At most this many such frames in a row are skipped (more is the body moving fast: kept).
MAX_GLITCH_FRAMES = 3


def _mirror_index() -> np.ndarray:
    index = np.arange(33)
    index[LEFT], index[RIGHT] = RIGHT, LEFT
    return index


MIRROR = _mirror_index()


def find_swaps(image_xy: np.ndarray, visibility: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Frames (F,) bool whose left and right labels should be exchanged.

    image_xy: (F, 33, 2) landmark pixels; visibility (F, 33); present (F,) bool. Frames without a
    person carry the labelling through. Of the two labellings consistent over time, the one
    MediaPipe uses in most frames is taken as right.
    """
    f = len(image_xy)
    xy = np.nan_to_num(image_xy)
    valid = np.asarray(present, dtype=bool) & np.all(np.isfinite(image_xy), axis=(1, 2))
    # The body's image size sets the scale of every cost.
    extent = np.nanmedian(np.ptp(image_xy[valid], axis=1).max(axis=-1)) if valid.any() else 1.0
    weight = np.minimum(visibility[:, LEFT], visibility[:, RIGHT])
    labelled = np.stack([xy, xy[:, MIRROR]], axis=1)  # (F, 2, 33, 2)
    pairs = np.concatenate([LEFT, RIGHT])

    def step_cost(a: int, b: int) -> np.ndarray:
        """(2, 2) cost of going from frame a to frame b: rows a's labelling, columns b's (0: as
        MediaPipe labels, 1: left and right exchanged)."""
        w = np.minimum(weight[b], weight[a])
        w = np.concatenate([w, w])
        move = np.linalg.norm(labelled[a][:, None, pairs] - labelled[b][None, :, pairs], axis=-1)
        return (move * w).sum(axis=-1) / max(w.sum(), 1e-9) / max(extent, 1e-9)

    frames = np.flatnonzero(valid)
    # A frame that no labelling joins smoothly to the one before (both costs far above the clip's
    # usual step: a pose that went wrong for a frame or two, someone else's limb taken), or that
    # both join about as well, tells nothing about a swap: it is skipped, and the next frame is
    # compared with the last good one (a few at most in a row: after that the body is moving fast
    # or stays ambiguous, and the chain goes on from there).
    usual = [step_cost(a, b).min() for a, b in zip(frames[:-1], frames[1:], strict=True)]
    glitch = max(GLITCH_FLOOR, GLITCH_RATIO * float(np.median(usual))) if usual else np.inf
    cost = np.zeros(2)
    back = np.zeros((f, 2), dtype=np.int8)
    back[:] = (0, 1)
    last, skipped, glitches = -1, 0, []
    for t in frames:
        if last >= 0:
            step = step_cost(last, t)
            unclear = step.min() > glitch or step.max() < AMBIGUOUS_RATIO * step.min()
            if unclear and skipped < MAX_GLITCH_FRAMES:
                skipped += 1
                glitches.append(t)
                continue
            step = step + _SWITCH_COST * (1.0 - np.eye(2))
            total = cost[:, None] + step
            back[t] = total.argmin(axis=0)
            cost = total.min(axis=0)
        last, skipped = t, 0
    state = np.zeros(f, dtype=np.int8)
    s = int(cost.argmin())
    for t in range(f - 1, -1, -1):
        state[t] = s
        s = int(back[t, s])
    # A glitch frame takes the labelling that joins it best to the good frame after it.
    good = np.setdiff1d(frames, glitches)
    for t in glitches:
        after = good[good > t]
        if len(after):
            state[t] = int(step_cost(t, int(after[0]))[:, state[after[0]]].argmin())
    swapped = state.astype(bool)
    if swapped[valid].sum() * 2 > valid.sum():
        swapped = ~swapped
    return swapped & valid


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
