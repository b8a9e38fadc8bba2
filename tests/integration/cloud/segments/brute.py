"""A brute-force Python evaluator of segment rules, written from the rule language's
documented meaning (docs/segments.md), not from the SQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from cloud.crm.segments import rules as r
from tests.integration.cloud.segments.world import NOW, World


def _cmp(op: str, a: Any, b: Any) -> bool:
    return bool(
        {
            "eq": a == b,
            "ne": a != b,
            "gt": a > b,
            "gte": a >= b,
            "lt": a < b,
            "lte": a <= b,
        }[op]
    )


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
