"""Constant-velocity Kalman filter on (cx, cy, aspect, h), batched over all tracks at once."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Arr = npt.NDArray[np.float64]

_W_POS = 1.0 / 20.0
_W_VEL = 1.0 / 160.0
_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)


def xyxy_to_xyah(xyxy: Arr) -> Arr:
    """(N, 4) corner boxes to (N, 4) centre x, centre y, aspect w/h, height."""
    w = xyxy[:, 2] - xyxy[:, 0]
    h = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1e-3)
    return np.stack(((xyxy[:, 0] + xyxy[:, 2]) / 2, (xyxy[:, 1] + xyxy[:, 3]) / 2, w / h, h), 1)


def xyah_to_xyxy(xyah: Arr) -> Arr:
    """(N, >=4) centre/aspect/height states to (N, 4) corner boxes."""
    h = xyah[:, 3]
    w = xyah[:, 2] * h
    cx, cy = xyah[:, 0], xyah[:, 1]
    return np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), 1)


def initiate(xyah: Arr) -> tuple[Arr, Arr]:
    """Mean (N, 8) and covariance (N, 8, 8) of new tracks from their first measurement."""
    n = xyah.shape[0]
    mean = np.concatenate((xyah, np.zeros((n, 4))), axis=1)
    h = xyah[:, 3]
    std = np.stack(
        [
            *(2 * _W_POS * h, 2 * _W_POS * h, np.full(n, 1e-2), 2 * _W_POS * h),
            *(10 * _W_VEL * h, 10 * _W_VEL * h, np.full(n, 1e-5), 10 * _W_VEL * h),
        ],
        axis=1,
    )
    cov = np.zeros((n, 8, 8))
    idx = np.arange(8)
    cov[:, idx, idx] = std**2
    return mean, cov


def predict(mean: Arr, cov: Arr) -> tuple[Arr, Arr]:
    """One time step ahead for every track."""
    h = mean[:, 3]
    n = mean.shape[0]
    std = np.stack(
        [
            *(_W_POS * h, _W_POS * h, np.full(n, 1e-2), _W_POS * h),
            *(_W_VEL * h, _W_VEL * h, np.full(n, 1e-5), _W_VEL * h),
        ],
        axis=1,
    )
    mean = mean @ _F.T
    cov = _F @ cov @ _F.T
    idx = np.arange(8)
    cov[:, idx, idx] += std**2
    return mean, cov


def update(mean: Arr, cov: Arr, xyah: Arr) -> tuple[Arr, Arr]:
    """Correct the tracks with their matched measurements (all arrays row-aligned)."""
    h = mean[:, 3]
    r = np.stack([_W_POS * h, _W_POS * h, np.full(h.shape, 1e-1), _W_POS * h], axis=1) ** 2
    proj_cov = cov[:, :4, :4].copy()
    idx = np.arange(4)
    proj_cov[:, idx, idx] += r
    cross = cov[:, :, :4]  # cov @ H.T
    gain = np.linalg.solve(proj_cov, cross.transpose(0, 2, 1)).transpose(0, 2, 1)
    innovation = xyah - mean[:, :4]
    mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    cov = cov - gain @ proj_cov @ gain.transpose(0, 2, 1)
    return mean, cov
