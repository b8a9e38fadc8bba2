"""Random segment rules over the generated world's names (hypothesis strategies)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from cloud.crm.segments import rules as r
from tests.integration.cloud.segments.world import COUNTRIES, EVENTS, STORES

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
