"""Attribution reports, campaign costs and ROI, holdouts, and store conversion."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from cloud.crm.attribution import journeys as jr
from cloud.crm.attribution import models as m
from cloud.crm.errors import CrmInvalidInputError, CrmNotFoundError

Conn = psycopg.Connection[Any]
MAX_RANGE = timedelta(days=800)


def _period(
    conn: Conn, start: datetime, end: datetime, lookback_days: int, currency: str | None
) -> jr.Period:
    if start >= end:
        raise CrmInvalidInputError("`from` must be before `to`")
    if end - start > MAX_RANGE:
        raise CrmInvalidInputError("the range may span at most 800 days")
    found = jr.currencies(conn, start, end)
    if currency is None:
        if len(found) > 1:
            raise CrmInvalidInputError(
                f"sales in this range are in {', '.join(found)}: choose one with `currency`"
            )
        currency = found[0] if found else "CNY"
    return jr.Period(start, end, timedelta(days=lookback_days), currency)


def attribution(
    conn: Conn,
    *,
    start: datetime,
    end: datetime,
    models: Sequence[m.Model],
    by: jr.Dimension,
    lookback_days: int,
    half_life_days: float,
    markov_order: int,
    currency: str | None,
) -> dict[str, Any]:
    """Credits (conversions and revenue) by channel or campaign, for each requested model."""
    period = _period(conn, start, end, lookback_days, currency)
    agg = jr.aggregate(conn, period, by, half_life_days)
    converting = [p for p in agg.paths if p.converted]
    direct = [p for p in converting if not p.touches]
    # the same paths valued in conversions (each journey counts 1) and in revenue
    counted = [m.Journey(p.touches, p.converted, p.weight if p.converted else 0.0, None, p.weight)
               for p in agg.paths]  # fmt: skip
    out: dict[str, Any] = {
        "from": start,
        "to": end,
        "by": by.value,
        "currency": period.currency,
        "lookback_days": lookback_days,
        "conversions": int(sum(p.weight for p in converting)),
        "revenue": round(sum(p.value for p in converting), 2),
        "direct_conversions": int(sum(p.weight for p in direct)),
        "direct_revenue": round(sum(p.value for p in direct), 2),
        "journeys_without_conversion": int(sum(p.weight for p in agg.paths if not p.converted)),
        "models": [],
    }
    for model in models:
        if model is m.Model.SHAPLEY:
            keys = {t.key for p in converting for t in p.touches}
            if len(keys) > 15:
                raise CrmInvalidInputError(
                    f"shapley: {len(keys)} distinct {by.value}s; exact Shapley values allow "
                    "at most 15 (attribute by channel, or narrow the range)"
                )
        if model is m.Model.TIME_DECAY:  # needs each touch's age: computed in SQL
            conv, revenue = agg.decay_conversions, agg.decay_value
        else:
            conv = m.attribute(counted, model, order=markov_order)
            revenue = m.attribute(agg.paths, model, order=markov_order)
        rows = [
            {"key": key, "conversions": round(conv.get(key, 0.0), 4),
             "revenue": round(revenue.get(key, 0.0), 2)}
            for key in sorted(set(conv) | set(revenue))
        ]  # fmt: skip
        entry: dict[str, Any] = {"model": model.value, "credits": rows}
        if model is m.Model.MARKOV:
            chain = m.markov(counted, order=markov_order)
            entry["removal_effects"] = {k: round(v, 4) for k, v in chain.removal_effects.items()}
            entry["conversion_probability"] = round(chain.conversion_probability, 4)
        out["models"].append(entry)
    return out


def put_cost(
    conn: Conn,
    *,
    campaign: str,
    currency: str,
    cost_per_message: Decimal,
    fixed_cost: Decimal,
    budget: Decimal | None,
    actor: str,
) -> dict[str, Any]:
    """Create or replace a campaign's cost inputs."""
    row = conn.execute(
        "INSERT INTO crm_campaign_costs (campaign, currency, cost_per_message, fixed_cost, budget,"
        " updated_by) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (campaign) DO UPDATE SET"
        " currency = EXCLUDED.currency, cost_per_message = EXCLUDED.cost_per_message,"
        " fixed_cost = EXCLUDED.fixed_cost, budget = EXCLUDED.budget,"
        " updated_by = EXCLUDED.updated_by, updated_at = now()"
        " RETURNING campaign, currency, cost_per_message, fixed_cost, budget, updated_at",
        (campaign, currency, cost_per_message, fixed_cost, budget, actor),
    ).fetchone()
    assert row is not None
    return dict(zip(("campaign", "currency", "cost_per_message", "fixed_cost", "budget",
                     "updated_at"), row, strict=True))  # fmt: skip


def record_holdout(conn: Conn, *, campaign: str, treated: list[int], held_out: list[int]) -> int:
    """Record who got the campaign and who was held out; returns the rows written. A person
    already assigned keeps their first assignment (a holdout must not move)."""
    overlap = set(treated) & set(held_out)
    if overlap:
        raise CrmInvalidInputError(f"profiles {sorted(overlap)[:5]} are both treated and held out")
    ids = treated + held_out
    flags = [False] * len(treated) + [True] * len(held_out)
    known = conn.execute(
        "SELECT count(*) FROM crm_profiles WHERE id = ANY(%s)", (list(set(ids)),)
    ).fetchone()
    if known is None or int(known[0]) != len(set(ids)):
        raise CrmNotFoundError("some profile ids do not exist")
    cur = conn.execute(
        "INSERT INTO crm_campaign_holdouts (campaign, profile_id, held_out)"
        " SELECT %s, p, h FROM unnest(%s::bigint[], %s::boolean[]) AS u(p, h)"
        " ON CONFLICT (campaign, profile_id) DO NOTHING",
        (campaign, ids, flags),
    )
    return cur.rowcount


_SENT = (
    "SELECT coalesce(c.name, m.template) AS campaign, count(*) FROM crm_message_outbox m"
    " LEFT JOIN crm_msg_campaigns c ON c.id = m.campaign_id"
    " WHERE m.sent_at >= %s AND m.sent_at < %s AND m.purpose = 'marketing' GROUP BY 1"
)
_HOLDOUT = (
    "SELECT h.campaign, h.held_out, count(DISTINCT h.profile_id),"
    " coalesce(sum(x.total_amount), 0) FROM crm_campaign_holdouts h"
    " LEFT JOIN crm_transactions x ON x.profile_id = h.profile_id AND x.occurred_at >= %s"
    " AND x.occurred_at < %s AND x.kind = 'sale' AND x.reversed_at IS NULL AND x.currency = %s"
    " GROUP BY h.campaign, h.held_out"
)


def roi(
    conn: Conn,
    *,
    start: datetime,
    end: datetime,
    model: m.Model,
    lookback_days: int,
    currency: str | None,
) -> dict[str, Any]:
    """Per campaign: messages sent, cost, attributed (or holdout-measured incremental) revenue,
    ROAS and ROI. A campaign with a holdout group is judged on the measured increment."""
    report = attribution(conn, start=start, end=end, models=[model], by=jr.Dimension.CAMPAIGN,
                         lookback_days=lookback_days, half_life_days=7.0, markov_order=1,
                         currency=currency)  # fmt: skip
    revenue = {r["key"]: float(r["revenue"]) for r in report["models"][0]["credits"]}
    sent = {str(r[0]): int(r[1]) for r in conn.execute(_SENT, (start, end))}
    costs = {
        str(r[0]): (str(r[1]), float(r[2]), float(r[3]), None if r[4] is None else float(r[4]))
        for r in conn.execute(
            "SELECT campaign, currency, cost_per_message, fixed_cost, budget"
            " FROM crm_campaign_costs"
        )
    }
    groups: dict[str, dict[bool, tuple[int, float]]] = {}
    for campaign, held_out, people, total in conn.execute(
        _HOLDOUT, (start, end, report["currency"])
    ):
        groups.setdefault(str(campaign), {})[bool(held_out)] = (int(people), float(total))
    rows = []
    for campaign in sorted(set(revenue) | set(sent) | set(costs) | set(groups)):
        if campaign == "(none)":
            continue
        cost_currency, per_message, fixed, budget = costs.get(campaign, (None, 0.0, 0.0, None))
        cost = fixed + per_message * sent.get(campaign, 0)
        basis, value, incremental = "attribution", revenue.get(campaign, 0.0), None
        g = groups.get(campaign, {})
        if False in g and True in g and g[True][0] > 0 and g[False][0] > 0:
            (n_t, rev_t), (n_h, rev_h) = g[False], g[True]
            incremental = (rev_t / n_t - rev_h / n_h) * n_t
            basis, value = "holdout", incremental
        rows.append({
            "campaign": campaign,
            "messages_sent": sent.get(campaign, 0),
            "cost": round(cost, 2),
            "cost_currency": cost_currency,
            "budget": budget,
            "over_budget": budget is not None and cost > budget,
            "attributed_revenue": round(revenue.get(campaign, 0.0), 2),
            "incremental_revenue": None if incremental is None else round(incremental, 2),
            "basis": basis,
            "roas": round(value / cost, 4) if cost > 0 else None,
            "roi": round((value - cost) / cost, 4) if cost > 0 else None,
        })  # fmt: skip
    return {"from": start, "to": end, "model": model.value, "currency": report["currency"],
            "campaigns": rows}  # fmt: skip


def store_conversion(
    conn: Conn, *, store_id: str, start: datetime, end: datetime, bucket: str, currency: str | None
) -> dict[str, Any]:
    """Per hour or local day: visitors (entrance in-counts), POS transactions, conversion rate,
    sales per visitor and average basket."""
    row = conn.execute("SELECT timezone FROM stores WHERE id = %s", (store_id,)).fetchone()
    if row is None:
        raise CrmNotFoundError(f"store '{store_id}' does not exist")
    tz = str(row[0])
    if start >= end or end - start > MAX_RANGE:
        raise CrmInvalidInputError("`from` must be before `to`, at most 800 days apart")
    if currency is None:
        found = jr.currencies(conn, start, end)
        currency = found[0] if found else "CNY"
    unit = "hour" if bucket == "1h" else "day"
    rows = conn.execute(
        "WITH v AS (SELECT date_trunc(%(u)s, bucket AT TIME ZONE %(tz)s) AS b, sum(in_count) AS n"
        "  FROM line_counts_1h WHERE store_id = %(s)s AND bucket >= %(f)s AND bucket < %(t)s"
        "  GROUP BY 1),"
        " x AS (SELECT date_trunc(%(u)s, occurred_at AT TIME ZONE %(tz)s) AS b, count(*) AS k,"
        "  sum(total_amount) AS sales FROM crm_transactions WHERE store_id = %(s)s"
        "  AND occurred_at >= %(f)s AND occurred_at < %(t)s AND kind = 'sale'"
        "  AND reversed_at IS NULL AND currency = %(c)s GROUP BY 1)"
        " SELECT coalesce(v.b, x.b), coalesce(v.n, 0), coalesce(x.k, 0), coalesce(x.sales, 0)"
        " FROM v FULL JOIN x ON x.b = v.b ORDER BY 1",
        {"u": unit, "tz": tz, "s": store_id, "f": start, "t": end, "c": currency},
    ).fetchall()
    zone = ZoneInfo(tz)
    points = []
    for local, visitors, transactions, sales in rows:
        visitors, transactions, sales = int(visitors), int(transactions), float(sales)
        points.append({
            "start": local.replace(tzinfo=zone),
            "visitors": visitors,
            "transactions": transactions,
            "sales": round(sales, 2),
            "conversion_rate": round(transactions / visitors, 4) if visitors else None,
            "sales_per_visitor": round(sales / visitors, 2) if visitors else None,
            "average_basket": round(sales / transactions, 2) if transactions else None,
        })  # fmt: skip
    visitors = sum(p["visitors"] for p in points)
    transactions = sum(p["transactions"] for p in points)
    sales = sum(p["sales"] for p in points)
    return {
        "store_id": store_id, "from": start, "to": end, "bucket": bucket, "currency": currency,
        "visitors": visitors, "transactions": transactions, "sales": round(sales, 2),
        "conversion_rate": round(transactions / visitors, 4) if visitors else None,
        "sales_per_visitor": round(sales / visitors, 2) if visitors else None,
        "average_basket": round(sales / transactions, 2) if transactions else None,
        "points": points,
    }  # fmt: skip


def revenue_forecast(
    conn: Conn,
    *,
    segment_id: int | None,
    history_days: int,
    horizon_days: int,
    currency: str | None,
    today: date,
) -> dict[str, Any]:
    """Daily revenue (all sales, or the current members' of a segment) over `history_days`
    before `today`, and its forecast for `horizon_days` with a 90 % interval."""
    from cloud.crm.attribution.forecast import forecast

    first = today - timedelta(days=history_days)
    lo = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    hi = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    if (
        segment_id is not None
        and conn.execute("SELECT 1 FROM crm_segments WHERE id = %s", (segment_id,)).fetchone()
        is None
    ):
        raise CrmNotFoundError(f"segment {segment_id} does not exist")
    if currency is None:
        found = jr.currencies(conn, lo, hi)
        currency = found[0] if found else "CNY"
    rows = conn.execute(
        "SELECT (occurred_at AT TIME ZONE 'UTC')::date, sum(total_amount) FROM crm_transactions x"
        " WHERE occurred_at >= %(lo)s AND occurred_at < %(hi)s AND kind = 'sale'"
        " AND reversed_at IS NULL AND currency = %(c)s AND (%(seg)s::bigint IS NULL OR EXISTS ("
        "  SELECT 1 FROM crm_segment_members s WHERE s.segment_id = %(seg)s"
        "  AND s.profile_id = x.profile_id AND s.exited_at IS NULL)) GROUP BY 1",
        {"lo": lo, "hi": hi, "c": currency, "seg": segment_id},
    ).fetchall()
    by_day = {r[0]: float(r[1]) for r in rows}
    history = [by_day.get(first + timedelta(days=i), 0.0) for i in range(history_days)]
    try:
        fc = forecast(history, first, horizon_days)
    except ValueError as exc:
        raise CrmInvalidInputError(f"history_days: {exc}") from exc
    points = [
        {"day": fc.start + timedelta(days=i), "revenue": round(float(fc.mean[i]), 2),
         "lower": round(float(fc.lower[i]), 2), "upper": round(float(fc.upper[i]), 2)}
        for i in range(horizon_days)
    ]  # fmt: skip
    return {
        "segment_id": segment_id, "currency": currency, "model": fc.model,
        "interval_level": fc.level, "history_revenue": round(sum(history), 2),
        "forecast_revenue": round(float(fc.mean.sum()), 2), "points": points,
    }  # fmt: skip
