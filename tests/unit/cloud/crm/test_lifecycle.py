"""Lifecycle rules and forward-only transitions."""

from __future__ import annotations

import pytest

from cloud.crm.lifecycle import compute_stage, transitions


@pytest.mark.parametrize(
    ("facts", "stage"),
    [
        ({}, None),
        ({"touchpoints": 1}, "awareness"),
        ({"touchpoints": 2, "engagements": 2}, "consideration"),
        ({"touchpoints": 1, "intents": 1}, "consideration"),
        ({"purchases": 1, "purchase_days": 1}, "purchase"),
        ({"purchases": 3, "purchase_days": 1}, "purchase"),
        ({"purchases": 2, "purchase_days": 2}, "retention"),
        ({"purchases": 2, "purchase_days": 2, "advocacy_events": 1}, "advocacy"),
        ({"purchases": 5, "purchase_days": 3}, "advocacy"),
    ],
)
def test_rules(facts: dict[str, int], stage: str | None) -> None:
    assert compute_stage(facts)[0] == stage


def test_transitions_only_move_forward_step_by_step() -> None:
    assert transitions(None, "purchase") == [
        (None, "awareness"),
        ("awareness", "consideration"),
        ("consideration", "purchase"),
    ]
    assert transitions("retention", "purchase") == []
    assert transitions("purchase", None) == []
