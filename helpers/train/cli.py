"""`python -m helpers.train`: notebook 05's training, from a terminal.

    python -m helpers.train --stage distill                              # stage 1 by the recipe: runs/<mode>/distill
    python -m helpers.train --stage distill --minutes 30 --block cfc     # the budget and the block
    python -m helpers.train --stage finetune                             # stage 2, the Mamba: runs/<mode>/finetune
    python -m helpers.train --stage finetune --student lstm              # its control: runs/<mode>/finetune-lstm
    python -m helpers.train --stage finetune --student cfc --init-adapter results/distill-cfc-cpu/adapter  # finetune-cfc

How the pieces fit, as in notebook 05:

* stage 1 (`distill`) is `helpers.train.recipe.run`: the recipe's design (`recipe.DESIGN`, or `--block cfc`), layer
  matching with a chained second half, the twelve training voices, the text corpus, its steps fitted to `--minutes`
  (default `Settings.stage1_minutes`), the adapter kept by the dev half of the held-out sentences. `--init-adapter`
  continues from a stage-1 adapter (its design read from its JSON). TrainConfig fields given here (`--lr`,
  `--layer-fraction`, ...) replace the recipe's; `--steps` and the eval/checkpoint intervals are the recipe's own.
* stage 2 (`finetune`) is `helpers.train.stage2.finetune`, on the recordings `--dataset` names (Settings.dataset;
  notebook 04's preparation, cache and split), with the fitted voice (`fitted_voice`, shared with notebooks 04-06)
  unless `--voice` names a pack. `--student mamba` (or `cfc`) starts from `--init-adapter`, else from the best
  stage-1 adapter on the dev half (`helpers.train.pick.pick_stage1`, recorded as `init_choice`); `--student lstm`
  is the same-recipe control (Kokoro's own LSTMs). The adapter's JSON records the split's hash and ids.
* the targets (the DTW reference and the teacher durations) are always prepared with the un-operated model, and
  the DurationEncoder's identity is in their cache key (helpers.data.prepare.settings_record).

`--mode`, `--weights`, `--device` and `--dataset` default to the Settings of the environment. A finished or
interrupted stage-2 run in `--out` is continued with `--resume`; `--overwrite` starts over (checkpoints set aside,
never deleted). Stage 1 runs to a time budget in one process; stage 2 uses the Trainer's DistributedDataParallel
under torchrun (rank 0 writes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

from helpers.argtypes import real, type_for
from helpers.outputs import OutputBusy, OutputLock, refuse_existing
from helpers.train import distributed as D
from helpers.train.config import TrainConfig
from helpers.train.runlog import rank_and_world
from helpers.train.stage2 import STUDENTS

RECIPE_FIELDS = ("steps", "log_every", "eval_every", "ckpt_every", "sample_every", "out_dir")  # the recipe's own


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.train", description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["ci", "full"], default=None, help="defaults for CI or full runs (default: from env)")
    p.add_argument("--weights", default=None, help="auto | hub | offline-int8 (default: Settings.weights)")
    p.add_argument("--device", default=None, help="default: Settings.device")
    p.add_argument("--dataset", default=None, help="stage finetune: starter | ljspeech | a folder (default: Settings)")
    p.add_argument("--voice", default="fitted", help="stage finetune: 'fitted' (the fitted voice), a pack name or file")
    p.add_argument("--student", default="mamba", choices=STUDENTS, help="stage finetune: lstm = the control")
    p.add_argument("--block", default="mamba", choices=["mamba", "cfc"], help="stage distill: the recipe's design")
    p.add_argument("--minutes", type=real(0, lo_open=True), default=None,
                   help="stage distill: the time budget (default: Settings.stage1_minutes)")
    p.add_argument("--corpus", default=None, help="stage distill: one sentence per line (default: data/text/sentences.txt)")
    p.add_argument("--init-adapter", default=None, help="start from this adapter (either shipped one, or yours)")
    p.add_argument("--resume", action="store_true", help="stage finetune: continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="start over in an --out that holds a run (set aside)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--out" if f.name == "out_dir" else "--" + f.name.replace("_", "-")
        kind = type(f.default)
        if kind is bool:
            p.add_argument(flag, type=_flag, default=None)
        elif kind in (int, float):
            p.add_argument(flag, type=type_for(f.name, kind), default=None, dest=f.name)  # ranges checked here
        elif f.name == "stage":
            p.add_argument(flag, choices=["distill", "finetune"], default=None, dest=f.name)
        elif f.name == "precision":
            from helpers.train.precision import CHOICES

            p.add_argument(flag, choices=CHOICES, default=None, dest=f.name)
        else:
            p.add_argument(flag, type=kind, default=None, dest=f.name)
    return p


def _flag(text: str) -> bool:
    value = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"must be true or false (1/0, yes/no), got {text!r}")
    return value


def check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start over in a folder that holds a run, unless --resume or --overwrite says what to do."""
    ckpts = out / "checkpoints"
    previous = [out / "adapter.safetensors", out / "adapter.json", out / "results.json", ckpts / "best.pt"]
    if ckpts.is_dir():
        previous += sorted(ckpts.glob("step-*.pt"))
    if not (resume or overwrite):  # --resume with no checkpoint says so (Trainer.resume)
        refuse_existing(
            previous,
            f"a training run in {out}",
            "add --resume to continue it (stage 2), --overwrite to start over (its checkpoints are set aside, not "
            "deleted), or choose another --out",
        )


def main(argv: list[str] | None = None) -> Path:
    from helpers.settings import Settings

    parser = _build_parser()
    args = parser.parse_args(argv)
    S = Settings.from_env(**{k: v for k, v in (("mode", args.mode), ("dataset", args.dataset)) if v})
    if args.weights:
        S.weights = args.weights
    if args.device:
        S.device = args.device
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}
    stage = overrides.pop("stage", "distill")
    out = Path(overrides.pop("out_dir", None) or S.runs_dir / _folder(stage, args.student)).expanduser()
    main_process, world = rank_and_world()[0] == 0, rank_and_world()[1]
    if stage == "distill" and (args.resume or world > 1):
        parser.error("stage 1 runs to a time budget in one process: no --resume, no torchrun (stage 2 has both)")
    if main_process:
        try:  # before anything is loaded
            check_out(out, args.resume, args.overwrite)
            lock = OutputLock(out, "python -m helpers.train").acquire()
        except (FileExistsError, OutputBusy) as e:
            parser.exit(2, f"{parser.prog}: error: {e}\n")
    try:
        if stage == "distill":
            return _stage1(args, S, out, {k: v for k, v in overrides.items() if k not in RECIPE_FIELDS}, argv)
        return _stage2(args, S, out, overrides, main_process)
    finally:
        if main_process:
            lock.release()


def _folder(stage: str, student: str) -> str:
    """The default --out under runs/<mode>/: notebook 05's folders (the CfC student beside them)."""
    return "distill" if stage == "distill" else {"lstm": "finetune-lstm", "cfc": "finetune-cfc"}.get(student, "finetune")


def _stage1(args, S, out: Path, config: dict, argv) -> Path:
    from helpers.train import recipe

    command = "python -m helpers.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    record = recipe.run(out, args.minutes, design=recipe.design_for(args.block), settings=S, init=args.init_adapter,
                        corpus=args.corpus, command=command, **config)  # fmt: skip
    print(json.dumps({"adapter": record["adapter"], "shipped": record["shipped"], "final": record["final"]["overall"]},
                     indent=1))  # fmt: skip
    return Path(record["adapter"])


def _stage2(args, S, out: Path, overrides: dict, main_process: bool) -> Path:
    from helpers.data.recordings import prepare_recordings
    from helpers.kokoro.loading import load_kokoro
    from helpers.train.fit_voice import fitted_voice
    from helpers.train.pick import pick_stage1
    from helpers.train.stage2 import finetune

    S.seed_everything(overrides.get("seed", 0))
    S.device = D.setup(S.device)  # joins the process group under torchrun
    kokoro = load_kokoro(S.weights, device=S.device, verbose=main_process)  # never operated: the targets' model
    if not main_process:
        D.barrier()  # rank 0 prepares the data and fits the voice first; the others then read the caches
    data = prepare_recordings(kokoro, S, progress=main_process, verbose=main_process)
    if args.voice == "fitted":
        pack, voice = fitted_voice(kokoro, data, S, progress=main_process)
    else:
        pack, voice = kokoro.voice(args.voice), args.voice
    init, choice = args.init_adapter, None
    if init is None and args.student != "lstm":
        pick = pick_stage1(kokoro, S, kind=args.student)
        init, choice = pick.adapter, pick.record()
        if main_process:
            print(f"stage 2 starts from {init}: {pick.why}")
    if main_process:
        D.barrier()
    if args.overwrite:  # no record of the start: finetune sets the old checkpoints aside and starts over
        (out / "stage2.json").unlink(missing_ok=True)
    cfg = TrainConfig.for_mode(S.mode, "finetune", **overrides)
    run = finetune(kokoro, data, pack, cfg, args.student, init=init, out=out, voice=voice, progress=main_process,
                   start_choice=choice)  # fmt: skip
    if main_process:
        print(json.dumps({"adapter": str(run.adapter), "kept_step": run.kept_step, **run.kept_scores}, indent=1))
    D.teardown()
    return run.adapter
