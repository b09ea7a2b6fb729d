"""Closed-form matting (Levin, Lischinski and Weiss 2008) solved on a thin band around a matte's edge.

The segmenter's matte knows where the person is but not how the edge looks: its transition is a
smooth ramp at the model's resolution. Closed-form matting assumes alpha is a linear function of
the colour in every small window (the colour-line model) and finds the alpha that fits those local
models best, via the matting Laplacian L. Here it is solved only where the matte is unsure: the
unknown band is the matte's transition (lo < q < hi) grown by `band` pixels; everywhere else a
strong prior keeps the matte as it is, and inside the band a weak prior pulls towards it (a trimap
made from the matte itself, with the matte as a soft data term). Only transition pixels within
settings.reach of the matte's 0.5 contour count:

    (L + diag(lambda)) alpha = diag(lambda) q,   lambda = prior inside the band, 100 outside.

L is kept as its windows' 9x9 blocks, a block-diagonal sparse matrix that scipy applies in C between
a gather and a scatter (numpy's batched products were several times slower; summing the blocks into one
assembled sparse matrix is no faster), and the system is solved by conjugate gradients with a Jacobi
preconditioner, started from q, for a fixed number of steps. Only the variables some window
over the band touches take part, so the cost grows with the length of the edge, not with the image.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import sparse

from inference_server.compositing.options import BandMatting

_OFFSETS = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
_KNOWN_PRIOR = np.float32(100.0)


def _inverse3(c: np.ndarray) -> np.ndarray:
    """Inverses of a stack of symmetric 3x3 matrices (N, 3, 3), by their adjugates (numpy's batched
    inverse costs several times more on 3x3 matrices)."""
    a, b, e = c[:, 0, 0], c[:, 0, 1], c[:, 0, 2]
    d, f, i = c[:, 1, 1], c[:, 1, 2], c[:, 2, 2]
    m00, m01, m02 = d * i - f * f, e * f - b * i, b * f - e * d
    m11, m12, m22 = a * i - e * e, b * e - a * f, a * d - b * b
    det = a * m00 + b * m01 + e * m02
    out = np.stack([m00, m01, m02, m01, m11, m12, m02, m12, m22], axis=1).reshape(-1, 3, 3)
    return out / det[:, None, None]


def band_matting(rgb: np.ndarray, matte: np.ndarray, settings: BandMatting) -> np.ndarray:
    """The matte (float32, 0..1) refined by closed-form matting on the band around its edge.

    rgb: uint8 (H, W, 3) image the matte belongs to; matte: (H, W) float32. settings.epsilon
    regularises each window's colour covariance (larger: smoother alpha); settings.prior is the weak
    pull towards the matte inside the band. Returns a new array; pixels outside the band keep the
    matte's values.
    """
    band, epsilon, prior, lo, hi = settings.band, settings.epsilon, settings.prior, settings.lo, settings.hi
    h, w = matte.shape
    # Unsure: within reach of the matte's 0.5 contour and between lo and hi (a segmenter's faint
    # probability over the background, far from any person, is no edge to solve for).
    person = (matte > 0.5).astype(np.uint8)
    reach = np.ones((2 * settings.reach + 1,) * 2, np.uint8)
    near = cv2.dilate(person, reach) > cv2.erode(person, reach)
    unknown = cv2.dilate((near & (matte > lo) & (matte < hi)).astype(np.uint8), np.ones((2 * band + 1,) * 2, np.uint8))
    # Windows are 3x3 around their centre: a centre on the border would reach outside the image.
    centres = cv2.dilate(unknown, np.ones((3, 3), np.uint8))
    centres[0, :] = centres[-1, :] = 0
    centres[:, 0] = centres[:, -1] = 0
    cy, cx = np.nonzero(centres)
    if cy.size == 0:
        return matte.copy()
    py = cy[:, None] + _OFFSETS[:, 0]
    px = cx[:, None] + _OFFSETS[:, 1]
    colour = rgb[py, px].astype(np.float32) * np.float32(1.0 / 255.0)  # (N, 9, 3)
    d = colour - colour.mean(axis=1, keepdims=True)
    cov = np.matmul(d.transpose(0, 2, 1), d) / np.float32(9.0) + np.float32(epsilon / 9.0) * np.eye(3, dtype=np.float32)
    # Each window's 9x9 block of L: I - (1 + d_i^T S^-1 d_j) / 9, as the diagonal blocks of a block-sparse
    # matrix so that applying all of them runs in scipy's C loop.
    blocks = np.matmul(np.matmul(d, _inverse3(cov)), d.transpose(0, 2, 1))
    blocks += np.float32(1.0)
    blocks *= np.float32(-1.0 / 9.0)
    blocks += np.eye(9, dtype=np.float32)
    windows = sparse.bsr_matrix((blocks, np.arange(cy.size), np.arange(cy.size + 1)), shape=(9 * cy.size,) * 2)

    # The variables: every pixel a window touches (the centres grown by one), numbered 0..n-1 through
    # a lookup image (np.unique would sort nine entries a window).
    touched = cv2.dilate(centres, np.ones((3, 3), np.uint8)).ravel()
    pixels = np.flatnonzero(touched)
    number = np.zeros(h * w, np.int32)
    number[pixels] = np.arange(pixels.size, dtype=np.int32)
    flat_ids = number[(py * w + px).ravel()]
    n = pixels.size
    q = matte.ravel()[pixels].astype(np.float32)
    lam = np.where(unknown.ravel()[pixels] > 0, np.float32(prior), _KNOWN_PRIOR)

    def apply(x: np.ndarray) -> np.ndarray:
        return np.bincount(flat_ids, windows @ x[flat_ids], minlength=n).astype(np.float32) + lam * x

    diag = np.bincount(flat_ids, blocks[:, np.arange(9), np.arange(9)].ravel(), minlength=n)
    precondition = (1.0 / (diag + lam)).astype(np.float32)
    # Preconditioned conjugate gradients from x = q: the residual starts at -L q.
    x = q.copy()
    r = lam * q - apply(x)
    z = precondition * r
    p = z.copy()
    rz = float(r @ z)
    for _ in range(settings.iterations):
        if rz <= 1e-12:
            break
        ap = apply(p)
        step = rz / float(p @ ap)
        x += np.float32(step) * p
        r -= np.float32(step) * ap
        z = precondition * r
        rz_next = float(r @ z)
        p = z + np.float32(rz_next / rz) * p
        rz = rz_next
    out = matte.copy().ravel()
    out[pixels] = np.clip(x, 0.0, 1.0)
    return out.reshape(h, w)
