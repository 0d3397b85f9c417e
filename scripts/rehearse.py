"""Full mode, rehearsed end to end offline: a speaker with known timing, from preparation to the verdict.

The route a user takes in notebooks 04-06, run by the workbook's own functions in full mode on any device
(here: the project's 2-core CPU), with every budget an argument:

    prep        prepare_recordings (validation, reference voice by F0, DTW, pYIN, word check) and the split
    alignment   the prepared durations against the speaker's true word boundaries (helpers.data.truth)
    voice       fitted_voice on train (early stop on dev), then it and the nearest stock pack on test: MCD, F0 RMSE
    lr_pilot    stage 2's learning rate: a few steps per candidate and student, chosen on the dev clips
    stage2      finetune for the Mamba (from the shipped stage-1 adapter) and the same-recipe LSTM control
    systems     notebook 06's four systems on the test split: plan.json first, then table, paired verdicts
    anatomy     what the boundary errors are made of (the final phone's run-on against the rest), per system

    python scripts/make_rehearsal_speaker.py               # the speaker (Festival, ~30 s)
    python scripts/rehearse.py --steps 300                 # everything (resumes: each phase caches its work)
    python scripts/rehearse.py --until prep                # up to a phase
    python scripts/rehearse.py --only anatomy              # one phase (what it needs comes from the caches)

Everything goes to --out (default runs/rehearsal-slt/results; the shipped copy is results/rehearsal-slt, written
only with --overwrite) and --runs (the run folder: checkpoints, fitted voice, adapters). `timings.json` holds each
phase's wall-clock time from the run that computed it (a phase re-run from its cache keeps its first time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers.argtypes import real, whole  # noqa: E402
from helpers.settings import REPO_ROOT, Settings, runs_root  # noqa: E402

PHASES = ("prep", "alignment", "voice", "lr_pilot", "stage2", "systems", "anatomy")


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain", "helpers", "scripts"], cwd=REPO_ROOT,
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        return out.stdout.strip() + ("+uncommitted" if dirty else "")
    except OSError:
        return "unknown"


class Timings:
    """timings.json: {phase: {seconds, computed, commit, finished}}; a cached re-run keeps the computing run's time."""

    def __init__(self, path: Path):
        self.path, self.commit = path, commit()  # the code this process loaded, not HEAD when a phase ends
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def record(self, phase: str, seconds: float, computed: bool, **extra) -> None:
        old = self.data.get(phase)
        if computed or old is None:
            self.data[phase] = {"seconds": round(seconds, 1), "computed": computed, "commit": self.commit,
                                "load_average_1min": round(os.getloadavg()[0], 2),
                                "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **extra}  # fmt: skip
        self.path.write_text(json.dumps(self.data, indent=1))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=None, help="dataset folder (default <cache>/rehearsal-slt)")
    p.add_argument("--out", type=Path, default=runs_root() / "rehearsal-slt" / "results")
    p.add_argument(
        "--runs", type=Path, default=runs_root() / "rehearsal-slt", help="run folder (adapters, voice)"
    )
    p.add_argument("--until", choices=PHASES, default=PHASES[-1], help="stop after this phase")
    p.add_argument(
        "--only",
        type=lambda t: t.split(","),
        default=None,
        help="run only these phases (comma-separated); what they need is read from the earlier ones' caches",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=whole(1), default=300, help="stage-2 steps, each student")
    p.add_argument("--batch-size", type=whole(1), default=4, help="stage-2 batch")
    p.add_argument(
        "--lr", type=real(0, lo_open=True), default=None, help="stage-2 lr (default: the pilot's choice)"
    )
    p.add_argument(
        "--pilot-lrs",
        type=lambda t: [real(0, lo_open=True)(x) for x in t.split(",")],
        default=[1e-4, 3e-4, 1e-3],
        help="stage-2 learning rates the pilot tries (comma-separated)",
    )
    p.add_argument("--pilot-steps", type=whole(1), default=40, help="steps of each pilot run")
    p.add_argument("--eval-every", type=whole(1), default=50, help="stage-2 dev evaluation (and step choice)")
    p.add_argument("--voice-epochs", type=whole(1), default=4, help="fitted voice: at most this many epochs")
    p.add_argument(
        "--voice-clips", type=whole(1), default=200, help="fitted voice: at most this many train clips"
    )
    p.add_argument("--overwrite", action="store_true", help="allow --out inside the shipped results/")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from helpers import rehearsal as phases  # the phases, one function each
    from helpers.outputs import shipped_results

    if shipped_results(args.out) and not args.overwrite:
        print(
            f"error: --out {args.out} is inside the shipped results/: pass --overwrite to write there on purpose",
            file=sys.stderr,
        )
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    S = Settings.from_env(mode="full", device=args.device, runs_dir=args.runs)
    if args.data is not None:
        S.dataset = str(args.data)
    elif S.dataset == "auto" and not os.environ.get("KOKORO_MAMBA_DATASET"):
        S.dataset = str(Path(S.cache_dir) / "rehearsal-slt")
    S.seed_everything()
    timings = Timings(args.out / "timings.json")
    print(
        f"rehearsal: mode {S.mode}, device {S.device}, dataset {S.dataset_dir()}, runs {S.runs_dir}, out {args.out}"
    )
    from helpers.kokoro.loading import load_kokoro

    kokoro = load_kokoro(S.weights, device=S.device)
    state: dict = {}
    unknown = set(args.only or []) - set(PHASES)
    if unknown:
        print(f"error: --only names unknown phases {sorted(unknown)}; choose from {PHASES}", file=sys.stderr)
        return 2
    for name in PHASES:
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        computed, extra = getattr(phases, name)(kokoro, S, args, state)
        timings.record(name, time.perf_counter() - t0, computed, **extra)
        print(f"== {name}: {time.perf_counter() - t0:.1f} s ({'computed' if computed else 'from cache'})")
        if name == args.until:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
