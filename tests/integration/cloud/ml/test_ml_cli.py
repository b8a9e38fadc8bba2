"""The predictive commands: ml-learn, fit-clv, score-customers, eval-cdnow argument checks."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud.cli import app

from .conftest import Buy


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """ml-learn configures the root logger (JSON at INFO); undo that for the next tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def env(ml_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLPULSE_DATABASE_URL", ml_db)
    monkeypatch.setenv("MALLPULSE_ML_CONSUME_BATCH", "4")


def test_learn_fit_and_score_from_the_command_line(env: None, buy: Buy) -> None:
    for i in range(12):
        buy(f"C{i % 3}", i * 5)
    runner = CliRunner()
    learnt = runner.invoke(app, ["ml-learn"])
    assert learnt.exit_code == 0, learnt.output
    assert "learnt 12 events" in learnt.output and "batch 3: read 4" in learnt.output
    fit = runner.invoke(app, ["fit-clv"])
    assert fit.exit_code == 0, fit.output
    # three customers: BG/NBD fits, Gamma-Gamma needs ten repeat buyers and is left out
    assert '"scope": "all"' in fit.output and '"gamma_gamma": null' in fit.output
    scored = runner.invoke(app, ["score-customers"])
    assert scored.exit_code == 0, scored.output
    assert "scored 3 customers" in scored.output


def test_score_without_a_model_is_a_clear_error(env: None) -> None:
    res = CliRunner().invoke(app, ["score-customers"])
    assert res.exit_code == 1 and "has not been trained yet" in res.output


def test_eval_cdnow_names_the_missing_file(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["eval-cdnow", "--shared", str(tmp_path)])
    assert res.exit_code == 2
    assert str(tmp_path / "data/cdnow/CDNOW_master.txt") in res.output
