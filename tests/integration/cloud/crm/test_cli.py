"""`mallpulse cloud import-customers / export-customers` on a database of their own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud.cli import app


def test_import_then_export(
    fresh_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MALLPULSE_DATABASE_URL", fresh_database())
    src = tmp_path / "in.csv"
    src.write_text("email,first_name\nzoe@example.org,Zoe\nbad-email,Bad\n", encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["import-customers", str(src)])
    assert res.exit_code == 1  # one row was rejected
    assert "line 3: identifiers.email" in res.output and "1 imported, 1 rejected" in res.output
    out = tmp_path / "out.csv"
    assert runner.invoke(app, ["export-customers", "--out", str(out)]).exit_code == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("profile_id,") and "zoe@example.org" in lines[1]
    assert len(lines) == 2
