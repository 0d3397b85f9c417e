"""Bootstrap intervals on distributions whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from helpers.compare import stats as S


def test_the_interval_of_a_constant_is_a_point():
    est, lo, hi = S.bootstrap_ci(np.full(30, 3.25))
    assert est == lo == hi == pytest.approx(3.25)


def test_a_large_normal_sample_covers_its_mean_with_the_expected_width():
    x = np.random.default_rng(1).normal(10.0, 2.0, 4000)
    est, lo, hi = S.bootstrap_ci(x, n_boot=2000)
    assert lo < 10.0 < hi and lo < est < hi
    expected = 2 * 1.959964 * 2.0 / math.sqrt(x.size)  # the normal theory width of a 95% interval
    assert (hi - lo) == pytest.approx(expected, rel=0.2)
    assert S.bootstrap_ci(x, level=0.5)[2] - S.bootstrap_ci(x, level=0.5)[1] < hi - lo


def test_same_seed_same_interval_and_other_statistics():
    x = np.random.default_rng(2).exponential(1.0, 200)
    assert S.bootstrap_ci(x, seed=3) == S.bootstrap_ci(x, seed=3)
    est, lo, hi = S.bootstrap_ci(x, stat=np.median)
    assert est == pytest.approx(np.median(x)) and lo < est < hi
    trimmed = lambda v: float(np.mean(np.sort(v)[5:-5]))  # no axis= argument: the slow path
    est, lo, hi = S.bootstrap_ci(x, stat=trimmed, n_boot=300)
    assert lo < est < hi


def test_nonfinite_values_are_left_out_and_empty_gives_nan():
    assert S.bootstrap_ci([1.0, np.nan, 1.0, np.inf])[0] == 1.0
    assert all(math.isnan(v) for v in S.bootstrap_ci([np.nan]))
    with pytest.raises(ValueError, match="level"):
        S.bootstrap_ci([1.0, 2.0], level=95)


def test_paired_difference_sees_a_shift_the_separate_intervals_miss():
    g = np.random.default_rng(4)
    difficulty = g.normal(50, 20, 40)  # shared by both systems: a hard sentence is hard for both
    a = difficulty + g.normal(0, 1, 40)
    b = a - 2.0 + g.normal(0, 1, 40)  # b is 2 units better on every utterance
    ca, cb = S.bootstrap_ci(a), S.bootstrap_ci(b)
    assert cb[1] < ca[2]  # the two separate intervals overlap ...
    d, lo, hi = S.paired_ci(a, b)
    assert d == pytest.approx(b.mean() - a.mean()) and hi < 0 and lo < -2.0 < hi  # ... the paired one does not
    cmp = S.compare_paired(a, b, better="lower", names=("LSTM", "Mamba"))
    assert cmp.verdict == "Mamba better" and cmp.n == 40
    assert S.compare_paired(a, b, better="higher", names=("LSTM", "Mamba")).verdict == "Mamba worse"


def test_no_difference_when_the_paired_interval_contains_zero():
    g = np.random.default_rng(5)
    a = g.normal(5, 1, 30)
    b = a + g.normal(0, 1, 30)  # same on average
    cmp = S.compare_paired(a, b)
    assert cmp.diff_lo <= 0 <= cmp.diff_hi and cmp.verdict == "no difference"
    assert S.compare_paired([np.nan], [1.0]).verdict == "no data"
    with pytest.raises(ValueError, match="one value per utterance"):
        S.paired_ci([1.0, 2.0], [1.0])


def test_paired_table_matches_utterances_by_id():
    g = np.random.default_rng(6)
    ids = [f"u{i}" for i in range(20)]
    base = g.normal(100, 30, 20)
    rows = [{"set": "real", "id": i, "model": "LSTM", "boundary_mae_ms": v} for i, v in zip(ids, base)]
    rows += [  # Mamba's rows in another order, 10 ms better everywhere
        {"set": "real", "id": i, "model": "Mamba", "boundary_mae_ms": v - 10 + g.normal(0, 1)}
        for i, v in reversed(list(zip(ids, base)))
    ]
    rows += [{"set": "real", "id": "u0", "model": "recording", "wer_pct": 5.0}]
    table = S.paired_table(pd.DataFrame(rows))
    assert list(table["column"]) == ["boundary_mae_ms"]
    r = table.iloc[0]
    assert r["n"] == 20 and r["verdict"] == "Mamba better" and r["Mamba - LSTM"] == pytest.approx(-10, abs=1)
    assert r["LSTM_lo"] < r["LSTM"] < r["LSTM_hi"]
