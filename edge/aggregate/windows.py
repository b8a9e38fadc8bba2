"""Fixed wall-clock windows and their protobuf envelopes (one per window per camera)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from edge.analytics.camera import CameraWindow
from edge.analytics.types import Histogram, QueueWindowStats, ZoneStats
from protos.mallpulse.v1 import telemetry_pb2 as pb

MAX_EMPTY_WINDOWS = 1440  # a longer gap (clock jump) is reported as one window, not thousands


@dataclass(frozen=True, slots=True)
class WindowClock:
    """Windows [k * length, (k + 1) * length) of epoch seconds, aligned to the day."""

    length_s: int

    def start_of(self, t: float) -> float:
        """Start of the window holding `t`."""
        return math.floor(t / self.length_s) * self.length_s

    def ends_between(self, start: float, t: float) -> list[float]:
        """Ends of the windows starting at `start` that closed by time `t`, oldest first."""
        ends: list[float] = []
        end = start + self.length_s
        while end <= t and len(ends) < MAX_EMPTY_WINDOWS:
            ends.append(end)
            end += self.length_s
        if end <= t:  # gap longer than the cap: stretch the last window to the current one
            ends[-1] = self.start_of(t)
        return ends


def _ts(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(round(seconds * 1e9))
    return ts


def _histogram(h: Histogram) -> pb.DwellHistogram:
    return pb.DwellHistogram(upper_bounds_s=list(h.bounds), counts=h.counts, total_s=h.total_s)


def _zone(z: ZoneStats) -> pb.ZoneOccupancy:
    return pb.ZoneOccupancy(
        zone_id=z.zone_id,
        avg_occupancy=z.avg_occupancy,
        max_occupancy=z.max_occupancy,
        occupancy_at_end=z.occupancy_at_end,
        entries=z.entries,
        exits=z.exits,
        dwell=_histogram(z.dwell),
    )


def _queue(q: QueueWindowStats) -> pb.QueueStats:
    return pb.QueueStats(
        zone_id=q.zone_id,
        avg_length=q.avg_length,
        max_length=q.max_length,
        length_at_end=q.length_at_end,
        served=q.served,
        service_rate_per_min=q.service_rate_per_min,
        estimated_wait_s=q.estimated_wait_s,
    )


def _demographics(counts: dict[tuple[int, int], int]) -> pb.Demographics:
    return pb.Demographics(
        counts=[
            pb.DemographicCount(
                age_band=pb.AgeBand.ValueType(band), gender=pb.Gender.ValueType(g), count=n
            )
            for (band, g), n in sorted(counts.items())
        ]
    )


def window_report(
    w: CameraWindow,
    frames: int,
    demographics: dict[tuple[int, int], int],
    emotions: dict[tuple[str, int], int] | None = None,
) -> pb.WindowReport:
    """The protobuf WindowReport of one camera window."""
    return pb.WindowReport(
        lines=[
            pb.LineCrossings(line_id=x.line_id, in_count=x.in_count, out_count=x.out_count)
            for x in w.lines
        ],
        zones=[_zone(z) for z in w.zones],
        queues=[_queue(q) for q in w.queues],
        shelves=[
            pb.ShelfInteractions(
                shelf_id=s.shelf_id,
                interactions=s.interactions,
                total_dwell_s=s.dwell.total_s,
                dwell=_histogram(s.dwell),
            )
            for s in w.shelves
        ],
        demographics=_demographics(demographics),
        frames_processed=frames,
        emotions=[
            pb.EmotionCount(zone_id=zone, valence=pb.Valence.ValueType(v), count=n)
            for (zone, v), n in sorted((emotions or {}).items())
        ],
    )


def envelope(
    *,
    device_id: str,
    store_id: str,
    camera_id: str,
    start: float,
    end: float,
    report: pb.WindowReport,
) -> pb.Envelope:
    """An Envelope with sequence 0: the outbox assigns the per-device sequence when storing."""
    return pb.Envelope(
        schema_version=pb.SCHEMA_VERSION_1,
        device_id=device_id,
        store_id=store_id,
        camera_id=camera_id,
        sequence=0,
        window_start=_ts(start),
        window_end=_ts(end),
        window=report,
    )
