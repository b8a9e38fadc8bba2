"""Vectorised geometry on normalised coordinates: point in polygon, signed line distance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Points = npt.NDArray[np.float64]


def polygon_edges(polygon: Sequence[Sequence[float]]) -> npt.NDArray[np.float64]:
    """(M, 4) edges x1, y1, x2, y2 of a closed polygon, for `points_in_polygon`."""
    poly = np.asarray(polygon, np.float64)
    return np.concatenate((poly, np.roll(poly, -1, axis=0)), axis=1)


def points_in_polygon(
    points: Points, polygon: Sequence[Sequence[float]] | npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Which of the (N, 2) points lie inside the polygon (even-odd ray casting).

    `polygon` is a list of points or the (M, 4) array from `polygon_edges` (faster when reused).
    """
    if isinstance(polygon, np.ndarray) and polygon.shape[1:] == (4,):
        edges = polygon
    else:
        edges = polygon_edges(np.asarray(polygon, np.float64).tolist())
    if points.shape[0] == 0:
        return np.zeros(0, bool)
    x, y = points[:, 0:1], points[:, 1:2]
    x1, y1, x2, y2 = edges[:, 0], edges[:, 1], edges[:, 2], edges[:, 3]
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    hits = straddles & (x < x_cross)
    return np.asarray(hits.sum(axis=1) % 2 == 1)


def signed_distance(
    points: Points, a: Sequence[float], b: Sequence[float]
) -> npt.NDArray[np.float64]:
    """Distance of each point from the line a->b; positive on the right looking from a to b."""
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length = float(np.hypot(dx, dy))
    return np.asarray((dx * (points[:, 1] - ay) - dy * (points[:, 0] - ax)) / length)
