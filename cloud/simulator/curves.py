"""Realistic footfall intensity: opening hours, lunch and after-work peaks, weekly rhythm."""

from __future__ import annotations

import math
from datetime import datetime

#: Visitors relative to an average weekday, Monday first.
WEEKDAY_FACTOR = (0.85, 0.9, 0.95, 1.0, 1.2, 1.5, 0.6)
OPEN_HOUR, CLOSE_HOUR = 9.0, 21.0


def daily_shape(hour: float) -> float:
    """Relative intensity at a local hour (0 outside opening hours; peaks ~12:30 and ~17:30)."""
    if not OPEN_HOUR <= hour < CLOSE_HOUR:
        return 0.0
    lunch = math.exp(-(((hour - 12.5) / 1.2) ** 2))
    evening = 1.3 * math.exp(-(((hour - 17.5) / 1.6) ** 2))
    return 0.35 + lunch + evening


def visitors_per_hour(local: datetime, *, store_scale: float = 1.0, peak: float = 400.0) -> float:
    """Expected arrivals per hour at a local time for a store of relative size `store_scale`."""
    hour = local.hour + local.minute / 60.0
    return peak * store_scale * WEEKDAY_FACTOR[local.weekday()] * daily_shape(hour) / 2.65
