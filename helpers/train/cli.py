"""`python -m helpers.train`: the same training as notebook 05, from a terminal; on several GPUs with torchrun.

    python -m helpers.train --stage distill                              # runs/<mode>/distill
    torchrun --nproc_per_node=4 -m helpers.train --stage distill         # 4 GPUs, gradients averaged (DDP)
    torchrun --nproc_per_node=4 -m helpers.train --stage distill --resume

Under torchrun every process loads the model on its own GPU (cuda:LOCAL_RANK), trains on its shard of the
batches, and rank 0 alone prints, writes checkpoints and saves the adapter (helpers.train.distributed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from helpers.argtypes import type_for
from helpers.outputs import OutputBusy, OutputLock, refuse_existing
from helpers.train import distributed as D
from helpers.train.config import TrainConfig
from helpers.train.items import items_for_stage
from helpers.train.runlog import rank_and_world
from helpers.train.trainer import Trainer
from helpers.transplant.peft import trainable_summary
from helpers.transplant.surgery import SurgeryConfig

# --------------------------------------------------------------------------------------------------------
# Command line: the same training outside the notebook
# --------------------------------------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.train", description=__doc__.split("\n")[0])
    p.add_argument(
        "--mode",
        choices=["ci", "full"],
        default=None,
        help="defaults for CI or full runs (default: from env)",
    )
    p.add_argument("--weights", default="auto", help="auto | hub | offline-int8")
    p.add_argument("--voice", default="auto")
    p.add_argument("--device", default=None)
    p.add_argument("--corpus", default="data/text/sentences.txt", help="stage distill: one sentence per line")
    p.add_argument(
        "--data", default="data/librivox", help="stage finetune: dataset folder (notebook 04 prepares it)"
    )
    p.add_argument("--init-adapter", default=None, help="start from this adapter (e.g. stage 1's)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in an --out that holds a run (its checkpoints are set aside, the adapter replaced)",
    )
    p.add_argument("--design", default="layerwise", choices=["layerwise", "single"])
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if flag in ("--out-dir",):
            flag = "--out"
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
    previous = [out / "adapter.safetensors", out / "adapter.json", ckpts / "best.pt"]
    if ckpts.is_dir():
        previous += sorted(ckpts.glob("step-*.pt"))
    if not (resume or overwrite):  # --resume with no checkpoint says so (Trainer.resume)
        refuse_existing(
            previous,
            f"a training run in {out}",
            "add --resume to continue it, --overwrite to start over (its checkpoints are set aside, not "
            "deleted), or choose another --out",
        )


def main(argv: list[str] | None = None) -> Path:
    from helpers.kokoro.loading import load_kokoro
    from helpers.settings import Settings
    from helpers.transplant.adapters import load_adapter
    from helpers.transplant.surgery import replace_duration_encoder

    parser = _build_parser()
    args = parser.parse_args(argv)
    S = Settings.from_env(**({"mode": args.mode} if args.mode else {}))
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    cfg = TrainConfig.for_mode(S.mode, overrides.pop("stage", "distill"), **overrides)
    main_process = rank_and_world()[0] == 0
    cfg.out_dir = str(Path(cfg.out_dir).expanduser())
    if main_process:
        try:  # before anything is loaded
            check_out(Path(cfg.out_dir), args.resume, args.overwrite)
            lock = OutputLock(cfg.out_dir, "python -m helpers.train").acquire()
        except (FileExistsError, OutputBusy) as e:
            parser.exit(2, f"{parser.prog}: error: {e}\n")
    S.seed_everything(cfg.seed)
    device = D.setup(args.device or S.device)  # joins the process group under torchrun
    kokoro = load_kokoro(args.weights, device=device, verbose=main_process)
    report = replace_duration_encoder(kokoro.model, SurgeryConfig(design=args.design))
    if args.init_adapter:
        load_adapter(kokoro.model, args.init_adapter)
    pack = kokoro.voice(args.voice)
    if not main_process:
        D.barrier()  # rank 0 prepares the data and writes its caches first; the others then read them
    train_items, val_items = items_for_stage(kokoro, cfg.stage, S, corpus=args.corpus, data=args.data)
    if main_process:
        D.barrier()
    trainer = Trainer(
        kokoro.model,
        report.removed,
        train_items,
        cfg,
        val_items,
        metadata={"weights": kokoro.source, "voice": args.voice},
    )
    if main_process:
        print(trainable_summary(kokoro.model))
    if args.resume:
        trainer.resume()
    elif args.overwrite:
        trainer.resume(fresh=True)  # the previous checkpoints are set aside, never deleted
    trainer.fit(voice_pack=pack)
    path = trainer.save_adapter()  # rank 0 only
    if main_process:
        last = {k: v for k, v in (trainer.history or [{}])[-1].items() if isinstance(v, float)}
        print(json.dumps({"adapter": str(path), **last}, indent=1))
    D.teardown()
    if main_process:
        lock.release()
    return path


if __name__ == "__main__":
    main()
