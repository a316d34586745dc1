"""synthsae.stats: summaries over seeds, the 2-SE comparison rule, rankings with ties."""

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from synthsae.stats import compare, rank, summarize


def test_summary_matches_scipy_t_interval():
    values = [0.71, 0.74, 0.69, 0.73]
    s = summarize(values)
    lo, hi = scipy_stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values))
    assert s.mean == pytest.approx(np.mean(values), abs=1e-15)
    assert s.se == pytest.approx(scipy_stats.sem(values), rel=1e-12)
    assert (s.lo, s.hi) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
    assert "n=4" in s.text()


def test_one_seed_has_no_interval_and_cannot_be_compared():
    s = summarize([0.5])
    assert math.isnan(s.se) and math.isnan(s.lo) and "no interval" in s.text()
    assert compare([0.5], [0.1, 0.2]).direction is None


def test_nan_is_refused_not_averaged():
    with pytest.raises(ValueError, match="failed measurement"):
        summarize([0.5, float("nan")])


def test_compare_calls_only_differences_beyond_two_standard_errors():
    # clearly separated: 0.88 vs 0.52 with spreads of 0.01
    clear = compare([0.87, 0.88, 0.89], [0.51, 0.52, 0.53])
    assert clear.direction == 1 and clear.diff == pytest.approx(0.36)
    assert compare([0.51, 0.52, 0.53], [0.87, 0.88, 0.89]).direction == -1
    # the audit's case: F1 0.526 vs 0.524 with a seed spread of about 0.012 is noise
    noisy = compare([0.514, 0.526, 0.538], [0.512, 0.524, 0.536])
    assert noisy.direction == 0 and "within noise" in noisy.text("A", "B")


def test_rank_ties_overlapping_intervals():
    s = {"matryoshka": summarize([0.87, 0.88, 0.89]), "batchtopk": summarize([0.72, 0.73, 0.74]),
         "jumprelu": summarize([0.725, 0.735, 0.745]), "relu_l1": summarize([0.55, 0.56, 0.57])}
    assert rank(s) == [["matryoshka"], ["jumprelu", "batchtopk"], ["relu_l1"]]
    assert rank(s, higher_is_better=False)[0] == ["relu_l1"]
