"""Analytics requests are bounded and every user value reaches SQL as a parameter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from psycopg import sql
from pydantic import ValidationError

from cloud.crm.analytics import funnels
from cloud.crm.analytics.repository import Params
from cloud.crm.analytics.schemas import DropoffQuery, FunnelQuery, PropertyFilter

T0 = datetime(2026, 3, 2, tzinfo=UTC)
EVIL = "x'); DROP TABLE crm_events; --"


def _funnel(**kw: Any) -> dict[str, Any]:
    return {"start": T0, "end": T0 + timedelta(days=7),
            "steps": [{"event": "a"}, {"event": "b"}], **kw}  # fmt: skip


def _sql_text(c: sql.Composable) -> str:
    if isinstance(c, sql.Composed):
        return "".join(_sql_text(part) for part in c)
    if isinstance(c, sql.SQL):
        return c.as_string(None)
    return "?" if isinstance(c, sql.Placeholder) else repr(c)


@pytest.mark.parametrize("order", ["strict", "any"])
def test_names_properties_and_values_are_parameters(order: str) -> None:
    steps = [
        {"event": EVIL, "filters": [{"property": EVIL, "op": "eq", "value": EVIL}]},
        {"event": "b", "filters": [{"property": EVIL, "op": "in", "value": [EVIL, 1]}]},
    ]
    q = FunnelQuery.model_validate(_funnel(steps=steps, breakdown=EVIL, order=order))
    p = Params()
    text = _sql_text(funnels.per_person_sql(q, p))
    assert EVIL not in text and "DROP" not in text
    assert EVIL in p.values.values()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"end": T0}, "end must be after start"),
        ({"end": T0 + timedelta(days=367)}, "at most 366 days"),
        ({"steps": [{"event": "a"}]}, "at least 2"),
        ({"steps": [{"event": "a"}] * 9}, "at most 8"),
        ({"window_seconds": 91 * 86400}, "less than or equal"),
        ({"order": "sideways"}, "strict"),
        ({"breakdown": "a\x00b"}, "NUL"),
        ({"extra": 1}, "Extra inputs"),
    ],
)
def test_unbounded_or_malformed_funnels_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FunnelQuery.model_validate(_funnel(**change))


@pytest.mark.parametrize(
    ("f", "message"),
    [
        ({"property": "n", "op": "gt", "value": "5"}, "takes a number"),
        ({"property": "n", "op": "gt", "value": True}, "takes a number"),
        ({"property": "n", "op": "in", "value": []}, "1 to 50"),
        ({"property": "n", "op": "in", "value": 3}, "1 to 50"),
        ({"property": "n", "op": "exists", "value": 3}, "no value"),
        ({"property": "n", "op": "eq"}, "one JSON scalar"),
    ],
)
def test_filters_need_a_value_that_fits_their_op(f: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PropertyFilter.model_validate(f)


def test_dropoffs_name_a_step_before_the_last() -> None:
    with pytest.raises(ValidationError, match="before the last step"):
        DropoffQuery.model_validate(_funnel(step=2))
    assert DropoffQuery.model_validate(_funnel(step=1)).limit == 100
