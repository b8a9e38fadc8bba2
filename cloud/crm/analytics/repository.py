"""SQL shared by the analyses: parameters, person resolution, event matchers, known properties.

Every query reads crm_events (storage contract in docs/events.md). A person is the surviving
profile of the event's profile_id (merges resolved once per query, not per row), or the
anonymous_id of an event without a profile.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from cloud.crm.analytics.schemas import EventMatcher, PropertyFilter
from cloud.crm.errors import CrmInvalidInputError

Conn = psycopg.Connection[Any]
#: The longest one analytical statement may run (milliseconds).
STATEMENT_TIMEOUT_MS = 120_000

#: Merged profiles and the survivor each resolves to (few rows; joined by hash to events).
MERGED_CTE = sql.SQL(
    "merged AS MATERIALIZED (SELECT id, crm_resolve_profile(id) AS root"
    " FROM crm_profiles WHERE merged_into IS NOT NULL)"
)
#: The person columns of an event row `e` joined to `merged m`.
PERSON_COLS = sql.SQL(
    "COALESCE(m.root, e.profile_id) AS pid,"
    " CASE WHEN e.profile_id IS NULL THEN e.anonymous_id END AS anon"
)
#: One text key per person (hashable, unlike the nullable pair) for joins and grouping.
PERSON_KEY = sql.SQL(
    "COALESCE(COALESCE(m.root, e.profile_id)::text, 'anon:' || e.anonymous_id) AS pk"
)
#: Events that belong to nobody cannot be counted for anyone.
HAS_PERSON = sql.SQL("(e.profile_id IS NOT NULL OR e.anonymous_id IS NOT NULL)")


class Params:
    """Named query parameters, collected while a query is composed."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, value: Any) -> sql.Placeholder:
        """A placeholder standing for `value`."""
        name = f"p{len(self.values)}"
        self.values[name] = value
        return sql.Placeholder(name)


def _prop(params: Params, key: str) -> sql.Composable:
    return sql.SQL("(e.properties -> {})").format(params(key))


def filter_sql(params: Params, f: PropertyFilter) -> sql.Composable:
    """One property condition on `e.properties`; a missing property fails all but neq."""
    prop = _prop(params, f.property)
    if f.op == "exists":
        return sql.SQL("(e.properties ? {})").format(params(f.property))
    if f.op == "eq":
        return sql.SQL("{} = {}::jsonb").format(prop, params(Jsonb(f.value)))
    if f.op == "neq":
        return sql.SQL("{} IS DISTINCT FROM {}::jsonb").format(prop, params(Jsonb(f.value)))
    if f.op == "in":
        values = [Jsonb(v) for v in f.value] if isinstance(f.value, list) else []
        return sql.SQL("{} = ANY({}::jsonb[])").format(prop, params(values))
    op = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[f.op]
    # jsonb_typeof first: casting a string property to numeric would fail the whole query
    return sql.SQL(
        "(CASE WHEN jsonb_typeof({p}) = 'number' THEN ({p})::numeric {op} {v} ELSE false END)"
    ).format(p=prop, op=sql.SQL(op), v=params(Decimal(repr(f.value))))


def matcher_sql(params: Params, m: EventMatcher | None) -> sql.Composable:
    """The condition an event row `e` meets when it matches `m` (None: any named event)."""
    if m is None:
        return sql.SQL("(e.event IS NOT NULL)")
    parts: list[sql.Composable] = [sql.SQL("e.event = {}").format(params(m.event))]
    parts += [filter_sql(params, f) for f in m.filters]
    return sql.SQL("({})").format(sql.SQL(" AND ").join(parts))


def breakdown_sql(params: Params, key: str | None) -> sql.Composable:
    """The breakdown value of an event row `e` (text, null when missing or not asked)."""
    if key is None:
        return sql.SQL("NULL::text")
    return sql.SQL("(e.properties ->> {})").format(params(key))


def property_known(conn: Conn, event: str, key: str, start: datetime, end: datetime) -> bool:
    """Whether a tracking plan declares `key` for `event`, or an `event` in [start, end) has it."""
    planned = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM crm_event_plans WHERE event = %s"
        " AND type IN ('track', 'page', 'screen') AND schema -> 'properties' ? %s)",
        (event, key),
    ).fetchone()
    if planned and planned[0]:
        return True
    seen = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM crm_events WHERE event = %s AND occurred_at >= %s"
        " AND occurred_at < %s AND properties ? %s)",
        (event, start, end, key),
    ).fetchone()
    return bool(seen and seen[0])


def require_known(
    conn: Conn, checks: list[tuple[str, list[str], str]], start: datetime, end: datetime
) -> None:
    """Refuse (422 naming the field) a property no event of the named events knows.

    `checks` holds (request field, event names, property key); a key is known when one of
    the events knows it (see `property_known`).
    """
    errors = []
    for field, events, key in checks:
        if not any(property_known(conn, ev, key, start, end) for ev in dict.fromkeys(events)):
            names = ", ".join(repr(e) for e in dict.fromkeys(events))
            msg = (
                f"unknown property {key!r}: no tracking plan or event {names} in the period has it"
            )
            errors.append({"field": field, "message": msg, "type": "unknown_property"})
    if errors:
        raise CrmInvalidInputError(errors[0]["message"], errors=errors)


def matcher_checks(field: str, m: EventMatcher | None) -> list[tuple[str, list[str], str]]:
    """The known-property checks of one matcher's filters."""
    if m is None:
        return []
    return [
        (f"{field}.filters.{i}.property", [m.event], f.property) for i, f in enumerate(m.filters)
    ]


def fast_reads(conn: Conn) -> None:
    """Transaction settings for one analysis (sorts in memory, not on disk; a time limit that
    also covers the known-property checks); call it first."""
    conn.execute("SELECT set_config('work_mem', '256MB', true)")
    # bounded: a runaway analysis answers 503 instead of holding a pooled connection
    conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{STATEMENT_TIMEOUT_MS}",))
