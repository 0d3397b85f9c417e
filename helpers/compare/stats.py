"""Honest statistics over utterances: bootstrap confidence intervals for one system, and for the difference
between two systems measured on the same utterances.

The utterance is the unit: every metric of `helpers.compare.metrics` gives one number per utterance, and the
bootstrap resamples utterances with replacement (percentile intervals; no normality assumed). With the few
utterances of the starter data the intervals are wide, and that is the answer to report.

    bootstrap_ci(values, stat=np.mean, n_boot=2000, level=0.95, seed=0) -> (estimate, lo, hi)
    paired_ci(a, b, ...) -> (estimate of stat(b) - stat(a), lo, hi)   utterances resampled together
    compare_paired(a, b, better="lower", names=("A", "B"), ...) -> PairedComparison, with a verdict
    paired_table(df, a="LSTM", b="Mamba") -> one row per (set, metric) of `evaluate`'s per-utterance table

The verdict rule: "no difference" when the paired interval of the difference contains 0. Pairing matters:
two systems read the same sentences, so a hard sentence is hard for both; the difference removes that shared
part, and its interval is narrower than the two systems' own intervals. (The other rule, "the two separate
intervals overlap", ignores the pairing and calls real differences ties, so it is not used.)

Non-finite values (e.g. an F0 RMSE with no frame voiced in both curves) are left out, pairwise for paired
statistics; `n` says how many utterances remained.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from helpers.compare.evaluation import METRICS

Stat = Callable[..., float]


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).ravel()
    return x[np.isfinite(x)]


def _over_rows(stat: Stat, samples: np.ndarray) -> np.ndarray:
    """stat of every row of samples (n_boot, n): vectorised when stat takes axis= (np.mean, np.median...)."""
    try:
        out = np.asarray(stat(samples, axis=1), dtype=np.float64)
        if out.shape == (samples.shape[0],):
            return out
    except TypeError:
        pass
    return np.array([stat(row) for row in samples], dtype=np.float64)


def _check(n_boot: int, level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def _interval(boot: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def bootstrap_ci(
    values, stat: Stat = np.mean, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(estimate, lo, hi): stat of the values (one per utterance) and its percentile bootstrap interval.

    The estimate is stat of the data itself; the interval holds the central `level` share of stat over
    `n_boot` resamples of the utterances (with replacement, generator seeded by `seed`). NaN x 3 when no
    finite value is left.
    """
    _check(n_boot, level)
    x = _finite(values)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, x.size, (n_boot, x.size))
    return (float(stat(x)), *_interval(_over_rows(stat, x[idx]), level))


def _pairs(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need one value per utterance for both: {a.size} vs {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    return a[ok], b[ok]


def paired_ci(
    a, b, stat: Stat = np.mean, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(estimate, lo, hi) of stat(b) - stat(a), a[i] and b[i] measured on the same utterance i.

    Utterances are resampled together (the same indices for both systems), which keeps what the two share.
    """
    _check(n_boot, level)
    a, b = _pairs(a, b)
    if a.size == 0:
        return float("nan"), float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, a.size, (n_boot, a.size))
    boot = _over_rows(stat, b[idx]) - _over_rows(stat, a[idx])
    return (float(stat(b) - stat(a)), *_interval(boot, level))


@dataclass
class PairedComparison:
    """Two systems on the same n utterances: each one's interval, the difference's, and the verdict."""

    n: int
    a: float
    a_lo: float
    a_hi: float
    b: float
    b_lo: float
    b_hi: float
    diff: float  # stat(b) - stat(a)
    diff_lo: float
    diff_hi: float
    verdict: str  # "no difference", "<B> better" or "<B> worse" (or "no data")

    def to_dict(self) -> dict:
        return asdict(self)


def compare_paired(
    a,
    b,
    better: str = "lower",
    names: tuple[str, str] = ("A", "B"),
    stat: Stat = np.mean,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedComparison:
    """System b against system a on the same utterances, with the module's rule: "no difference" when the
    paired interval of stat(b) - stat(a) contains 0, else "<b> better" or "<b> worse" (`better`: "lower" for
    errors, "higher" for scores)."""
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    a, b = _pairs(a, b)
    kw = dict(stat=stat, n_boot=n_boot, level=level, seed=seed)
    ci_a, ci_b, d = bootstrap_ci(a, **kw), bootstrap_ci(b, **kw), paired_ci(a, b, **kw)
    if a.size == 0:
        verdict = "no data"
    elif d[1] <= 0 <= d[2]:
        verdict = "no difference"
    else:
        verdict = f"{names[1]} {'better' if (d[0] < 0) == (better == 'lower') else 'worse'}"
    return PairedComparison(int(a.size), *ci_a, *ci_b, *d, verdict)


def paired_table(
    df: pd.DataFrame,
    a: str = "LSTM",
    b: str = "Mamba",
    columns: list[str] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """`evaluate`'s per-utterance table -> one row per (set, metric) with both models' means, their
    intervals, the paired difference b - a with its interval, and the verdict (`compare_paired`).

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
            cmp = compare_paired(wide[a], wide[b], better, (a, b), n_boot=n_boot, level=level, seed=seed)
            rows.append({"set": set_name, "metric": label, "column": col, "units": units, "better": better,
                         **cmp.to_dict()})  # fmt: skip
    out = pd.DataFrame(rows)
    if not out.empty:
        out = out.rename(columns={"a": a, "a_lo": f"{a}_lo", "a_hi": f"{a}_hi", "b": b, "b_lo": f"{b}_lo",
                                  "b_hi": f"{b}_hi", "diff": f"{b} - {a}"})  # fmt: skip
    return out
