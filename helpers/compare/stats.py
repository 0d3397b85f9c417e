"""Statistics that hold at small n: t-intervals over utterances, the paired t-test, Holm's correction, and a
verdict that refuses to speak below a minimum number of clips.

The utterance (a test clip) is the unit: every metric of `helpers.compare.metrics` gives one number per clip.

    t_interval(values, level=0.95) -> (mean, lo, hi)          one system: mean and its Student-t interval
    paired_t(a, b, level=0.95) -> (n, diff, lo, hi, p)         b - a on the same clips: interval and two-sided p
    holm(p) -> Holm-adjusted p-values (one family: one table's verdicts)
    verdict(n, diff, p, better, name) -> "too few clips (n=3)" | "no difference shown" | "<name> better|worse"
    compare_paired(a, b, better="lower", names=("A", "B")) -> PairedComparison (unadjusted verdict)
    paired_table(df, a="LSTM", b="Mamba") -> one row per (set, metric) of `evaluate`'s per-utterance table

Why these and not a bootstrap. A percentile bootstrap of the mean difference over n clips whose differences share
a sign always excludes 0, so at n = 2 it calls "better/worse" in half of the cases where the two systems are the
same (measured below: n = 3 27%, n = 5 16%, n = 8 11%, n = 20 7.6%). The paired t-interval widens with n through Student's t quantile and is
exact for normal differences; under the null hypothesis "the two systems are the same" the per-clip differences
are symmetric about 0 (swap the two systems' outputs on a clip and nothing changes), which is the case where the
t-test keeps its level even for skewed metrics. Below `MIN_N` clips no verdict is given at all.

The rule: "<b> better/worse" when the (Holm-adjusted, where a table is tested) two-sided p-value of the paired
t-test is below `ALPHA`, the direction from the sign of the mean difference and which way the metric is better;
"no difference shown" otherwise (not proof of equality: read the interval); "too few clips (n=k)" when fewer than
`MIN_N` clips have a finite value in both systems, whatever the numbers say.

Checked by simulation (`simulate`; tests/compare/test_stats.py runs it in CI with 1,000 repetitions per n;
the table below is benchmarks/bench_verdicts.py, seed 0, 10,000 repetitions per n): two systems on n clips, each
clip's difficulty shared by both plus each system's own noise, the systems drawn from one distribution (false
"better/worse" verdicts), then with a true shift of 0.8 standard deviations of the per-clip difference (power).
Monte Carlo error of a 5% rate at 10,000 repetitions: +-0.4 points (two standard errors).

    n                          2     3     5     8     10    12    15    20    30    50
    false, normal noise        0     0     0     4.8%  4.7%  4.8%  5.1%  5.2%  5.0%  5.3%
    false, log-normal noise    0     0     0     2.9%  3.2%  3.3%  3.4%  4.0%  4.0%  4.3%
    power, shift 0.8 SD        0     0     0     50%   61%   72%   83%   92%   98.8% 100%

The power is one verdict's at ALPHA (a table's primary question); a Holm-adjusted verdict needs a larger effect or
more clips. Below n = 8 the rule says "too few clips", so it can neither err nor detect. The percentile bootstrap it replaced
called identical systems different 50% of the time at n = 2, 27% at n = 3, 16% at n = 5, 11% at n = 8 and 7.6% at
n = 20 (same normal null, 2,000 repetitions, 1,000 resamples each).

Non-finite values (e.g. an F0 RMSE with no frame voiced in both curves) are left out, pairwise for paired
statistics; `n` says how many utterances remained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from helpers.compare.evaluation import METRICS

MIN_N = 8  # fewer paired clips than this: "too few clips" for every metric, whatever the numbers
ALPHA = 0.05  # family-wise error rate of one table's verdicts (Holm), and the level of a single verdict
LEVEL = 0.95  # the intervals shown
NO_DIFFERENCE = "no difference shown"
TOO_FEW = "too few clips"


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (e.g. 0.95), got {level}")


def _t_half_width(sd: float, n: int, level: float) -> float:
    return float(st.t.ppf((1 + level) / 2, n - 1) * sd / np.sqrt(n))


def t_interval(values, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean of the finite values and its Student-t interval (level, two-sided).

    One value: (that value, NaN, NaN), no interval; none: NaN x 3. A constant sample gives a point interval.
    """
    _check_level(level)
    x = _finite(values)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if x.size < 2:
        return m, float("nan"), float("nan")
    h = _t_half_width(float(x.std(ddof=1)), x.size, level)
    return m, m - h, m + h


def _pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need one value per utterance for both: {a.size} vs {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    return a[ok], b[ok]


def paired_t(a, b, level: float = LEVEL) -> tuple[int, float, float, float, float]:
    """(n, diff, lo, hi, p) for b - a, a[i] and b[i] measured on the same utterance i (non-finite pairs dropped).

    diff: mean of the per-clip differences; [lo, hi]: its Student-t interval; p: the two-sided p-value of the
    paired t-test of "mean difference 0". Identical differences: p = 1 when all are 0, else 0 (no noise at all).
    n < 2: NaN interval and p.
    """
    _check_level(level)
    a, b = _pairs(a, b)
    d = b - a  # (n,)
    n = int(d.size)
    if n == 0:
        return 0, float("nan"), float("nan"), float("nan"), float("nan")
    m = float(d.mean())
    if n < 2:
        return n, m, float("nan"), float("nan"), float("nan")
    sd = float(d.std(ddof=1))
    if sd == 0.0 or sd <= 1e-12 * max(1.0, abs(m)):
        return n, m, m, m, 1.0 if m == 0 else 0.0
    h = _t_half_width(sd, n, level)
    p = float(2 * st.t.sf(abs(m) / (sd / np.sqrt(n)), n - 1))
    return n, m, m - h, m + h, p


def holm(p) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (NaN entries are left out of the family and stay NaN).

    Reject the i-th smallest of m p-values while p_(i) * (m - i + 1) < alpha: the adjusted value is the running
    maximum of those products, capped at 1. Controls the chance of any false verdict in the family at alpha.
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    m = ok.size
    adj = np.maximum.accumulate(np.minimum(1.0, p[order] * (m - np.arange(m))))
    out[order] = adj
    return out


def verdict(n: int, diff: float, p: float, better: str, name: str, alpha: float = ALPHA, min_n: int = MIN_N) -> str:
    """The module's rule for one (adjusted) p-value: "too few clips (n=k)" below `min_n`, else "<name> better" or
    "<name> worse" when p < alpha (`better`: "lower" for errors, "higher" for scores), else "no difference shown"."""
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    if n < min_n:
        return f"{TOO_FEW} (n={n})"
    if not p < alpha:
        return NO_DIFFERENCE
    return f"{name} {'better' if (diff < 0) == (better == 'lower') else 'worse'}"


@dataclass
class PairedComparison:
    """Two systems on the same n utterances: each one's mean and t-interval, the paired difference's, the paired
    t-test's p-value and the (unadjusted) verdict."""

    n: int
    a: float
    a_lo: float
    a_hi: float
    b: float
    b_lo: float
    b_hi: float
    diff: float  # mean(b - a)
    diff_lo: float
    diff_hi: float
    p: float
    verdict: str  # "too few clips (n=k)" (n = 0 included), "no difference shown", "<B> better" or "<B> worse"

    def to_dict(self) -> dict:
        return asdict(self)


def compare_paired(
    a, b, better: str = "lower", names: tuple[str, str] = ("A", "B"), level: float = LEVEL, alpha: float = ALPHA,
    min_n: int = MIN_N,
) -> PairedComparison:  # fmt: skip
    """System b against system a on the same utterances (pairs with a non-finite value dropped), with the module's
    rule applied to this one comparison alone. A table of several comparisons adjusts the p-values first (`holm`)."""
    a, b = _pairs(a, b)
    n, diff, lo, hi, p = paired_t(a, b, level)
    return PairedComparison(n, *t_interval(a, level), *t_interval(b, level), diff, lo, hi, p,
                            verdict(n, diff, p, better, names[1], alpha, min_n))  # fmt: skip


def paired_table(
    df: pd.DataFrame, a: str = "LSTM", b: str = "Mamba", columns: list[str] | None = None, level: float = LEVEL,
    alpha: float = ALPHA, min_n: int = MIN_N,
) -> pd.DataFrame:  # fmt: skip
    """`evaluate`'s per-utterance table -> one row per (set, metric) with both models' means, their t-intervals,
    the paired difference b - a with its interval, p (raw), p_holm (Holm across this table's rows with at least
    `min_n` clips) and the verdict on p_holm (`verdict`).

    Utterances are matched by ``id`` within a set; a metric only one model has (e.g. agreement with the
    teacher, who is model a on the text set) is skipped.
    """
    rows = []
    for set_name, g in df.groupby("set", sort=False):
        for col in columns or [c for c in METRICS if c in df.columns]:
            label, units, better = METRICS.get(col, (col, "", "lower"))
            wide = g[g["model"].isin((a, b))].pivot_table(index="id", columns="model", values=col, aggfunc="first")
            if a not in wide or b not in wide or not wide[[a, b]].notna().all(axis=1).any():
                continue
            cmp = compare_paired(wide[a], wide[b], better, (a, b), level, alpha, min_n)
            rows.append({"set": set_name, "metric": label, "column": col, "units": units, "better": better,
                         **cmp.to_dict()})  # fmt: skip
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_holm"] = holm(np.where(out["n"] >= min_n, out["p"], np.nan))  # the family: the verdicts it can give
    out["verdict"] = [verdict(r.n, r.diff, r.p_holm, r.better, b, alpha, min_n) for r in out.itertuples()]
    return out.rename(columns={"a": a, "a_lo": f"{a}_lo", "a_hi": f"{a}_hi", "b": b, "b_lo": f"{b}_lo",
                               "b_hi": f"{b}_hi", "diff": f"{b} - {a}"})  # fmt: skip


# ------------------------------------------------------------------------------------------- simulation


def simulate(
    ns=(2, 3, 5, 8, 20, 50), reps: int = 1000, shift_sd: float = 0.0, dist: str = "normal", seed: int = 0,
    **rule,
) -> dict[int, float]:  # fmt: skip
    """n -> share of `reps` simulated tables of two systems on n clips where `compare_paired` says better or worse.

    Each clip has a difficulty shared by both systems plus each system's own noise ("normal", or "lognormal":
    skewed, like an error in ms); system b is shifted by `shift_sd` standard deviations of the per-clip
    difference (0: the null, the share is the false-verdict rate; 0.8: the power at that effect)."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in ns:
        hits = 0
        for _ in range(reps):
            base = rng.normal(100.0, 20.0, n)  # (n,) the clips' shared difficulty
            noise = rng.normal(0.0, 1.0, (2, n)) if dist == "normal" else rng.lognormal(0.0, 1.0, (2, n))
            sd_diff = np.sqrt(2.0) * (1.0 if dist == "normal" else float(np.sqrt((np.e - 1) * np.e)))
            a, b = base + noise[0], base + noise[1] + shift_sd * sd_diff
            v = compare_paired(a, b, **rule).verdict
            hits += v.endswith((" better", " worse"))
        out[n] = hits / reps
    return out

