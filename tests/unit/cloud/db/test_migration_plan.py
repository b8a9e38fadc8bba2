"""Migration planning: one step per version, the base file first, then the fitting variant."""

from __future__ import annotations

import pytest

from cloud.db.migrate import Migration, discover, plan

FILES = [
    Migration(1, "core", None, "-- core"),
    Migration(2, "series", "timescale", "-- hypertables"),
    Migration(2, "series", None, "-- tables"),
    Migration(2, "series", "plain", "-- brin"),
    Migration(3, "extra", "plain", "-- plain only"),
]


@pytest.mark.parametrize(
    ("timescale", "expected"),
    [
        (
            False,
            [
                (1, None, "-- core"),
                (2, "plain", "-- tables\n-- brin"),
                (3, "plain", "-- plain only"),
            ],
        ),
        (True, [(1, None, "-- core"), (2, "timescale", "-- tables\n-- hypertables")]),
    ],
)
def test_plan_joins_base_and_variant(timescale: bool, expected: list[tuple[object, ...]]) -> None:
    steps = plan(FILES, timescale=timescale)
    assert [(m.version, m.variant, m.sql) for m in steps] == expected


def test_shipped_timeseries_tables_come_before_either_storage_engine() -> None:
    for timescale, marker in ((False, "USING brin"), (True, "create_hypertable")):
        step = next(m for m in plan(discover(), timescale=timescale) if m.version == 101)
        assert step.sql.index("CREATE TABLE IF NOT EXISTS line_counts") < step.sql.index(marker)
