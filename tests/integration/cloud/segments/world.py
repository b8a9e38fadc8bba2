"""A small generated CRM world (profiles, merges, events, purchases, consents, loyalty) and
hand-picked boundary cases; loaded by loading.py, judged by brute.py, with rules from
rule_gen.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from cloud.crm.segments import rules as r

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
STORES = ("seg-s1", "seg-s2")
EVENTS = ("view", "buy")
COUNTRIES = ("US", "DE")


@dataclass
class Profile:
    id: int
    attributes: dict[str, Any]
    stage: str | None
    merged_into: int | None = None


@dataclass
class World:
    profiles: list[Profile]
    events: list[dict[str, Any]] = field(default_factory=list)
    txs: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[int, dict[str, float | None]] = field(default_factory=dict)
    consents: list[dict[str, Any]] = field(default_factory=list)
    accounts: list[dict[str, Any]] = field(default_factory=list)

    def owner(self, pid: int) -> int:
        p = next(x for x in self.profiles if x.id == pid)
        return p.merged_into or p.id

    def live(self) -> list[int]:
        return [p.id for p in self.profiles if p.merged_into is None]


_hours = st.integers(-24 * 40, 24 * 2)  # 40 days back, 2 days ahead (clock skew)
_attr_value = st.one_of(st.sampled_from(COUNTRIES), st.integers(1950, 2005), st.booleans())


@st.composite
def worlds(draw: st.DrawFn, base: int) -> World:
    """Up to 4 profiles (ids from base+1), some merged, with activity of every kind."""
    n = draw(st.integers(1, 4))
    profiles = []
    for i in range(n):
        attrs = draw(
            st.dictionaries(
                st.sampled_from(("country", "birth_year", "vip")), _attr_value, max_size=3
            )
        )
        stage = draw(st.sampled_from((None, "purchase", "retention")))
        profiles.append(Profile(base + i + 1, attrs, stage))
    for i in range(1, n):
        if draw(st.booleans()) and profiles[0].merged_into is None:
            profiles[i].merged_into = profiles[0].id  # merges are one level deep
    ids = st.sampled_from([p.id for p in profiles])
    world = World(profiles)
    for _ in range(draw(st.integers(0, 14))):
        props = draw(
            st.dictionaries(
                st.sampled_from(("category", "price")),
                st.one_of(st.sampled_from(("a", "b")), st.integers(0, 50)),
                max_size=2,
            )
        )
        world.events.append(
            {
                "profile_id": draw(st.one_of(ids, st.none())),
                "event": draw(st.sampled_from(EVENTS)),
                "at": NOW + timedelta(hours=draw(_hours)),
                "properties": props,
                "store_id": draw(st.sampled_from((*STORES, None))),
            }
        )
    for _ in range(draw(st.integers(0, 6))):
        world.txs.append(
            {
                "profile_id": draw(ids),
                "store_id": draw(st.sampled_from(STORES)),
                "at": NOW + timedelta(hours=draw(_hours)),
                "amount": Decimal(draw(st.integers(0, 200))),
                "kind": draw(st.sampled_from(("sale", "sale", "return"))),
                "reversed": draw(st.integers(0, 5)) == 0,
            }
        )
    for p in profiles:
        if draw(st.booleans()):
            world.scores[p.id] = {
                "churn_probability": draw(st.sampled_from((0.1, 0.5, 0.9))),
                "clv": draw(st.sampled_from((None, 10.0, 500.0))),
                "health_score": 50.0,
                "engagement": 0.5,
            }
    for p in profiles:
        if draw(st.booleans()):
            world.consents.append(
                {
                    "profile_id": p.id,
                    "status": draw(st.sampled_from(("granted", "denied"))),
                    "at": NOW - timedelta(hours=draw(st.integers(0, 100))),
                }
            )
        if draw(st.integers(0, 2)) == 0:
            world.accounts.append(
                {
                    "profile_id": p.id,
                    "tier": draw(st.sampled_from(("gold", "silver"))),
                    "status": draw(st.sampled_from(("active", "active", "closed"))),
                }
            )
    return world


def fixed_cases(base: int) -> list[tuple[World, Any]]:
    """Hand-picked boundaries: exact counts, merged profiles' rows, the latest consent across a
    merge, purchases holding at zero, recency, window edges, a wrongly typed attribute."""
    a, b = base + 1, base + 2
    w = World(
        [Profile(a, {"birth_year": "1980", "country": "DE"}, "purchase"), Profile(b, {}, None, a)]
    )
    day = timedelta(days=1)
    w.events = [
        {
            "profile_id": a,
            "event": "view",
            "at": NOW - 2 * day,
            "properties": {"price": 10},
            "store_id": None,
        },
        {
            "profile_id": b,
            "event": "view",
            "at": NOW - 7 * day,
            "properties": {"price": "10"},
            "store_id": STORES[0],
        },
        {"profile_id": a, "event": "view", "at": NOW + day, "properties": {}, "store_id": None},
    ]
    w.txs = [
        {
            "profile_id": b,
            "store_id": STORES[1],
            "at": NOW - 3 * day,
            "amount": Decimal(40),
            "kind": "sale",
            "reversed": False,
        }
    ]
    w.consents = [
        {"profile_id": a, "status": "denied", "at": NOW - 5 * day},
        {"profile_id": b, "status": "granted", "at": NOW - day},
    ]
    ev = r.EventRule
    rules: list[Any] = [
        ev(type="event", event="view", min_count=2, within_days=7),
        ev(type="event", event="view", min_count=3, within_days=7),
        ev(type="event", event="view", min_count=2, within_days=6),
        ev(
            type="event",
            event="view",
            where=[r.PropertyFilter(property="price", op="gte", value=10)],
            min_count=2,
        ),
        r.ConsentRule(type="consent", channel="email", purpose="marketing"),
        r.PurchaseRule(type="purchases", metric="count", op="lt", value=1),
        r.PurchaseRule(type="purchases", metric="total", op="gte", value=40),
        r.PurchaseRule(type="purchases", metric="days_since_last", op="lte", value=3),
        r.PurchaseRule(type="purchases", metric="days_since_last", op="gt", value=3),
        r.StoreVisitRule(type="store_visited", store_id=STORES[0], within_days=7),
        r.NotRule(
            type="not",
            rule=r.AttributeRule(type="attribute", attribute="birth_year", op="gt", value=1900),
        ),
    ]
    return [(w, rule) for rule in rules]
