"""Per-customer model state, customer scores and CLV fits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

Conn = psycopg.Connection[Any]


def _ts(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def load_states(conn: Conn, model: str, customer_ids: Sequence[str]) -> list[dict[str, Any]]:
    """States of the given customers (unknown ids are simply absent)."""
    if not customer_ids:
        return []
    rows = conn.execute(
        "SELECT state FROM ml_customers WHERE model = %s AND customer_id = ANY(%s)",
        (model, list(customer_ids)),
    ).fetchall()
    return [r[0] for r in rows]


def load_due(
    conn: Conn, model: str, upto: float, exclude: Sequence[str] = (), limit: int = 100_000
) -> list[dict[str, Any]]:
    """States whose next_due <= upto, earliest first, at most `limit` (the rest stay due and
    are picked up by later batches as the clock moves on)."""
    rows = conn.execute(
        "SELECT state FROM ml_customers WHERE model = %s AND next_due <= %s"
        " AND NOT (customer_id = ANY(%s)) ORDER BY next_due LIMIT %s",
        (model, _ts(upto), list(exclude), limit),
    ).fetchall()
    return [r[0] for r in rows]


def save_states(
    conn: Conn, model: str, rows: Iterable[tuple[str, str | None, dict[str, Any], float | None]]
) -> int:
    """Upsert (customer_id, store_id, state, next_due) rows; returns how many were written."""
    data = [(model, cid, store, Jsonb(state), _ts(due)) for cid, store, state, due in rows]
    if not data:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ml_customers (model, customer_id, store_id, state, next_due)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (model, customer_id) DO UPDATE SET"
            " store_id = EXCLUDED.store_id, state = EXCLUDED.state,"
            " next_due = EXCLUDED.next_due, updated_at = now()",
            data,
        )
    return len(data)


def iter_states(conn: Conn, model: str, batch: int = 2000) -> Iterator[list[dict[str, Any]]]:
    """All customer states of a model, in batches (keyset pagination on customer_id)."""
    last = ""
    while True:
        rows = conn.execute(
            "SELECT customer_id, state FROM ml_customers WHERE model = %s AND customer_id > %s"
            " ORDER BY customer_id LIMIT %s",
            (model, last, batch),
        ).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        yield [r[1] for r in rows]


def count_customers(conn: Conn, model: str) -> int:
    """Customers with state in a model."""
    r = conn.execute("SELECT count(*) FROM ml_customers WHERE model = %s", (model,)).fetchone()
    return int(r[0]) if r else 0


SCORE_COLS = (
    "customer_id",
    "store_id",
    "segment",
    "churn_probability",
    "p_alive",
    "expected_purchases",
    "expected_spend",
    "clv",
    "engagement",
    "health_score",
    "risk_value",
    "reasons",
    "action",
    "model_version",
    "as_of",
)


def save_scores(conn: Conn, rows: Sequence[dict[str, Any]]) -> int:
    """Upsert customer scores (dicts keyed by SCORE_COLS)."""
    if not rows:
        return 0
    cols = ", ".join(SCORE_COLS)
    marks = ", ".join(["%s"] * len(SCORE_COLS))
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in SCORE_COLS[1:])
    data = [
        tuple(Jsonb(r[c]) if c in ("reasons", "action") else r[c] for c in SCORE_COLS) for r in rows
    ]
    with conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO ml_customer_scores ({cols}) VALUES ({marks}) ON CONFLICT (customer_id)"
            f" DO UPDATE SET {updates}, scored_at = now()",
            data,
        )
    return len(rows)


def get_score(conn: Conn, customer_id: str) -> dict[str, Any] | None:
    """The stored score of one customer."""
    cols = ", ".join(SCORE_COLS)
    r = conn.execute(
        f"SELECT {cols}, scored_at FROM ml_customer_scores WHERE customer_id = %s", (customer_id,)
    ).fetchone()
    return dict(zip((*SCORE_COLS, "scored_at"), r, strict=True)) if r else None


def at_risk(
    conn: Conn,
    *,
    store_id: str | None,
    segment: str | None,
    min_churn: float,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """Customers ranked by value at risk (churn probability x CLV), filtered."""
    cols = ", ".join(SCORE_COLS)
    rows = conn.execute(
        f"SELECT {cols}, scored_at FROM ml_customer_scores"
        " WHERE churn_probability >= %s AND (%s::text IS NULL OR store_id = %s)"
        " AND (%s::text IS NULL OR segment = %s)"
        " ORDER BY risk_value DESC, customer_id LIMIT %s OFFSET %s",
        (min_churn, store_id, store_id, segment, segment, limit, offset),
    ).fetchall()
    return [dict(zip((*SCORE_COLS, "scored_at"), r, strict=True)) for r in rows]


def save_clv_fit(
    conn: Conn,
    *,
    scope: str,
    bgnbd: dict[str, float],
    gamma_gamma: dict[str, float] | None,
    n_customers: int,
    as_of: datetime,
) -> None:
    """Store (replace) the CLV fit of a scope."""
    conn.execute(
        "INSERT INTO ml_clv_fits (scope, bgnbd, gamma_gamma, n_customers, as_of)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (scope) DO UPDATE SET bgnbd = EXCLUDED.bgnbd,"
        " gamma_gamma = EXCLUDED.gamma_gamma, n_customers = EXCLUDED.n_customers,"
        " as_of = EXCLUDED.as_of, fitted_at = now()",
        (scope, Jsonb(bgnbd), Jsonb(gamma_gamma) if gamma_gamma else None, n_customers, as_of),
    )


def clv_fits(conn: Conn) -> dict[str, dict[str, Any]]:
    """Every stored CLV fit by scope."""
    rows = conn.execute(
        "SELECT scope, bgnbd, gamma_gamma, n_customers, as_of, fitted_at FROM ml_clv_fits"
    ).fetchall()
    keys = ("scope", "bgnbd", "gamma_gamma", "n_customers", "as_of", "fitted_at")
    return {r[0]: dict(zip(keys, r, strict=True)) for r in rows}


def delete_customer(conn: Conn, model: str, customer_id: str) -> None:
    """Forget a customer's state and score (after folding it into a merge survivor)."""
    conn.execute(
        "DELETE FROM ml_customers WHERE model = %s AND customer_id = %s", (model, customer_id)
    )
    conn.execute("DELETE FROM ml_customer_scores WHERE customer_id = %s", (customer_id,))
