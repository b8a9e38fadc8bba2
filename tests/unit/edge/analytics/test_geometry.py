"""Geometry helpers: point in polygon (convex and concave), signed distance to a line."""

from __future__ import annotations

import numpy as np

from edge.analytics.geometry import points_in_polygon, polygon_edges, signed_distance

L_SHAPE = [(0.0, 0.0), (1.0, 0.0), (1.0, 0.4), (0.4, 0.4), (0.4, 1.0), (0.0, 1.0)]


def test_points_in_a_concave_polygon() -> None:
    pts = np.array([[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8], [1.5, 0.5]])
    expected = [True, True, False, True, False]
    assert points_in_polygon(pts, L_SHAPE).tolist() == expected
    assert points_in_polygon(pts, polygon_edges(L_SHAPE)).tolist() == expected
    assert points_in_polygon(np.zeros((0, 2)), L_SHAPE).shape == (0,)


def test_signed_distance_is_positive_on_the_right() -> None:
    pts = np.array([[0.5, 0.7], [0.5, 0.2]])
    np.testing.assert_allclose(signed_distance(pts, (0.0, 0.5), (1.0, 0.5)), [0.2, -0.3])
