"""The statistics of the comparisons: t-intervals that cover at small n, the paired t-test, Holm's correction,
no verdict below the minimum n, and a seeded simulation of the verdict's false-alarm rate and power."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from helpers.compare import stats as S


def test_the_interval_of_a_constant_is_a_point_and_one_value_has_none():
    assert S.t_interval(np.full(30, 3.25)) == pytest.approx((3.25, 3.25, 3.25))
    m, lo, hi = S.t_interval([7.0, np.nan])
    assert m == 7.0 and math.isnan(lo) and math.isnan(hi)
    assert all(math.isnan(v) for v in S.t_interval([np.nan]))
    with pytest.raises(ValueError, match="level"):
        S.t_interval([1.0, 2.0], level=95)


def test_the_t_interval_has_students_width():
    x = np.array([1.0, 2.0, 4.0])  # mean 7/3, sd sqrt(7/3); t(0.975, 2) = 4.3027
    m, lo, hi = S.t_interval(x)
    assert m == pytest.approx(7 / 3) and hi - m == pytest.approx(4.302653 * math.sqrt(7 / 3) / math.sqrt(3), rel=1e-5)
    assert m - lo == pytest.approx(hi - m)
    assert S.t_interval(x, level=0.5)[2] < hi


@pytest.mark.parametrize("n", [3, 5, 8])
def test_the_paired_interval_covers_the_true_difference_95_percent_of_the_time_at_small_n(n):
    rng = np.random.default_rng(n)
    reps, true = 2000, -1.5
    covered = 0
    for _ in range(reps):
        a = rng.normal(50, 10, n)
        b = a + true + rng.normal(0, 2, n)
        _, _, lo, hi, _ = S.paired_t(a, b)
        covered += lo <= true <= hi
    assert covered / reps >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / reps), covered / reps


def test_paired_t_is_the_paired_t_test():
    rng = np.random.default_rng(3)
    a, b = rng.normal(10, 3, 15), rng.normal(11, 3, 15)
    n, diff, lo, hi, p = S.paired_t(a, b)
    ref = st.ttest_rel(b, a)
    assert n == 15 and diff == pytest.approx(np.mean(b - a)) and p == pytest.approx(ref.pvalue)
    assert S.paired_t([1.0, 2.0, np.nan], [1.5, 2.5, 3.0])[0] == 2, "a pair with a non-finite value is dropped"
    assert S.paired_t([1, 2, 3], [2, 3, 4])[4] == 0.0 and S.paired_t([1, 2, 3], [1, 2, 3])[4] == 1.0
    with pytest.raises(ValueError, match="one value per utterance"):
        S.paired_t([1.0, 2.0], [1.0])


def test_holm_adjusts_step_down_and_keeps_nan_out_of_the_family():
    p = [0.01, 0.04, 0.03, np.nan, 0.005]  # sorted: 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> 0.02, 0.03, 0.06, 0.06
    adj = S.holm(p)
    assert adj[[4, 0, 2, 1]] == pytest.approx([0.02, 0.03, 0.06, 0.06]) and math.isnan(adj[3])
    assert S.holm([0.04, 0.5]) == pytest.approx([0.08, 0.5]) and S.holm([0.6, 0.7, 0.5]) == pytest.approx([1, 1, 1])


def test_below_the_minimum_n_there_is_no_verdict_whatever_the_numbers():
    a = np.arange(S.MIN_N - 1, dtype=float)
    far = S.compare_paired(a, a + 100 + 0.01 * a, names=("LSTM", "Mamba"))  # 100 ms worse on every clip
    assert far.verdict == f"too few clips (n={S.MIN_N - 1})" and far.p < 1e-6
    assert S.compare_paired([np.nan], [1.0]).verdict == "too few clips (n=0)"
    a = np.arange(S.MIN_N, dtype=float)
    assert S.compare_paired(a, a + 100 + 0.01 * a, names=("LSTM", "Mamba")).verdict == "Mamba worse"
    assert S.compare_paired(a, a + 100 + 0.01 * a, "higher", ("LSTM", "Mamba")).verdict == "Mamba better"
    assert S.verdict(20, 1.0, 0.2, "lower", "Mamba") == S.NO_DIFFERENCE


def test_the_paired_test_sees_a_shift_the_separate_intervals_miss():
    g = np.random.default_rng(4)
    difficulty = g.normal(50, 20, 40)  # shared by both systems: a hard sentence is hard for both
    a = difficulty + g.normal(0, 1, 40)
    b = a - 2.0 + g.normal(0, 1, 40)  # b is 2 units better on every utterance
    cmp = S.compare_paired(a, b, better="lower", names=("LSTM", "Mamba"))
    assert cmp.b_lo < cmp.a_hi, "the two separate intervals overlap ..."
    assert cmp.diff_hi < 0 and cmp.diff_lo < -2.0 < cmp.diff_hi and cmp.verdict == "Mamba better"  # ... paired not


# ------------------------------------------------------------------------- the verdict, simulated (issue 23)

REPS = 1000
MC = 3 * math.sqrt(0.05 * 0.95 / REPS)  # three Monte Carlo standard errors of a 5% rate


@pytest.mark.parametrize("dist", ["normal", "lognormal"])
def test_two_systems_from_one_distribution_are_rarely_called_different(dist):
    ns = (2, 3, 5, 8, 20, 50)
    rate = S.simulate(ns, reps=REPS, dist=dist, seed=1)
    assert all(rate[n] == 0 for n in ns if n < S.MIN_N), rate  # "too few clips", never better/worse
    assert all(rate[n] <= 0.05 + MC for n in ns), rate


def test_a_shift_of_0_8_sd_is_found_at_least_80_percent_of_the_time_at_n_20():
    power = S.simulate((20,), reps=REPS, shift_sd=0.8, seed=2)[20]
    assert power >= 0.80, power


def test_the_old_percentile_bootstrap_would_fail_the_same_simulation():
    """Why the rule changed: at n = 3 a percentile bootstrap of the mean difference excludes 0 whenever the three
    differences share a sign (a quarter of the time under the null), so its "verdicts" are mostly false."""
    rng = np.random.default_rng(5)
    d = rng.normal(0, 1, (REPS, 3))  # (reps, n) null differences
    idx = rng.integers(0, 3, (REPS, 400, 3))  # (reps, boots, n)
    boot = np.take_along_axis(d[:, None, :].repeat(400, 1), idx, 2).mean(2)  # (reps, boots)
    lo, hi = np.quantile(boot, [0.025, 0.975], axis=1)
    assert ((lo > 0) | (hi < 0)).mean() > 0.2
    assert S.simulate((3,), reps=200)[3] == 0


def test_paired_table_matches_utterances_by_id_and_adjusts_its_rows():
    g = np.random.default_rng(6)
    ids = [f"u{i}" for i in range(20)]
    base = g.normal(100, 30, 20)
    rows = [{"set": "real", "id": i, "model": "LSTM", "boundary_mae_ms": v, "mcd_db": 5.0 + g.normal(0, 1)}
            for i, v in zip(ids, base)]  # fmt: skip
    rows += [  # Mamba's rows in another order, 10 ms better everywhere, the same MCD on average
        {"set": "real", "id": i, "model": "Mamba", "boundary_mae_ms": v - 10 + g.normal(0, 1), "mcd_db": 5.0 + g.normal(0, 1)}
        for i, v in reversed(list(zip(ids, base)))
    ]
    rows += [{"set": "real", "id": "u0", "model": "recording", "wer_pct": 5.0}]
    table = S.paired_table(pd.DataFrame(rows))
    assert list(table["column"]) == ["boundary_mae_ms", "mcd_db"]
    r = table.iloc[0]
    assert r["n"] == 20 and r["verdict"] == "Mamba better" and r["Mamba - LSTM"] == pytest.approx(-10, abs=1)
    assert r["LSTM_lo"] < r["LSTM"] < r["LSTM_hi"]
    assert (table["p_holm"] >= table["p"]).all() and table["p_holm"].iloc[0] == pytest.approx(2 * r["p"])
