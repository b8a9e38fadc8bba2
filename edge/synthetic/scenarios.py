"""Ready-made scenes with their expected counts: counting lines, zones/shelves, a store demo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.synthetic.scene import Keyframe, Scene, Walker

LINE = [[0.05, 0.5], [0.95, 0.5]]  # 'right' of it (down the image) is in
ZONE = [[0.05, 0.6], [0.45, 0.6], [0.45, 0.95], [0.05, 0.95]]
LEAD = 1.0  # seconds of empty scene first, so background models learn the floor
SHELF = [[0.72, 0.55], [0.95, 0.55], [0.95, 0.8], [0.72, 0.8]]


@dataclass(slots=True)
class Scenario:
    """A scene, the camera geometry it is meant for, and the exact expected results."""

    scene: Scene
    camera: dict[str, Any]
    expected: dict[str, Any] = field(default_factory=dict)


class Path:
    """Builds a walker's keyframes: walk, pause, sway."""

    def __init__(self, t0: float, x: float, y: float) -> None:
        self.keys: list[Keyframe] = [(t0, x, y)]

    def walk(self, *points: tuple[float, float], speed: float = 0.15) -> Path:
        """Walk through the points at `speed` (normalised units per second)."""
        for x, y in points:
            t, px, py = self.keys[-1]
            self.keys.append((t + float(np.hypot(x - px, y - py)) / speed, x, y))
        return self

    def pause(self, seconds: float) -> Path:
        """Stand still."""
        t, x, y = self.keys[-1]
        self.keys.append((t + seconds, x, y))
        return self

    def sway(self, dx: float, dy: float, n: int, period: float = 0.4) -> Path:
        """Sway n times by +-(dx, dy) around the current point and come back to it."""
        t, x, y = self.keys[-1]
        for i in range(n):
            self.keys.append((t + (i + 0.25) * period, x + dx, y + dy))
            self.keys.append((t + (i + 0.75) * period, x - dx, y - dy))
        self.keys.append((t + n * period, x, y))
        return self

    def done(self) -> tuple[Keyframe, ...]:
        """The keyframes."""
        return tuple(self.keys)


def line_scenario() -> Scenario:
    """Crossings one way and back, two abreast, jitter on the line, and behind a pillar."""
    walkers = [
        Walker(1, Path(LEAD + 0.0, 0.2, 0.1).walk((0.2, 1.25)).done()),
        Walker(2, Path(LEAD + 0.5, 0.85, 1.25).walk((0.85, -0.25)).done(), colour=(200, 60, 40)),
        Walker(3, Path(LEAD + 2.0, 0.44, 0.1).walk((0.44, 1.25)).done(), colour=(40, 160, 40)),
        Walker(4, Path(LEAD + 2.0, 0.53, 0.1).walk((0.53, 1.25)).done(), colour=(160, 40, 160)),
        # sways across the line within the hysteresis band, then walks in
        Walker(
            5,
            Path(LEAD + 5.0, 0.3, 0.12).walk((0.3, 0.5)).sway(0, 0.012, 5).walk((0.3, 1.25)).done(),
            colour=(20, 20, 120),
        ),
        # sways on the line, then turns back: no crossing at all
        Walker(
            6,
            Path(LEAD + 6.0, 0.12, 0.12)
            .walk((0.12, 0.5))
            .sway(0, 0.012, 4)
            .walk((0.12, -0.25))
            .done(),
            colour=(120, 120, 20),
        ),
        # walks in, stops, walks back out: one in and one out
        Walker(
            7,
            Path(LEAD + 8.0, 0.7, 0.15).walk((0.7, 0.75)).pause(1.0).walk((0.72, -0.25)).done(),
            colour=(20, 120, 120),
        ),
        # crosses hidden behind a pillar standing on the line
        Walker(8, Path(LEAD + 14.0, 0.6, 0.1).walk((0.6, 1.25)).done(), colour=(60, 30, 90)),
    ]
    scene = Scene(walkers, occluders=[(0.56, 0.4, 0.64, 0.6)])
    camera = {
        "id": "lines",
        "source": "synthetic",
        "lines": [{"id": "door", "points": LINE, "in_direction": "right", "min_distance": 0.02}],
    }
    # in: 1, 3, 4, 5, 7, 8; out: 2, 7
    return Scenario(scene, camera, {"door": (6, 2)})


def walkthrough_scenario() -> Scenario:
    """Plain crossings (one way, two abreast, in and back out) that a motion detector can see."""
    keep = {1, 2, 3, 4, 7}
    full = line_scenario()
    walkers = [w for w in full.scene.walkers if w.id in keep]
    return Scenario(Scene(walkers), full.camera, {"door": (4, 2)})


def zone_scenario() -> Scenario:
    """Two visits to a zone, a shelf visited twice, one passer-by who does not stop."""
    shopper = (
        Path(LEAD + 0.0, 0.02, 0.75)
        .walk((0.2, 0.75))
        .pause(3.0)
        .walk((0.6, 0.75))
        .pause(1.0)
        .walk((0.3, 0.8))
        .pause(2.0)
        .walk((0.3, 1.3))
        .done()
    )
    browser = (
        Path(LEAD + 1.0, 0.99, 0.68)
        .walk((0.83, 0.68))
        .sway(0.006, 0.0, 8, 0.5)
        .walk((0.83, 0.35))
        .pause(2.0)
        .walk((0.86, 0.72))
        .pause(3.5)
        .walk((1.1, 0.72))
        .done()
    )
    passer = Path(LEAD + 12.0, 0.6, 0.4).walk((0.8, 0.67), (0.99, 0.4), speed=0.3).done()
    scene = Scene(
        [
            Walker(1, shopper),
            Walker(2, browser, colour=(200, 60, 40)),
            Walker(3, passer, colour=(40, 160, 40)),
        ]
    )
    camera = {
        "id": "floor",
        "source": "synthetic",
        "zones": [{"id": "promo", "polygon": ZONE, "min_presence_s": 0.3}],
        "shelves": [{"id": "coffee", "polygon": SHELF, "min_dwell_s": 2.0}],
    }
    return Scenario(scene, camera, {"promo": {"entries": 2, "exits": 2}, "coffee": 2})


def store_scene(duration: float = 60.0, *, seed: int = 3) -> Scenario:
    """A busier store entrance for `mallpulse demo`: people walk in and out across a line."""
    rng = np.random.default_rng(seed)
    walkers: list[Walker] = []
    t, n_in, n_out = 0.0, 0, 0
    while t < duration - 8.0:
        x = float(rng.uniform(0.15, 0.85))
        going_in = bool(rng.random() < 0.6)
        ends = [(x, -0.25), (x + float(rng.uniform(-0.1, 0.1)), 1.25)]
        a, b = ends if going_in else ends[::-1]
        keys = Path(LEAD + t, *a).walk(b, speed=float(rng.uniform(0.15, 0.25))).done()
        colour = (
            int(rng.integers(20, 220)),
            int(rng.integers(20, 220)),
            int(rng.integers(20, 220)),
        )
        walkers.append(Walker(len(walkers) + 1, keys, colour=colour))
        n_in, n_out = n_in + going_in, n_out + (not going_in)
        t += float(rng.uniform(1.5, 3.5))
    scene = Scene(walkers, duration=duration)
    camera = {
        "id": "entrance",
        "source": "synthetic",
        "lines": [{"id": "door", "points": LINE, "in_direction": "right"}],
        "zones": [{"id": "lobby", "polygon": ZONE}],
    }
    return Scenario(scene, camera, {"door": (n_in, n_out)})
