"""Geometry primitives of the device config: points, lines and polygons in normalised coordinates.

Coordinates are fractions of the image width and height (0..1, origin top-left), so a config
survives a change of camera resolution.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

NormFloat = Annotated[float, Field(ge=0.0, le=1.0)]
Point = tuple[NormFloat, NormFloat]


def polygon_area(points: list[Point]) -> float:
    """Signed area (shoelace formula) of a polygon given as a list of points."""
    area = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True):
        area += x1 * y2 - x2 * y1
    return area / 2.0


def _segments_cross(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """True when segments p1-p2 and q1-q2 properly intersect (touching ends do not count)."""

    def orient(a: Point, b: Point, c: Point) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def _check_polygon(points: list[Point]) -> list[Point]:
    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
    if abs(polygon_area(points)) < 1e-6:
        raise ValueError("the polygon has no area (its points are collinear or repeated)")
    edges = list(zip(points, points[1:] + points[:1], strict=True))
    for i, (a1, a2) in enumerate(edges):
        for j in range(i + 2, len(edges)):
            if i == 0 and j == len(edges) - 1:
                continue  # first and last edges share a vertex
            b1, b2 = edges[j]
            if _segments_cross(a1, a2, b1, b2):
                raise ValueError(f"the polygon crosses itself (edges {i} and {j})")
    return points


def _check_segment(points: list[Point]) -> list[Point]:
    if len(points) != 2:
        raise ValueError(f"a line needs exactly 2 points, got {len(points)}")
    (x1, y1), (x2, y2) = points
    if abs(x1 - x2) + abs(y1 - y2) < 1e-3:
        raise ValueError("the two points of a line must differ")
    return points


Polygon = Annotated[list[Point], AfterValidator(_check_polygon)]
Segment = Annotated[list[Point], AfterValidator(_check_segment)]
