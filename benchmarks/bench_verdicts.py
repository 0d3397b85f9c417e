"""How often does notebook 06's verdict call two systems different: false alarms under the null, power at 0.8 SD.

Runs `helpers.compare.stats.simulate` (the same function tests/compare/test_stats.py runs with fewer repetitions):
two systems on n clips, each clip's difficulty shared by both plus each system's own noise (normal, or log-normal:
skewed like an error in ms), then system b shifted by 0.8 standard deviations of the per-clip difference. Prints the
share of "better/worse" verdicts per n, and, for contrast, the percentile bootstrap rule it replaced (the interval
of the mean difference excluding 0) under the same normal null. The figures are quoted in the docstring of
helpers/compare/stats.py.

    python benchmarks/bench_verdicts.py                 # 10,000 repetitions per n (a few minutes on a CPU)
    python benchmarks/bench_verdicts.py --reps 1000
"""

from __future__ import annotations

import argparse

import numpy as np

from helpers.compare.stats import simulate

NS = (2, 3, 5, 8, 10, 12, 15, 20, 30, 50)


def bootstrap_false_rate(n: int, reps: int, boots: int = 1000, seed: int = 0) -> float:
    """Share of null tables where the 95% percentile bootstrap interval of the mean difference excludes 0."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        d = rng.normal(0.0, 1.0, n)  # (n,) per-clip differences, null
        means = d[rng.integers(0, n, (boots, n))].mean(1)  # (boots,)
        lo, hi = np.quantile(means, [0.025, 0.975])
        hits += lo > 0 or hi < 0
    return hits / reps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=10000)
    a = p.parse_args()
    rows = {
        "false, normal": simulate(NS, a.reps),
        "false, log-normal": simulate(NS, a.reps, dist="lognormal"),
        "power at 0.8 SD": simulate(NS, a.reps, shift_sd=0.8),
        "old bootstrap, false": {n: bootstrap_false_rate(n, min(a.reps, 2000)) for n in NS[:4]},
    }
    print("| n | " + " | ".join(str(n) for n in NS) + " |")
    print("| --- " * (len(NS) + 1) + "|")
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{100 * r[n]:.1f}%" if n in r else "" for n in NS) + " |")


if __name__ == "__main__":
    main()
