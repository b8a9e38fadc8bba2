"""Simulated footfall follows opening hours, daily peaks and the weekly rhythm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from cloud.simulator.curves import daily_shape, visitors_per_hour
from cloud.simulator.fleet import Device, FleetConfig, build_devices, make_window


def test_closed_at_night_and_peaks_at_lunch_and_evening() -> None:
    assert daily_shape(3.0) == 0.0 and daily_shape(21.5) == 0.0
    hours = np.arange(9.0, 21.0, 0.25)
    shape = np.array([daily_shape(h) for h in hours])
    peaks = [float(hours[i]) for i in range(1, len(hours) - 1)
             if shape[i] > shape[i - 1] and shape[i] >= shape[i + 1]]  # fmt: skip
    assert len(peaks) == 2 and 12.0 <= peaks[0] <= 13.0 and 17.0 <= peaks[1] <= 18.0


def test_saturday_busier_than_monday_and_sunday() -> None:
    sat, mon, sun = (datetime(2026, 11, d, 12, 30) for d in (28, 23, 29))
    assert visitors_per_hour(sat) > visitors_per_hour(mon) > visitors_per_hour(sun)


def test_windows_are_plausible_and_sequences_increase() -> None:
    dev = Device("s", "d", "UTC", 1.0, sequence=100)
    rng = np.random.default_rng(1)
    end = datetime(2026, 11, 28, 12, 30, tzinfo=UTC)
    envs = [make_window(dev, end + timedelta(minutes=i), 60.0, rng) for i in range(30)]
    assert [e.sequence for e in envs] == list(range(101, 131))
    mean_in = np.mean([e.window.lines[0].in_count for e in envs])
    expected = visitors_per_hour(end.replace(tzinfo=None), store_scale=1.0) / 60
    assert 0.6 * expected < mean_in < 1.4 * expected


def test_devices_are_deterministic_per_seed() -> None:
    a, b = (
        build_devices(FleetConfig(stores=3, seed=1)),
        build_devices(FleetConfig(stores=3, seed=1)),
    )
    assert [(d.device_id, d.timezone, d.scale) for d in a] == [
        (d.device_id, d.timezone, d.scale) for d in b
    ]
    assert len(a) == 6 and a[0].store_id == "sim-001"
