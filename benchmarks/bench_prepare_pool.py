"""Preparation at scale: `prepare_dataset` serially vs through the process pool (helpers.data.pool), same clips.

The first N clips of a folder are validated once (real G2P), the reference voice is chosen once (named for both runs,
so neither spends time measuring F0 registers), then the targets are prepared twice into two fresh cache folders:
serially (`PrepareConfig.workers=1`) and with the pool (`--workers`, default the machine's cores; the pool's
minimum clip count is lifted so that a tiny run goes through the pool too). One table: both wall times side by
side, their ratio, the workers' peak memory, the load average; then whether the two caches are bit-identical
(helpers.data.prepared.differences: item files, manifest rows and order, split). Run it on a quiet machine.

    python benchmarks/bench_prepare_pool.py --data data/librivox --limit 4          # does it work (tiny)
    python benchmarks/bench_prepare_pool.py --data <cache>/rehearsal-slt --limit 200   # the measurement
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import helpers.data.pool as POOL  # noqa: E402
from helpers.data.prepare import PrepareConfig, choose_voice, prepare_dataset  # noqa: E402
from helpers.data.prepared import differences  # noqa: E402
from helpers.data.readers import read_dataset  # noqa: E402
from helpers.data.validate import validate_items  # noqa: E402
from helpers.kokoro.g2p import phonemize  # noqa: E402
from helpers.kokoro.loading import load_kokoro  # noqa: E402
from helpers.settings import Settings  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parent.parent / "data" / "librivox")
    ap.add_argument("--limit", type=int, default=4, help="clips to prepare (the first N of the folder)")
    ap.add_argument("--workers", type=int, default=None, help="pool processes (default: the machine's cores)")
    ap.add_argument("--weights", default="offline-int8", choices=("offline-int8", "hub"))
    ap.add_argument("--work", type=Path, default=None, help="where the two caches go (default: a temporary folder)")
    args = ap.parse_args(argv)

    S = Settings.from_env()
    kokoro = load_kokoro(args.weights, verbose=False)
    report = validate_items(read_dataset(args.data)[: args.limit], phonemize, progress=False)
    voice = choose_voice(report.kept).voice
    work = Path(tempfile.mkdtemp(prefix="bench-prepare-pool-", dir=args.work))
    POOL.MIN_POOL_CLIPS = 1  # a tiny run goes through the pool as well: this script compares the two paths
    workers = POOL.machine_cores() if args.workers is None else args.workers
    print(f"{len(report.kept)} clips of {args.data} (voice {voice}), {workers} workers, caches under {work}")

    runs, seconds = {}, {}
    for name, n in (("serial", 1), ("pool", workers)):
        config = PrepareConfig(voice=voice, workers=n)
        t0 = time.perf_counter()
        runs[name] = prepare_dataset(kokoro, args.data, S, config, report=report, cache_dir=work / name,
                                     progress=False, verbose=False)  # fmt: skip
        seconds[name] = time.perf_counter() - t0
    serial, pool = runs["serial"], runs["pool"]
    worker_peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
    load = os.getloadavg()[0]
    print(f"\n{'clips':>5} {'computed':>8} {'failed':>6} {'serial s':>9} {'pool s':>8} {'serial/pool':>11} "
          f"{'workers':>7} {'worker peak MB':>14} {'load 1 min':>10}")  # fmt: skip
    print(f"{len(report.kept):>5} {pool.stats['computed']:>8} {len(pool.failed):>6} {seconds['serial']:>9.1f} "
          f"{seconds['pool']:>8.1f} {seconds['serial'] / seconds['pool']:>11.2f} {pool.stats['workers']:>7} "
          f"{worker_peak_mb:>14.0f} {load:>10.2f}")  # fmt: skip
    if pool.stats["serial_because"]:
        print(f"the pool did not run: {pool.stats['serial_because']}")
    diff = differences(serial, pool)
    print("outputs bit-identical (item files, manifest rows and order, split):", "yes" if not diff else "NO")
    for line in diff[:20]:
        print("  ", line)
    return 0 if not diff and pool.stats["workers"] > 1 else 1


if __name__ == "__main__":
    sys.exit(main())
