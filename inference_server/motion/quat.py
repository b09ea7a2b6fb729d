"""Vectorised quaternion math on numpy arrays.

Quaternions are stored (x, y, z, w) as glTF does, in the last axis of an array of shape (..., 4).
Every function broadcasts over the leading axes so that whole clips (frames x joints) are handled
in one call: retargeting and solving must never loop over frames in Python.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-9


def identity(shape: tuple[int, ...] = ()) -> np.ndarray:
    """Identity quaternions of the given leading shape."""
    q = np.zeros((*shape, 4), dtype=np.float64)
    q[..., 3] = 1.0
    return q


def normalize(q: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    return q / np.maximum(n, EPS)


def conjugate(q: np.ndarray) -> np.ndarray:
    return q * np.array([-1.0, -1.0, -1.0, 1.0])


inverse = conjugate  # unit quaternions only: every quaternion here is kept normalised


def multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (apply b first, then a)."""
    ax, ay, az, aw = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bx, by, bz, bw = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors v (..., 3) by quaternions q (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    u = q[..., :3]
    w = q[..., 3:4]
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def from_axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.maximum(np.linalg.norm(axis, axis=-1, keepdims=True), EPS)
    half = 0.5 * np.asarray(angle, dtype=np.float64)[..., None]
    return np.concatenate([axis * np.sin(half), np.cos(half)], axis=-1)


def to_axis_angle(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = normalize(canonical(q))
    s = np.linalg.norm(q[..., :3], axis=-1)
    angle = 2.0 * np.arctan2(s, q[..., 3])
    axis = q[..., :3] / np.maximum(s, EPS)[..., None]
    return axis, angle


def between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shortest-arc rotation taking direction a onto direction b (both (..., 3))."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), EPS)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), EPS)
    d = np.sum(a * b, axis=-1, keepdims=True)
    c = np.cross(a, b)
    q = np.concatenate([c, 1.0 + d], axis=-1)
    # Opposite vectors have no unique shortest arc: turn half way round any axis normal to a.
    opposite = (d[..., 0] < -1.0 + 1e-9)
    if np.any(opposite):
        ortho = np.cross(a, np.array([1.0, 0.0, 0.0]))
        small = np.linalg.norm(ortho, axis=-1) < 1e-6
        ortho = np.where(small[..., None], np.cross(a, np.array([0.0, 1.0, 0.0])), ortho)
        ortho = ortho / np.maximum(np.linalg.norm(ortho, axis=-1, keepdims=True), EPS)
        q = np.where(opposite[..., None], np.concatenate([ortho, np.zeros_like(d)], axis=-1), q)
    return normalize(q)


def to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from quaternions."""
    x, y, z, w = np.moveaxis(normalize(np.asarray(q, dtype=np.float64)), -1, 0)
    m = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return m.reshape(*m.shape[:-1], 3, 3)


def from_matrix(m: np.ndarray) -> np.ndarray:
    """Quaternions from rotation matrices (..., 3, 3), robust for every branch of the trace."""
    m = np.asarray(m, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    cands = np.stack(
        [
            np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                      m[..., 1, 0] - m[..., 0, 1], 1 + trace], axis=-1),
            np.stack([1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0],
                      m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] - m[..., 1, 2]], axis=-1),
            np.stack([m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22,
                      m[..., 1, 2] + m[..., 2, 1], m[..., 0, 2] - m[..., 2, 0]], axis=-1),
            np.stack([m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                      1 - m00 - m11 + m22, m[..., 1, 0] - m[..., 0, 1]], axis=-1),
        ],
        axis=-2,
    )
    choice = np.argmax(np.stack([trace, m00, m11, m22], axis=-1), axis=-1)
    q = np.take_along_axis(cands, choice[..., None, None], axis=-2)[..., 0, :]
    return normalize(q)


_AXES = {"X": np.array([1.0, 0.0, 0.0]), "Y": np.array([0.0, 1.0, 0.0]), "Z": np.array([0.0, 0.0, 1.0])}


def from_euler(angles: np.ndarray, order: str, degrees: bool = True) -> np.ndarray:
    """Quaternions from Euler angles (..., 3) given in channel order, e.g. order "ZYX".

    The result is R = R[order[0]] * R[order[1]] * R[order[2]], which is how BVH channel lists
    read: the first listed channel is the outermost rotation.
    """
    angles = np.asarray(angles, dtype=np.float64)
    if degrees:
        angles = np.radians(angles)
    q = identity(angles.shape[:-1])
    for i, axis in enumerate(order.upper()):
        q = multiply(q, from_axis_angle(np.broadcast_to(_AXES[axis], angles.shape), angles[..., i]))
    return q


def to_euler(q: np.ndarray, order: str, degrees: bool = True) -> np.ndarray:
    """Euler angles (..., 3) in channel order such that from_euler(to_euler(q)) == q."""
    m = to_matrix(q)
    idx = ["XYZ".index(a) for a in order.upper()]
    i, j, k = idx
    # Sign of the permutation decides the signs in the Tait-Bryan decomposition.
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    sy = np.clip(sign * m[..., i, k], -1.0, 1.0)
    b = np.arcsin(sy)
    gimbal = np.abs(sy) > 1.0 - 1e-9
    a = np.where(gimbal, np.arctan2(sign * m[..., k, j], m[..., j, j]),
                 np.arctan2(-sign * m[..., j, k], m[..., k, k]))
    c = np.where(gimbal, 0.0, np.arctan2(-sign * m[..., i, j], m[..., i, i]))
    out = np.stack([a, b, c], axis=-1)
    return np.degrees(out) if degrees else out


def canonical(q: np.ndarray) -> np.ndarray:
    """The representative with w >= 0 (q and -q are the same rotation)."""
    q = np.asarray(q, dtype=np.float64)
    return np.where(q[..., 3:4] < 0.0, -q, q)


def make_continuous(q: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs along `axis` (time) so consecutive quaternions lie in the same hemisphere.

    Interpolating hosts (Blender F-curves) otherwise swing the long way round.
    """
    q = np.moveaxis(np.asarray(q, dtype=np.float64), axis, 0).copy()
    if len(q) < 2:
        return np.moveaxis(q, 0, axis)
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    flips = np.cumsum(dots < 0.0, axis=0) % 2
    q[1:] *= np.where(flips[..., None] == 1, -1.0, 1.0)
    return np.moveaxis(q, 0, axis)


def angle_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in radians of the rotation taking a to b."""
    d = np.abs(np.sum(normalize(a) * normalize(b), axis=-1))
    return 2.0 * np.arccos(np.clip(d, -1.0, 1.0))


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    a = normalize(a)
    b = normalize(b)
    d = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(d < 0.0, -b, b)
    d = np.abs(d)
    t = np.asarray(t, dtype=np.float64)[..., None] if np.ndim(t) == np.ndim(a) - 1 else t
    theta = np.arccos(np.clip(d, -1.0, 1.0))
    s = np.sin(theta)
    near = s < 1e-6
    wa = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / np.where(near, 1.0, s))
    wb = np.where(near, t, np.sin(t * theta) / np.where(near, 1.0, s))
    return normalize(wa * a + wb * b)
