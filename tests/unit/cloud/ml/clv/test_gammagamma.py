"""Gamma-Gamma fitted on the CDNOW sample reproduces Fader, Hardie and Lee (2005, "RFM and CLV")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cloud.ml.clv import gammagamma
from cloud.ml.errors import FitError


@pytest.fixture(scope="module")
def data(shared_file: Callable[[str], Path]) -> np.ndarray:
    path = shared_file("data/cdnow/cdnow_customers_summary_with_transactions.csv")
    return np.loadtxt(path, delimiter=",", skiprows=1)


@pytest.fixture(scope="module")
def params(data: np.ndarray) -> gammagamma.GammaGammaParams:
    return gammagamma.fit(data[:, 1], data[:, 4])


@pytest.mark.parametrize(("name", "published"), [("p", 6.25), ("q", 3.74), ("gamma", 15.44)])
def test_parameters_match_the_paper(
    params: gammagamma.GammaGammaParams, name: str, published: float
) -> None:
    assert getattr(params, name) == pytest.approx(published, abs=0.01)


def test_fit_uses_only_repeat_buyers(params: gammagamma.GammaGammaParams) -> None:
    assert params.n_customers == 946


def test_expected_spend_shrinks_towards_the_population_mean(
    params: gammagamma.GammaGammaParams,
) -> None:
    mean = params.population_mean
    few, many = gammagamma.expected_spend(params, np.array([1.0, 20.0]), np.array([100.0, 100.0]))
    assert mean < many < few < 100.0 or mean < few < many < 100.0
    assert abs(many - 100.0) < abs(few - 100.0)
    (none,) = gammagamma.expected_spend(params, np.array([0.0]), np.array([0.0]))
    assert none == pytest.approx(mean)


def test_too_few_repeat_buyers_is_a_clear_error() -> None:
    with pytest.raises(FitError, match="at least 10"):
        gammagamma.fit(np.array([1.0, 0.0]), np.array([10.0, 0.0]))
