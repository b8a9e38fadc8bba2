"""Rules to parameterised SQL: a boolean predicate over one live profile row `p`.

Every leaf is two-valued (never NULL), so `not` means "does not hold". A person is a live
profile (`merged_into IS NULL`) with the profiles merged into it (merges are kept one level
deep), so rows carrying an absorbed profile's id count for the survivor. Aggregating leaves are
uncorrelated `p.id IN (SELECT owner ... GROUP BY owner)` subqueries: one hash join for a full
evaluation; given `only_ids`, each subquery reads only those profiles' rows (the indexed
per-person path of incremental evaluation). Values are always bound parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, LiteralString

from psycopg import sql

from cloud.crm.segments.rules import (
    AndRule,
    AttributeRule,
    ConsentRule,
    EventRule,
    LifecycleRule,
    LoyaltyTierRule,
    NotRule,
    Op,
    OrRule,
    PredictionRule,
    PurchaseRule,
    Rule,
    StoreVisitRule,
    json_type,
)

OPS: dict[str, LiteralString] = {
    "eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
}  # fmt: skip


def _owner(a: LiteralString) -> LiteralString:
    """The person a row of alias `a` belongs to (merges are one level deep)."""
    return "coalesce(m.merged_into, " + a + ".profile_id)"


def _rows(table: LiteralString, a: LiteralString) -> LiteralString:
    """`table a` with the merged profile (if any) its profile_id was absorbed into; joining only
    merged profiles keeps the hash small (joining every profile was 2.1x slower on 20 k)."""
    return (
        table + " " + a + " LEFT JOIN crm_profiles m ON m.id = " + a + ".profile_id"
        " AND m.merged_into IS NOT NULL"
    )


_CASTS: dict[str, LiteralString] = {"number": "numeric", "boolean": "boolean", "string": "text"}


@dataclass
class Compiled:
    """A predicate over `p` and its parameters, in placeholder order."""

    sql: sql.Composable
    params: list[Any] = field(default_factory=list)


@dataclass
class _Ctx:
    now: datetime
    only_ids: list[int] | None
    params: list[Any] = field(default_factory=list)

    def bind(self, value: Any) -> sql.Composable:
        self.params.append(value)
        return sql.Placeholder()


def compile_rule(rule: Rule, *, now: datetime, only_ids: list[int] | None = None) -> Compiled:
    """The predicate for `rule` at `now`; `only_ids` (profile ids) restricts what is read."""
    ctx = _Ctx(now, only_ids)
    return Compiled(_node(rule, ctx), ctx.params)


def _node(rule: Rule, ctx: _Ctx) -> sql.Composable:
    if isinstance(rule, AndRule | OrRule):
        joiner = sql.SQL(" AND " if isinstance(rule, AndRule) else " OR ")
        return sql.SQL("({})").format(joiner.join(_node(r, ctx) for r in rule.rules))
    if isinstance(rule, NotRule):
        return sql.SQL("(NOT {})").format(_node(rule.rule, ctx))
    if isinstance(rule, AttributeRule):
        return _attribute(rule, ctx)
    if isinstance(rule, LifecycleRule):
        return sql.SQL("coalesce(p.lifecycle_stage = ANY({}), false)").format(
            ctx.bind(list(rule.stages))
        )
    if isinstance(rule, EventRule):
        return _event(rule, ctx)
    if isinstance(rule, PurchaseRule):
        return _purchases(rule, ctx)
    if isinstance(rule, PredictionRule):
        return _prediction(rule, ctx)
    if isinstance(rule, ConsentRule):
        return _consent(rule, ctx)
    if isinstance(rule, LoyaltyTierRule):
        return _loyalty(rule, ctx)
    return _store_visit(rule, ctx)


def _typed_compare(doc: sql.Composable, key: str, op: str, value: Any, ctx: _Ctx) -> sql.Composable:
    """`doc->key <op> value` when doc->key has the value's JSON type, else false."""
    kind = json_type(value[0] if isinstance(value, list) else value)
    # bound in the order the placeholders appear in the text
    typeof = sql.SQL("jsonb_typeof({} -> {}) = {}").format(doc, ctx.bind(key), ctx.bind(kind))
    got = sql.SQL("({} ->> {})::{}").format(doc, ctx.bind(key), sql.SQL(_CASTS[kind]))
    collate = sql.SQL(' COLLATE "C"' if kind == "string" else "")
    if op == "in":
        cmp = sql.SQL("{}{} = ANY({})").format(got, collate, ctx.bind([_param(v) for v in value]))
    else:
        cmp = sql.SQL("{}{} {} {}").format(got, collate, sql.SQL(OPS[op]), ctx.bind(_param(value)))
    return sql.SQL("(CASE WHEN {} THEN {} ELSE false END)").format(typeof, cmp)


def _param(value: Any) -> Any:
    # Numbers compare as numeric, exactly as stored in JSON (a float parameter would round).
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


def _attribute(rule: AttributeRule, ctx: _Ctx) -> sql.Composable:
    doc = sql.SQL("p.attributes")
    if rule.op == "exists":
        return sql.SQL("coalesce(jsonb_typeof(p.attributes -> {}) <> 'null', false)").format(
            ctx.bind(rule.attribute)
        )
    return _typed_compare(doc, rule.attribute, rule.op, rule.value, ctx)


def _restrict(column: LiteralString, ctx: _Ctx) -> sql.Composable:
    if ctx.only_ids is None:
        return sql.SQL("")
    return sql.SQL(" AND {} = ANY({})").format(sql.SQL(column), ctx.bind(ctx.only_ids))


def _window(column: LiteralString, days: int | None, ctx: _Ctx) -> sql.Composable:
    """Rows up to `now` (and no older than `days` days)."""
    lower: sql.Composable = sql.SQL("")
    if days is not None:
        since = ctx.now - timedelta(days=days)
        lower = sql.SQL(" AND {} >= {}").format(sql.SQL(column), ctx.bind(since))
    return lower + sql.SQL(" AND {} <= {}").format(sql.SQL(column), ctx.bind(ctx.now))


def _event(rule: EventRule, ctx: _Ctx) -> sql.Composable:
    q = sql.SQL(
        "p.id IN (SELECT " + _owner("e") + " FROM " + _rows("crm_events", "e") + " WHERE"
        " e.profile_id IS NOT NULL AND e.event = {}"
    ).format(ctx.bind(rule.event))
    q += _window("e.occurred_at", rule.within_days, ctx) + _restrict("e.profile_id", ctx)
    if rule.store_id is not None:
        q += sql.SQL(" AND e.store_id = {}").format(ctx.bind(rule.store_id))
    for f in rule.where:
        q += sql.SQL(" AND ") + _typed_compare(
            sql.SQL("e.properties"), f.property, f.op, f.value, ctx
        )
    return q + sql.SQL(" GROUP BY 1 HAVING count(*) >= {})").format(ctx.bind(rule.min_count))


def _holds_at_zero(op: Op, value: float) -> bool:
    return {
        "eq": value == 0, "ne": value != 0, "gt": value < 0,
        "gte": value <= 0, "lt": value > 0, "lte": value >= 0,
    }[op]  # fmt: skip


def _purchases(rule: PurchaseRule, ctx: _Ctx) -> sql.Composable:
    src: sql.Composable = sql.SQL(
        "SELECT "
        + _owner("t")
        + " FROM "
        + _rows("crm_transactions", "t")
        + " WHERE t.kind = 'sale' AND t.reversed_at IS NULL"
    )
    src += _window("t.occurred_at", rule.within_days, ctx) + _restrict("t.profile_id", ctx)
    op = sql.SQL(OPS[rule.op])
    if rule.metric == "days_since_last":
        # recency: no purchase never matches; compared as an interval, to the microsecond
        having = sql.SQL("{} - max(t.occurred_at) {} {}").format(
            ctx.bind(ctx.now), op, ctx.bind(timedelta(days=rule.value))
        )
        return sql.SQL("p.id IN ({} GROUP BY 1 HAVING {})").format(src, having)
    agg = sql.SQL("count(*)" if rule.metric == "count" else "sum(t.total_amount)")
    having = sql.SQL("{} {} {}").format(agg, op, ctx.bind(Decimal(str(rule.value))))
    if _holds_at_zero(rule.op, rule.value):
        # a person without purchases has 0 and holds: say who does not hold instead
        return sql.SQL("(NOT p.id IN ({} GROUP BY 1 HAVING NOT ({})))").format(src, having)
    return sql.SQL("p.id IN ({} GROUP BY 1 HAVING {})").format(src, having)


def _prediction(rule: PredictionRule, ctx: _Ctx) -> sql.Composable:
    head = sql.SQL("p.id::text IN (SELECT s.customer_id FROM ml_customer_scores s WHERE s.{} {} {}")
    q: sql.Composable = head.format(
        sql.Identifier(rule.field), sql.SQL(OPS[rule.op]), ctx.bind(rule.value)
    )
    if ctx.only_ids is not None:
        q += sql.SQL(" AND s.customer_id = ANY({})").format(
            ctx.bind([str(i) for i in ctx.only_ids])
        )
    return q + sql.SQL(")")


def _consent(rule: ConsentRule, ctx: _Ctx) -> sql.Composable:
    # the person's latest decision for the channel and purpose, over all its merged profiles
    q = sql.SQL(
        "p.id IN (SELECT x.owner FROM (SELECT DISTINCT ON ("
        + _owner("c")
        + ") "
        + _owner("c")
        + " AS owner, c.status FROM "
        + _rows("crm_consents", "c")
        + " WHERE c.channel = {} AND c.purpose = {}"
    ).format(ctx.bind(rule.channel), ctx.bind(rule.purpose))
    q += _restrict("c.profile_id", ctx)
    order = " ORDER BY " + _owner("c") + ", c.updated_at DESC, c.profile_id DESC) x"
    return q + sql.SQL(order + " WHERE x.status = {})").format(ctx.bind(rule.status))


def _loyalty(rule: LoyaltyTierRule, ctx: _Ctx) -> sql.Composable:
    q = sql.SQL(
        "p.id IN (SELECT " + _owner("a") + " FROM " + _rows("loyalty_accounts", "a") + " WHERE"
        " a.status = 'active' AND a.tier = ANY({})"
    ).format(ctx.bind(list(rule.tiers)))
    return q + _restrict("a.profile_id", ctx) + sql.SQL(")")


def _store_visit(rule: StoreVisitRule, ctx: _Ctx) -> sql.Composable:
    tx = sql.SQL(
        "SELECT " + _owner("t") + " FROM " + _rows("crm_transactions", "t") + " WHERE"
        " t.store_id = {}"
    ).format(ctx.bind(rule.store_id))
    tx += _window("t.occurred_at", rule.within_days, ctx) + _restrict("t.profile_id", ctx)
    ev = sql.SQL(
        "SELECT " + _owner("e") + " FROM " + _rows("crm_events", "e") + " WHERE"
        " e.profile_id IS NOT NULL AND e.store_id = {}"
    ).format(ctx.bind(rule.store_id))
    ev += _window("e.occurred_at", rule.within_days, ctx) + _restrict("e.profile_id", ctx)
    return sql.SQL("p.id IN ({} UNION {})").format(tx, ev)


def members_query(compiled: Compiled, *, persons: list[int] | None = None) -> Compiled:
    """`SELECT p.id` of the live profiles that match (only among `persons` when given)."""
    q: sql.Composable = sql.SQL("SELECT p.id FROM crm_profiles p WHERE p.merged_into IS NULL")
    params = list(compiled.params)
    if persons is not None:
        q += sql.SQL(" AND p.id = ANY({})").format(sql.Placeholder())
        params = [persons, *params]
    return Compiled(q + sql.SQL(" AND {}").format(compiled.sql), params)


def count_query(compiled: Compiled) -> Compiled:
    """`SELECT count(*)` of the live profiles that match."""
    q = sql.SQL("SELECT count(*) FROM crm_profiles p WHERE p.merged_into IS NULL AND {}")
    return Compiled(q.format(compiled.sql), list(compiled.params))
