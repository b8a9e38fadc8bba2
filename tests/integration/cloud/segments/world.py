"""A small generated CRM world, its loader, random rules, and a brute-force Python evaluator
written from the rule language's documented meaning (docs/segments.md), not from the SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

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


_op = st.sampled_from(("eq", "ne", "gt", "gte", "lt", "lte"))


def _leaves() -> st.SearchStrategy[Any]:
    attr = st.one_of(
        st.builds(
            lambda op, v: r.AttributeRule(type="attribute", attribute="country", op=op, value=v),
            _op,
            st.sampled_from(COUNTRIES),
        ),
        st.builds(
            lambda op, v: r.AttributeRule(type="attribute", attribute="birth_year", op=op, value=v),
            _op,
            st.integers(1950, 2005),
        ),
        st.builds(
            lambda v: r.AttributeRule(type="attribute", attribute="vip", op="eq", value=v),
            st.booleans(),
        ),
        st.builds(
            lambda a: r.AttributeRule(type="attribute", attribute=a, op="exists"),
            st.sampled_from(("country", "vip")),
        ),
        st.builds(
            lambda vs: r.AttributeRule(type="attribute", attribute="country", op="in", value=vs),
            st.lists(st.sampled_from(COUNTRIES), min_size=1, max_size=2),
        ),
    )
    flt = st.one_of(
        st.builds(
            lambda op, v: r.PropertyFilter(property="price", op=op, value=v),
            _op,
            st.integers(0, 50),
        ),
        st.builds(
            lambda v: r.PropertyFilter(property="category", value=v), st.sampled_from(("a", "b"))
        ),
    )
    event = st.builds(
        lambda e, n, d, w, s: r.EventRule(
            type="event", event=e, min_count=n, within_days=d, where=w, store_id=s
        ),
        st.sampled_from(EVENTS),
        st.integers(1, 3),
        st.integers(1, 90),
        st.lists(flt, max_size=2),
        st.sampled_from((None, *STORES)),
    )
    purchase = st.builds(
        lambda m, op, v, d: r.PurchaseRule(
            type="purchases", metric=m, op=op, value=v, within_days=d
        ),
        st.sampled_from(("count", "total", "days_since_last")),
        _op,
        st.sampled_from((0, 1, 2, 10, 100)),
        st.sampled_from((None, 7, 30)),
    )
    kinds = [
        attr,
        st.builds(
            lambda s: r.LifecycleRule(type="lifecycle", stages=s),
            st.lists(st.sampled_from(("purchase", "retention")), min_size=1, max_size=2),
        ),
        event,
        purchase,
        st.builds(
            lambda f, op, v: r.PredictionRule(type="prediction", field=f, op=op, value=v),
            st.sampled_from(("churn_probability", "clv")),
            _op,
            st.sampled_from((0.1, 0.5, 100.0)),
        ),
        st.builds(
            lambda s: r.ConsentRule(type="consent", channel="email", purpose="marketing", status=s),
            st.sampled_from(("granted", "denied")),
        ),
        st.builds(
            lambda t: r.LoyaltyTierRule(type="loyalty_tier", tiers=t),
            st.lists(st.sampled_from(("gold", "silver")), min_size=1, max_size=2),
        ),
        st.builds(
            lambda s, d: r.StoreVisitRule(type="store_visited", store_id=s, within_days=d),
            st.sampled_from(STORES),
            st.sampled_from((None, 1, 30)),
        ),
    ]
    # every kind equally often (one_of favours its first, simplest branches)
    return st.sampled_from(kinds).flatmap(lambda k: k)


def rules_strategy() -> st.SearchStrategy[Any]:
    """Random rule trees up to a few levels deep."""
    return st.recursive(
        _leaves(),
        lambda kids: st.one_of(
            st.builds(
                lambda rs: r.AndRule(type="and", rules=rs), st.lists(kids, min_size=1, max_size=3)
            ),
            st.builds(
                lambda rs: r.OrRule(type="or", rules=rs), st.lists(kids, min_size=1, max_size=3)
            ),
            st.builds(lambda x: r.NotRule(type="not", rule=x), kids),
        ),
        max_leaves=5,
    )


# ---------------------------------------------------------------- brute force


def _cmp(op: str, a: Any, b: Any) -> bool:
    return {
        "eq": a == b,
        "ne": a != b,
        "gt": a > b,
        "gte": a >= b,
        "lt": a < b,
        "lte": a <= b,
    }[op]


def _jtype(v: Any) -> str:
    return r.json_type(v)


def _typed(doc: dict[str, Any], key: str, op: str, value: Any) -> bool:
    want = value[0] if isinstance(value, list) else value
    if key not in doc or _jtype(doc[key]) != _jtype(want):
        return False
    got = doc[key]
    if isinstance(got, int | float) and not isinstance(got, bool):
        got = Decimal(str(got))
        value = [Decimal(str(v)) for v in value] if isinstance(value, list) else Decimal(str(value))
    if op == "in":
        return got in value
    return _cmp(op, got, value)


def _in_window(at: datetime, days: int | None) -> bool:
    return at <= NOW and (days is None or at >= NOW - timedelta(days=days))


def holds(world: World, pid: int, rule: Any) -> bool:
    """Whether the live profile `pid` matches `rule` at NOW."""
    mine = {p.id for p in world.profiles if p.id == pid or p.merged_into == pid}
    prof = next(p for p in world.profiles if p.id == pid)
    if isinstance(rule, r.AndRule):
        return all(holds(world, pid, x) for x in rule.rules)
    if isinstance(rule, r.OrRule):
        return any(holds(world, pid, x) for x in rule.rules)
    if isinstance(rule, r.NotRule):
        return not holds(world, pid, rule.rule)
    if isinstance(rule, r.AttributeRule):
        if rule.op == "exists":
            return rule.attribute in prof.attributes and prof.attributes[rule.attribute] is not None
        return _typed(prof.attributes, rule.attribute, rule.op, rule.value)
    if isinstance(rule, r.LifecycleRule):
        return prof.stage in rule.stages
    if isinstance(rule, r.EventRule):
        n = sum(
            1
            for e in world.events
            if e["profile_id"] in mine
            and e["event"] == rule.event
            and _in_window(e["at"], rule.within_days)
            and (rule.store_id is None or e["store_id"] == rule.store_id)
            and all(_typed(e["properties"], f.property, f.op, f.value) for f in rule.where)
        )
        return n >= rule.min_count
    if isinstance(rule, r.PurchaseRule):
        txs = [
            t
            for t in world.txs
            if t["profile_id"] in mine
            and t["kind"] == "sale"
            and not t["reversed"]
            and _in_window(t["at"], rule.within_days)
        ]
        if rule.metric == "count":
            return _cmp(rule.op, Decimal(len(txs)), Decimal(str(rule.value)))
        if rule.metric == "total":
            return _cmp(
                rule.op, sum((t["amount"] for t in txs), Decimal(0)), Decimal(str(rule.value))
            )
        if not txs:
            return False
        return _cmp(rule.op, NOW - max(t["at"] for t in txs), timedelta(days=rule.value))
    if isinstance(rule, r.PredictionRule):
        got = world.scores.get(pid, {}).get(rule.field)
        return got is not None and _cmp(rule.op, got, rule.value)
    if isinstance(rule, r.ConsentRule):
        cs = [c for c in world.consents if c["profile_id"] in mine]
        if rule.channel != "email" or rule.purpose != "marketing" or not cs:
            return False
        latest = max(cs, key=lambda c: (c["at"], c["profile_id"]))
        return bool(latest["status"] == rule.status)
    if isinstance(rule, r.LoyaltyTierRule):
        return any(
            a["profile_id"] in mine and a["status"] == "active" and a["tier"] in rule.tiers
            for a in world.accounts
        )
    assert isinstance(rule, r.StoreVisitRule)
    return any(
        x["profile_id"] in mine
        and x["store_id"] == rule.store_id
        and _in_window(x["at"], rule.within_days)
        for x in [*world.txs, *world.events]
    )


def brute_force(world: World, rule: Any) -> set[int]:
    """The live profiles matching `rule` at NOW, by walking the world in Python."""
    return {pid for pid in world.live() if holds(world, pid, rule)}


# ---------------------------------------------------------------- loading


def load_profiles(conn: psycopg.Connection[Any], world: World) -> None:
    """Insert the world's profiles (with their ids) and one source record each."""
    for p in world.profiles:
        conn.execute(
            "INSERT INTO crm_profiles (id, attributes, lifecycle_stage) OVERRIDING SYSTEM VALUE"
            " VALUES (%s, %s, %s)",
            (p.id, Jsonb(p.attributes), p.stage),
        )
        conn.execute("INSERT INTO crm_records (profile_id, source) VALUES (%s, 'test')", (p.id,))
    for p in world.profiles:
        if p.merged_into is not None:
            conn.execute(
                "UPDATE crm_profiles SET merged_into = %s WHERE id = %s", (p.merged_into, p.id)
            )


def load_activity(conn: psycopg.Connection[Any], world: World, *, half: int | None = None) -> None:
    """Insert the world's events, purchases, scores, consents and accounts; `half` 1 inserts
    the first half of the events and purchases only, `half` 2 the rest."""
    part = slice(None)
    if half is not None:
        k = len(world.events) // 2, len(world.txs) // 2
        part = slice(0, k[0]) if half == 1 else slice(k[0], None)
    for e in world.events[part]:
        conn.execute(
            "INSERT INTO crm_events (occurred_at, received_at, source_id, message_id, type, event,"
            " profile_id, properties, store_id) VALUES (%s, %s, 'seg', gen_random_uuid()::text,"
            " 'track', %s, %s, %s, %s)",
            (e["at"], NOW, e["event"], e["profile_id"], Jsonb(e["properties"]), e["store_id"]),
        )
    if half is not None:
        k2 = len(world.txs) // 2
        part = slice(0, k2) if half == 1 else slice(k2, None)
    for t in world.txs[part]:
        conn.execute(
            "INSERT INTO crm_transactions (profile_id, record_id, store_id, external_id,"
            " occurred_at, currency, total_amount, kind, reversed_at)"
            " SELECT %s, (SELECT min(id) FROM crm_records WHERE profile_id = %s), %s,"
            " gen_random_uuid()::text, %s, 'EUR', %s, %s, %s",
            (
                t["profile_id"],
                t["profile_id"],
                t["store_id"],
                t["at"],
                t["amount"],
                t["kind"],
                NOW if t["reversed"] else None,
            ),
        )
    if half == 2:
        return _load_rest(conn, world)
    # scores come first: they reach segments through the sweep, not incrementally
    # (docs/segments.md), so the incremental evaluator is given them before the changes
    for pid, s in world.scores.items():
        conn.execute(
            "INSERT INTO ml_customer_scores (customer_id, segment, churn_probability, clv,"
            " engagement, health_score, risk_value, model_version, as_of)"
            " VALUES (%s, 'x', %s, %s, %s, %s, 0, 1, %s)",
            (str(pid), s["churn_probability"], s["clv"], s["engagement"], s["health_score"], NOW),
        )
    if half == 1:
        return None
    return _load_rest(conn, world)


def _load_rest(conn: psycopg.Connection[Any], world: World) -> None:
    for c in world.consents:
        conn.execute(
            "INSERT INTO crm_consents (profile_id, channel, purpose, status, source, updated_at)"
            " VALUES (%s, 'email', 'marketing', %s, 'test', %s)",
            (c["profile_id"], c["status"], c["at"]),
        )
    for a in world.accounts:
        conn.execute(
            "INSERT INTO loyalty_accounts (profile_id, member_number, tier, tier_period_end,"
            " status) VALUES (%s, gen_random_uuid()::text, %s, %s, %s)",
            (a["profile_id"], a["tier"], NOW, a["status"]),
        )


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
