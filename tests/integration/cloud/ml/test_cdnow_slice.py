"""A slice of the CDNOW evaluation in CI: 300 customers replayed through record_transaction,
learnt by the real consumer, scored at the cut-off and compared with BG/NBD."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cloud.ml import evaluation


def test_cdnow_slice_end_to_end(
    ml_db: str, shared_file: Callable[[str], Path], shared_dir: Path
) -> None:
    shared_file("data/cdnow/CDNOW_master.txt")
    messages: list[str] = []
    with psycopg.connect(ml_db) as conn:
        result: dict[str, Any] = evaluation.run(
            conn, shared_dir, customers=300, progress=messages.append
        )
    lit = result["literature"]
    assert lit["bgnbd"]["r"] == pytest.approx(0.243, abs=0.002)
    assert lit["gamma_gamma"]["p"] == pytest.approx(6.25, abs=0.01)
    cut = result["cutoff"]
    assert cut["customers"] == 300
    assert 0.6 < cut["churn_rate"] < 0.95
    assert cut["auc_churn_model"] > 0.65  # learnt, on real data, through the real path
    assert cut["auc_bgnbd_expected_purchases"] > 0.65
    assert result["progressive"]["samples_seen"] > 500
    assert result["transactions"] > 500
    assert any("churn consumer learnt" in m for m in messages)
    assert "ROC AUC churn model" in evaluation.report(result)
