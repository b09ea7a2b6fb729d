"""The one place where Keygrip's Y-up convention meets Blender's Z-up.

The server speaks right-handed Y-up metres (glTF/USD); Blender is right-handed Z-up. Both have the
character's left towards +X, so the change of basis is a +90 degree turn about X:

    (x, y, z)_blender = (x, -z, y)        (x, y, z)_keygrip = (x, z, -y)

Per-bone rotations need no conversion: they are expressed in each bone's own rest frame, which is
the same frame on both sides. Only world- or armature-space vectors and matrices pass through here.
"""

from __future__ import annotations

import numpy as np

# Rows map a Y-up vector to Z-up: v_zup = Y_UP_TO_Z_UP @ v_yup.
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
Z_UP_TO_Y_UP = Y_UP_TO_Z_UP.T


def vectors_to_blender(v: np.ndarray) -> np.ndarray:
    """Y-up vectors (..., 3) to Blender's Z-up (..., 3); lengths are unchanged."""
    return np.asarray(v, dtype=np.float64) @ Y_UP_TO_Z_UP.T


def vectors_from_blender(v: np.ndarray) -> np.ndarray:
    """Blender Z-up vectors (..., 3) to Y-up (..., 3)."""
    return np.asarray(v, dtype=np.float64) @ Z_UP_TO_Y_UP.T


def matrices_from_blender(m: np.ndarray, scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Blender Z-up rigid transforms (..., 4, 4) to Y-up, with translations multiplied by `scale`.

    Only the target space changes (M' = C @ M), not the local frame the matrix maps from: a bone's
    local axes stay Blender's, which is what keeps per-bone rotations convention-free.
    scale: scalar or (3,) per-axis factor applied to the Z-up translation before the turn (the
        armature object's world scale, so that armature units become metres).
    """
    m = np.asarray(m, dtype=np.float64)
    out = np.array(m, copy=True)
    out[..., :3, :3] = Z_UP_TO_Y_UP @ m[..., :3, :3]
    out[..., :3, 3] = vectors_from_blender(m[..., :3, 3] * np.asarray(scale, dtype=np.float64))
    return out


def quaternions_xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    """Keygrip's (x, y, z, w) quaternions (..., 4) to Blender's (w, x, y, z) order."""
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([q[..., 3:4], q[..., :3]], axis=-1)


def quaternions_wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    """Blender's (w, x, y, z) quaternions (..., 4) to Keygrip's (x, y, z, w) order."""
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([q[..., 1:4], q[..., 0:1]], axis=-1)
