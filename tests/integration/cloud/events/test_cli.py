"""`mallpulse cloud events source create` and `mallpulse cloud events import FILE` (JSONL and
CSV, via COPY, with progress; bad lines listed, a re-import stores nothing twice)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from cloud.cli import app
from cloud.crm.events.sources import authenticate


def test_source_create_then_import(
    fresh_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database()
    monkeypatch.setenv("MALLPULSE_DATABASE_URL", url)
    runner = CliRunner()
    made = runner.invoke(app, ["events", "source", "create", "pos", "--no-consent-required",
                               "--retention-days", "400"])  # fmt: skip
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    with psycopg.connect(url) as conn:
        assert authenticate(conn, key).id == "pos"  # the printed key works
    assert runner.invoke(app, ["events", "source", "create", "pos"]).exit_code == 2  # taken

    calls = [
        {"type": "track", "event": "Order Completed", "anonymousId": "a1",
         "timestamp": "2024-03-01T10:00:00Z", "properties": {"revenue": 10, "store_id": "s1"}},
        {"type": "page", "name": "Home", "userId": "u1", "timestamp": "2023-01-01T00:00:00Z"},
        {"type": "track", "anonymousId": "a1"},  # no event
    ]  # fmt: skip
    jsonl = tmp_path / "history.jsonl"
    jsonl.write_text("\n".join(json.dumps(c) for c in calls) + "\n{oops\n", encoding="utf-8")
    res = runner.invoke(app, ["events", "import", str(jsonl), "--source", "pos"])
    assert res.exit_code == 1, res.output
    assert "2 stored, 0 duplicates, 2 refused of 4 lines" in res.stdout
    assert "line 3:" in res.output and "line 4: not JSON" in res.output
    assert "lines:" in res.output  # progress
    again = runner.invoke(app, ["events", "import", str(jsonl), "--source", "pos"])
    assert "0 stored, 2 duplicates" in again.stdout  # no messageId: derived from the line

    csv_file = tmp_path / "history.csv"
    csv_file.write_text(
        "type,event,anonymousId,timestamp,sku,revenue\n"
        "track,Order Completed,a2,2025-05-05T12:00:00+02:00,A1,12.5\n",
        encoding="utf-8",
    )
    ok = runner.invoke(app, ["events", "import", str(csv_file), "--source", "pos"])
    assert ok.exit_code == 0, ok.output
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT event, properties, revenue, occurred_at FROM crm_events"
            " WHERE anonymous_id = 'a2'"
        ).fetchall()
    assert len(rows) == 1 and rows[0][1] == {"sku": "A1", "revenue": "12.5"}
    assert float(rows[0][2]) == 12.5 and rows[0][3].year == 2025


def test_import_needs_a_known_source(
    fresh_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MALLPULSE_DATABASE_URL", fresh_database())
    f = tmp_path / "x.jsonl"
    f.write_text("{}\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["events", "import", str(f), "--source", "nope"])
    assert res.exit_code == 2 and "no event source 'nope'" in res.output
