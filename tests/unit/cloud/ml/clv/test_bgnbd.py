"""BG/NBD fitted on the CDNOW sample reproduces Fader, Hardie and Lee (2005)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cloud.ml.clv import bgnbd
from cloud.ml.errors import FitError


@pytest.fixture(scope="module")
def cdnow(shared_file: Callable[[str], Path]) -> np.ndarray:
    """ID, x, t_x, T of the 2,357-customer CDNOW sample (39-week calibration)."""
    return np.loadtxt(
        shared_file("data/cdnow/cdnow_customers_summary.csv"), delimiter=",", skiprows=1
    )


@pytest.fixture(scope="module")
def params(cdnow: np.ndarray) -> bgnbd.BgNbdParams:
    return bgnbd.fit(cdnow[:, 1], cdnow[:, 2], cdnow[:, 3])


@pytest.mark.parametrize(
    ("name", "published", "tol"),
    [("r", 0.243, 0.002), ("alpha", 4.414, 0.01), ("a", 0.793, 0.003), ("b", 2.426, 0.01)],
)
def test_parameters_match_the_paper(
    params: bgnbd.BgNbdParams, name: str, published: float, tol: float
) -> None:
    assert getattr(params, name) == pytest.approx(published, abs=tol)


def test_log_likelihood_matches_the_paper(params: bgnbd.BgNbdParams) -> None:
    assert params.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert params.n_customers == 2357


def test_conditional_expectation_of_the_papers_example(params: bgnbd.BgNbdParams) -> None:
    # FHL 2005: a customer with x=2, t_x=30.43, T=38.86 makes 1.226 purchases in 39 weeks.
    e = bgnbd.expected_purchases(params, 39, np.array([2.0]), np.array([30.43]), np.array([38.86]))
    assert e[0] == pytest.approx(1.226, abs=0.002)


def test_p_alive_is_one_without_repeat_and_falls_with_long_silence(
    params: bgnbd.BgNbdParams,
) -> None:
    alive = bgnbd.probability_alive(
        params, np.array([0.0, 5.0, 5.0]), np.array([0.0, 38.0, 5.0]), np.array([38.86] * 3)
    )
    assert alive[0] == 1.0
    assert alive[1] > 0.8 > 0.01 > alive[2]


def test_aggregate_fit_is_close_to_observed_repeat_count(
    cdnow: np.ndarray, params: bgnbd.BgNbdParams
) -> None:
    # Sum of E[X(T_i)] over customers must approximate the observed number of repeat purchases.
    expected = sum(bgnbd.expected_purchases_new(params, t) for t in cdnow[:, 3])
    assert expected == pytest.approx(cdnow[:, 1].sum(), rel=0.03)


@pytest.mark.parametrize(
    ("x", "t_x", "big_t"),
    [([], [], []), ([1.0], [5.0], [4.0]), ([-1.0], [0.0], [3.0]), ([1.0, 2.0], [1.0], [3.0])],
)
def test_bad_summaries_are_rejected(x: list[float], t_x: list[float], big_t: list[float]) -> None:
    with pytest.raises(FitError):
        bgnbd.fit(np.array(x), np.array(t_x), np.array(big_t))


def test_tiny_samples_whose_optimum_lies_on_a_ridge_still_fit() -> None:
    # three customers: the likelihood keeps rising as a, b -> infinity (fixed a / (a + b)); the
    # optimiser's line search stops there for some ages T, which must not fail the fit
    x, t_x = np.array([3.0, 3.0, 3.0]), np.array([45 / 7, 50 / 7, 55 / 7])
    for age in (90.0, 98.5427, 100.7538, 103.0653, 106.2814):  # line-search stops at all but 90
        p = bgnbd.fit(x, t_x, np.array([age, age - 5 / 7, age - 10 / 7]))
        assert all(np.isfinite([p.r, p.alpha, p.a, p.b, p.log_likelihood]))
