"""Per-camera configuration: the source and the counting geometry drawn on its image."""

from __future__ import annotations

import itertools
from typing import Literal

from pydantic import Field, model_validator

from edge.config.base import Identifier, StrictModel
from edge.config.geometry import Polygon, Segment

DEFAULT_DWELL_BUCKETS_S = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class LineConfig(StrictModel):
    """A counting line; crossing it in the `in_direction` counts as in, the opposite as out."""

    id: Identifier = Field(description="Line id, unique within the camera.")
    points: Segment = Field(
        description="Two points [x, y] in normalised image coordinates (0..1, origin top-left)."
    )
    in_direction: Literal["left", "right"] = Field(
        default="left",
        description=(
            "Which side of the line, looking from the first point to the second, a person moves "
            "towards when walking in."
        ),
    )
    min_distance: float = Field(
        default=0.02,
        ge=0.0,
        le=0.5,
        description=(
            "Hysteresis: how far (normalised) past the line a person must get before the crossing "
            "counts, so jitter on the line never double counts."
        ),
    )


class ZoneConfig(StrictModel):
    """An area whose occupancy and dwell are measured; `kind: queue` also estimates wait time."""

    id: Identifier = Field(description="Zone id, unique within the camera.")
    polygon: Polygon = Field(
        description="At least three points [x, y] in normalised image coordinates."
    )
    kind: Literal["zone", "queue"] = Field(
        default="zone", description="'zone' for occupancy and dwell, 'queue' adds wait estimates."
    )
    dwell_buckets_s: tuple[float, ...] = Field(
        default=DEFAULT_DWELL_BUCKETS_S,
        min_length=1,
        description="Upper bounds in seconds of the dwell histogram, strictly increasing.",
    )
    min_presence_s: float = Field(
        default=0.5,
        ge=0.0,
        description="A track counts as inside only after being inside this long (debounce).",
    )

    @model_validator(mode="after")
    def _increasing_buckets(self) -> ZoneConfig:
        b = self.dwell_buckets_s
        if any(x <= 0 for x in b) or any(b2 <= b1 for b1, b2 in itertools.pairwise(b)):
            raise ValueError("dwell_buckets_s must be positive and strictly increasing")
        return self


class ShelfConfig(StrictModel):
    """A shelf or product area: a person staying in it long enough is one interaction."""

    id: Identifier = Field(description="Shelf id, unique within the camera.")
    polygon: Polygon = Field(
        description="At least three points [x, y] in normalised image coordinates."
    )
    min_dwell_s: float = Field(
        default=2.0,
        gt=0.0,
        le=600.0,
        description="Seconds a person's anchor point must stay in the shelf zone to interact.",
    )
    product: str | None = Field(
        default=None, max_length=200, description="Optional product or category label."
    )


class CameraConfig(StrictModel):
    """One camera: where frames come from and what is counted on them."""

    id: Identifier = Field(description="Camera id, unique on the device.")
    source: str = Field(
        min_length=1,
        description=(
            "Video source: a file path (mp4, avi, gif), an rtsp:// or http(s):// URL, or "
            "'usb:N' for the N-th local camera."
        ),
    )
    enabled: bool = Field(default=True, description="Disabled cameras are not opened.")
    loop: bool = Field(
        default=False,
        description="Replay a file source from the start when it ends (demos, soak tests); "
        "ignored for live sources.",
    )
    max_fps: float = Field(
        default=10.0, gt=0.0, le=120.0, description="Frame-rate cap for processing."
    )
    stall_timeout_s: float = Field(
        default=10.0,
        gt=0.0,
        le=600.0,
        description="A live source that delivers no frame for this long is reconnected.",
    )
    lines: list[LineConfig] = Field(default_factory=list, description="Counting lines.")
    zones: list[ZoneConfig] = Field(default_factory=list, description="Occupancy/queue zones.")
    shelves: list[ShelfConfig] = Field(default_factory=list, description="Shelf zones.")

    @model_validator(mode="after")
    def _unique_ids(self) -> CameraConfig:
        ids = [x.id for x in self.lines] + [x.id for x in self.zones]
        ids += [x.id for x in self.shelves]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"line, zone and shelf ids must be unique per camera: {dupes}")
        return self
