"""Per-frame fit of the body landmarks to the image, MediaPipe's depth and constant bone lengths.

MediaPipe's image landmarks are far more precise than the depth of its world landmarks, and its
world limbs stretch and shrink from frame to frame. Each frame's limb landmarks are moved in
camera space to minimise, in metres,

    sum_j vis_j |lateral offset of P_j from its pixel's ray| ^ 2 / SIGMA_IMAGE^2
  + sum_j (Z_j - MediaPipe's depth of j) ^ 2 / SIGMA_DEPTH^2
  + sum_bones (|P_a - P_b| - length) ^ 2 / SIGMA_BONE^2

with a few Gauss-Newton steps on all frames at once. The lateral offset at the landmark's own depth
(X - Z x/f, Y - Z y/f) is linear in P, so only the bone terms need linearising.

On the four Pose2Sim balancing views (scripts/eval_mocap.py) this lowered the mean PA-MPJPE only
slightly (82.0 to 81.6 mm) but evenly: it fixed the view where snapping to the rays alone had made
things worse (cam03, 93.6 to 90.1 mm) and cost the others under 1 mm. Tighter bone weights
(SIGMA_BONE 5 mm) or a stronger depth prior did no better.
"""

from __future__ import annotations

import numpy as np

from inference_server.mocap import skeleton_fit as sk
from inference_server.mocap.skeleton_fit import BodyMeasures

# Standard deviations of the three terms, metres; see the module docstring.
SIGMA_IMAGE = 0.01
SIGMA_DEPTH = 0.05
SIGMA_BONE = 0.02
ITERATIONS = 4

# The landmarks that are fitted, and their bones as pairs of positions in this list.
FITTED = [sk.L_HIP, sk.R_HIP, sk.L_SHOULDER, sk.R_SHOULDER, sk.L_ELBOW, sk.R_ELBOW, sk.L_WRIST,
          sk.R_WRIST, sk.L_KNEE, sk.R_KNEE, sk.L_ANKLE, sk.R_ANKLE, sk.L_HEEL, sk.R_HEEL, sk.L_TOE,
          sk.R_TOE]


def _bones(m: BodyMeasures) -> list[tuple[int, int, float]]:
    """(landmark a, landmark b, length m) of the fitted bones, as positions in FITTED."""
    heel = float(np.hypot(m.ankle_height, m.heel_back))
    toe = float(np.hypot(m.ankle_height, m.toe_front))
    out = [(sk.L_HIP, sk.R_HIP, 2.0 * m.hip_half_width),
           (sk.L_SHOULDER, sk.R_SHOULDER, 2.0 * m.shoulder_half_width)]
    for side in ("L", "R"):
        g = {n: getattr(sk, f"{side}_{n}") for n in ("SHOULDER", "ELBOW", "WRIST", "HIP", "KNEE",
                                                     "ANKLE", "HEEL", "TOE")}
        out += [(g["SHOULDER"], g["ELBOW"], m.upper_arm), (g["ELBOW"], g["WRIST"], m.forearm),
                (g["HIP"], g["KNEE"], m.thigh), (g["KNEE"], g["ANKLE"], m.shin),
                (g["ANKLE"], g["HEEL"], heel), (g["ANKLE"], g["TOE"], toe),
                (g["HEEL"], g["TOE"], m.heel_back + m.toe_front)]
    return [(FITTED.index(a), FITTED.index(b), length) for a, b, length in out]


def fit_pose(points: np.ndarray, rays: np.ndarray, visibility: np.ndarray, m: BodyMeasures
             ) -> np.ndarray:
    """Camera-space landmarks (F, 33, 3) moved to fit the image rays, depth and bone lengths.

    points: (F, 33, 3) camera-space landmarks, MediaPipe / OpenCV axes (x right, y down, z
    forward), metres: their z is the depth prior. rays: (F, 33, 2) the image position of each
    landmark as (x - cx) / f, (y - cy) / f. visibility: (F, 33). Frames with any non-finite
    fitted landmark are returned unchanged; landmarks outside FITTED are never moved.
    """
    out = np.array(points, dtype=np.float64, copy=True)
    ok = np.all(np.isfinite(points[:, FITTED]), axis=(1, 2)) & np.all(np.isfinite(rays[:, FITTED]),
                                                                      axis=(1, 2))
    if not ok.any():
        return out
    p = out[ok][:, FITTED]  # (F, K, 3)
    prior_z = p[..., 2].copy()
    ab = rays[ok][:, FITTED]
    w_img = np.clip(visibility[ok][:, FITTED], 0.05, 1.0) / SIGMA_IMAGE**2
    f, k = p.shape[:2]
    # Constant normal matrix of the linear terms, one 3x3 block per landmark.
    rows = np.zeros((f, k, 2, 3))
    rows[..., 0, 0] = rows[..., 1, 1] = 1.0
    rows[..., 0, 2], rows[..., 1, 2] = -ab[..., 0], -ab[..., 1]
    block = np.einsum("fkri,fk,fkrj->fkij", rows, w_img, rows)
    block[..., 2, 2] += 1.0 / SIGMA_DEPTH**2
    bones = _bones(m)
    w_bone = 1.0 / SIGMA_BONE**2
    idx = np.arange(k)
    for _ in range(ITERATIONS):
        lateral = np.einsum("fkri,fki->fkr", rows, p)
        grad = np.einsum("fkri,fk,fkr->fki", rows, w_img, lateral)
        grad[..., 2] += (p[..., 2] - prior_z) / SIGMA_DEPTH**2
        hess = np.zeros((f, k, 3, k, 3))
        hess[:, idx, :, idx, :] = np.moveaxis(block, 0, 1)
        for a, b, length in bones:
            d = p[:, a] - p[:, b]
            dist = np.maximum(np.linalg.norm(d, axis=-1), 1e-9)
            u = d / dist[:, None]
            r = (dist - length) * w_bone
            grad[:, a] += r[:, None] * u
            grad[:, b] -= r[:, None] * u
            uu = w_bone * np.einsum("fi,fj->fij", u, u)
            hess[:, a, :, a] += uu
            hess[:, b, :, b] += uu
            hess[:, a, :, b] -= uu
            hess[:, b, :, a] -= uu
        step = np.linalg.solve(hess.reshape(f, 3 * k, 3 * k), grad.reshape(f, 3 * k, 1))
        p = p - step.reshape(f, k, 3)
    fitted = out[ok]
    fitted[:, FITTED] = p
    out[ok] = fitted
    return out
