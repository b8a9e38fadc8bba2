"""Generated behavioural data stored for real, and brute-force answers computed from it in
plain Python (no SQL), to compare the compiled analyses against."""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from cloud.crm.analytics.schemas import EventMatcher, PropertyFilter

#: A Monday, so weekly cohorts and buckets are easy to read.
BASE = datetime(2026, 3, 2, tzinfo=UTC)
PersonKey = tuple[str, Any]  # ("p", resolved profile id) or ("a", anonymous id)


@dataclass(frozen=True)
class Ev:
    """One stored event as the brute force sees it."""

    id: int
    t: datetime
    person: PersonKey
    event: str
    props: dict[str, Any]
    revenue: Decimal | None


@dataclass
class World:
    """Events stored in the open transaction of `conn` (rolled back by the test)."""

    conn: psycopg.Connection[Any]
    prefix: str = field(default_factory=lambda: f"an{uuid.uuid4().hex[:8]}")
    events: list[Ev] = field(default_factory=list)
    people: list[PersonKey] = field(default_factory=list)
    _raw: list[tuple[int | None, str | None]] = field(default_factory=list)

    def name(self, short: str) -> str:
        """The stored event name of a short name (unique to this world)."""
        return f"{self.prefix}-{short}"

    def add_people(self, kinds: Sequence[str]) -> None:
        """'p' a profile, 'm' a profile merged into the latest 'p' (if any), 'a' anonymous."""
        survivor: int | None = None
        for i, kind in enumerate(kinds):
            if kind == "a":
                anon = f"{self.prefix}-anon-{i}"
                self._raw.append((None, anon))
                self.people.append(("a", anon))
                continue
            row = self.conn.execute("INSERT INTO crm_profiles DEFAULT VALUES RETURNING id")
            pid = int(row.fetchone()[0])  # type: ignore[index]
            self._raw.append((pid, None))
            if kind == "m" and survivor is not None:
                self.conn.execute(
                    "UPDATE crm_profiles SET merged_into = %s WHERE id = %s", (survivor, pid)
                )
                self.people.append(("p", survivor))
            else:
                survivor = pid
                self.people.append(("p", pid))

    def plan(self, shorts: Sequence[str], keys: Sequence[str]) -> None:
        """A tracking plan declaring `keys` for each event (so they are known properties)."""
        src = self.prefix
        self.conn.execute(
            "INSERT INTO crm_event_sources (id, name, write_key_hash, write_key_prefix)"
            " VALUES (%s, %s, %s, %s)",
            (src, src, uuid.uuid4().hex, "x"),
        )
        schema = {"type": "object", "properties": {k: {} for k in keys}}
        for s in shorts:
            self.conn.execute(
                "INSERT INTO crm_event_plans (source_id, type, event, schema)"
                " VALUES (%s, 'track', %s, %s)",
                (src, self.name(s), Jsonb(schema)),
            )

    def add(
        self,
        who: int,
        short: str,
        t: datetime,
        props: dict[str, Any] | None = None,
        revenue: Decimal | None = None,
    ) -> None:
        """Store one track event of person number `who` (a row of `add_people`)."""
        pid, anon = self._raw[who]
        props = {k: v for k, v in (props or {}).items() if v is not None}
        row = self.conn.execute(
            "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type,"
            " event, profile_id, anonymous_id, properties, revenue)"
            " VALUES (%s, %s, 'web', %s, 'track', %s, %s, %s, %s, %s) RETURNING id",
            (t, t, uuid.uuid4().hex, self.name(short), pid, anon, Jsonb(props), revenue),
        ).fetchone()
        assert row is not None
        self.events.append(Ev(row[0], t, self.people[who], self.name(short), props, revenue))

    def by_person(self) -> dict[PersonKey, list[Ev]]:
        """Each person's events in (time, id) order."""
        out: dict[PersonKey, list[Ev]] = defaultdict(list)
        for e in sorted(self.events, key=lambda e: (e.t, e.id)):
            out[e.person].append(e)
        return out


def matches(e: Ev, m: EventMatcher | None) -> bool:
    """Whether event `e` meets matcher `m` (None: any named event)."""
    if m is None:
        return True
    return e.event == m.event and all(_holds(e.props, f) for f in m.filters)


def _holds(props: dict[str, Any], f: PropertyFilter) -> bool:
    v = props.get(f.property)
    if f.op == "exists":
        return f.property in props
    if f.op == "eq":
        return v is not None and _same(v, f.value)
    if f.op == "neq":
        return v is None or not _same(v, f.value)
    if f.op == "in":
        return v is not None and any(_same(v, x) for x in f.value or [])  # type: ignore[union-attr]
    if not isinstance(v, int | float) or isinstance(v, bool):
        return False
    x = f.value
    assert isinstance(x, int | float)
    return {"gt": v > x, "gte": v >= x, "lt": v < x, "lte": v <= x}[f.op]


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def text_of(v: Any) -> str | None:
    """A property as `properties ->> key` gives it."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def percentile(values: list[float], q: float) -> float | None:
    """percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def path_counts(seqs: list[tuple[str, ...]], limit: int) -> list[tuple[list[str], int]]:
    """The `limit` most frequent sequences, most first, then in sequence order."""
    ranked = sorted(Counter(seqs).items(), key=lambda kv: (-kv[1], list(kv[0])))
    return [(list(s), n) for s, n in ranked[:limit]]


def floor_div(d: timedelta, unit: timedelta) -> int:
    """Whole units in `d`."""
    return int(d.total_seconds() // unit.total_seconds())
