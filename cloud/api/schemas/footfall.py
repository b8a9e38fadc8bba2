"""Schemas of the footfall API: live state, series with last-week comparison, reports, chain."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Bucket = Literal["15m", "1h", "1d"]


class ZoneLive(BaseModel):
    """Occupancy of a zone at the end of its latest window."""

    zone_id: str = Field(description="Zone id.")
    occupancy: int = Field(description="People in the zone.")
    as_of: datetime = Field(description="End of the window this comes from.")


class EntranceToday(BaseModel):
    """In/out across a counting line since local midnight."""

    line_id: str = Field(description="Line id.")
    in_count: int = Field(description="People in today.")
    out_count: int = Field(description="People out today.")


class QueueLive(BaseModel):
    """A queue now."""

    zone_id: str = Field(description="Queue zone id.")
    length: int = Field(description="People waiting.")
    estimated_wait_s: float = Field(description="Estimated wait of a newcomer, seconds.")
    as_of: datetime = Field(description="End of the window this comes from.")


class LiveFootfall(BaseModel):
    """What is happening in a store now."""

    store_id: str = Field(description="Store id.")
    timezone: str = Field(description="Store time zone.")
    occupancy: int = Field(description="Sum of zone occupancies.")
    in_today: int = Field(description="People in today, all entrances.")
    out_today: int = Field(description="People out today, all entrances.")
    zones: list[ZoneLive] = Field(description="Occupancy per zone.")
    entrances: list[EntranceToday] = Field(description="Today's in/out per entrance.")
    queues: list[QueueLive] = Field(description="Queue length and estimated wait.")
    devices_online: int = Field(description="Devices online now.")
    devices_total: int = Field(description="Devices registered to the store.")


class FootfallPoint(BaseModel):
    """One bucket of the series and the same bucket one week earlier."""

    start: datetime = Field(description="Bucket start (store time zone offset).")
    in_count: int = Field(description="People in.")
    out_count: int = Field(description="People out.")
    last_week_in: int = Field(description="People in, same bucket last week.")
    last_week_out: int = Field(description="People out, same bucket last week.")


class FootfallTotals(BaseModel):
    """Totals over the range and against the same range last week."""

    in_count: int = Field(description="People in.")
    out_count: int = Field(description="People out.")
    last_week_in: int = Field(description="People in, last week.")
    last_week_out: int = Field(description="People out, last week.")
    change_in_pct: float | None = Field(description="Change of `in` vs last week, percent.")


class FootfallSeries(BaseModel):
    """Footfall over a range in buckets of the store's calendar."""

    store_id: str = Field(description="Store id.")
    timezone: str = Field(description="Store time zone.")
    bucket: Bucket = Field(description="Bucket size.")
    start: datetime = Field(description="Range start (inclusive, aligned to the bucket).")
    end: datetime = Field(description="Range end (exclusive).")
    points: list[FootfallPoint] = Field(description="One point per bucket, zeros included.")
    totals: FootfallTotals = Field(description="Totals and comparison.")


class ShelfStats(BaseModel):
    """Interactions and dwell at one shelf."""

    shelf_id: str = Field(description="Shelf id.")
    interactions: int = Field(description="Interactions.")
    total_dwell_s: float = Field(description="Total dwell, seconds.")
    avg_dwell_s: float = Field(description="Average dwell per interaction, seconds.")


class ZoneDwell(BaseModel):
    """Visits and dwell in one zone."""

    zone_id: str = Field(description="Zone id.")
    visits: int = Field(description="Visits that ended in the range.")
    avg_dwell_s: float = Field(description="Average dwell per visit, seconds.")
    peak_occupancy: int = Field(description="Highest occupancy seen.")


class EngagementReport(BaseModel):
    """Shelf interactions and zone dwell over a range."""

    store_id: str = Field(description="Store id.")
    start: datetime = Field(description="Range start.")
    end: datetime = Field(description="Range end.")
    shelves: list[ShelfStats] = Field(description="Per shelf.")
    zones: list[ZoneDwell] = Field(description="Per zone.")


class DemographicCell(BaseModel):
    """People of one age band and gender."""

    age_band: str = Field(description="Age band, e.g. 25-34.")
    gender: str = Field(description="female, male or unknown.")
    count: int = Field(description="Distinct tracked people.")


class EmotionZone(BaseModel):
    """Facial expression of the people read in one zone: counts and shares by valence."""

    zone_id: str = Field(description="Zone id; empty for people outside every zone.")
    people: int = Field(description="People whose expression was read (one vote each).")
    positive: int = Field(description="People whose expression read positive.")
    neutral: int = Field(description="People whose expression read neutral.")
    negative: int = Field(description="People whose expression read negative.")
    positive_share: float = Field(ge=0, le=1, description="positive / people.")
    negative_share: float = Field(ge=0, le=1, description="negative / people.")


class DemographicsReport(BaseModel):
    """Demographics over a range (aggregates only; nothing personal is stored)."""

    store_id: str = Field(description="Store id.")
    start: datetime = Field(description="Range start.")
    end: datetime = Field(description="Range end.")
    total: int = Field(description="People counted.")
    cells: list[DemographicCell] = Field(description="Per age band and gender.")
    emotions: list[EmotionZone] = Field(
        default_factory=list,
        description="Facial expression by zone, where gateways run the optional emotion stage.",
    )


class ChainStoreLive(BaseModel):
    """One store in the chain-wide live view."""

    store_id: str = Field(description="Store id.")
    name: str = Field(description="Store name.")
    timezone: str = Field(description="Store time zone.")
    occupancy: int = Field(description="People in the store now.")
    in_today: int = Field(description="People in today (local).")
    out_today: int = Field(description="People out today (local).")
    devices_online: int = Field(description="Devices online.")
    devices_total: int = Field(description="Devices registered.")


class ChainLive(BaseModel):
    """Every store now."""

    occupancy: int = Field(description="People in all stores.")
    in_today: int = Field(description="People in today, all stores.")
    stores: list[ChainStoreLive] = Field(description="Per store.")


class ChainStoreTotals(BaseModel):
    """A store's footfall over a range and last week."""

    store_id: str = Field(description="Store id.")
    in_count: int = Field(description="People in.")
    out_count: int = Field(description="People out.")
    last_week_in: int = Field(description="People in, same range last week.")
    change_in_pct: float | None = Field(description="Change of `in` vs last week, percent.")


class ChainFootfall(BaseModel):
    """Chain-wide footfall over a range, ranked by visitors."""

    start: datetime = Field(description="Range start.")
    end: datetime = Field(description="Range end.")
    in_count: int = Field(description="People in, all stores.")
    last_week_in: int = Field(description="People in, all stores, last week.")
    stores: list[ChainStoreTotals] = Field(description="Per store, most visitors first.")
