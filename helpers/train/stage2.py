"""Stage 2 in one call, for the Mamba student and for the same-recipe LSTM control.

    data = prepare_recordings(kokoro, S)                 # helpers.data.recordings: notebook 04's train/dev/test
    pack, voice_path = fitted_voice(kokoro, data, S)     # helpers.train.fit_voice: notebook 04's fitted voice
    cfg = TrainConfig.for_mode(S.mode, "finetune")
    pick = pick_stage1(kokoro, S)                        # helpers.train.pick: the best stage-1 adapter on the dev half
    mamba = finetune(kokoro, data, pack, cfg, "mamba", init=pick.adapter, out=S.runs_dir / "finetune",
                     start_choice=pick.record())
    lstm = finetune(kokoro, data, pack, cfg, "lstm", out=S.runs_dir / "finetune-lstm")
    mamba_twin(kokoro, lstm.adapter)                     # notebook 06: a twin with the fine-tuned LSTMs

Why a control: stage 2 gives the Mamba more training on real recordings. If the fine-tuned Mamba beats the
LSTM as shipped, is it the architecture or the extra training? The control answers it: Kokoro's own
DurationEncoder, its three BiLSTMs trainable, trained by the same code path (`Trainer`, compute_loss, train_step)
with the same TrainConfig (steps, schedule, seed), data and data order, fitted voice, and the same dropout: none
(`STAGE2_DROPOUT`; Kokoro's DurationEncoder calls its dropout with training=False, so the LSTMs never had any, and
the Mamba's or CfC's dropout modules are set to the same 0). What still differs, and is recorded in each adapter's
JSON: the architecture and its trainable parameter count (`trainable_params`), and the start (`init_adapter`).

How the pieces fit, per call:

  (a) the student model: a fresh Kokoro (`fresh()`, by default the weights of `kokoro` loaded again) so the
      loaded `kokoro` is never trained. "mamba" (or "cfc"): the stage-1 adapter `init` re-applies its surgery
      onto it. "lstm": the model as shipped (or `init`, an LSTM adapter); the Trainer trains the LSTMs the blocks
      replace, the AdaLayerNorms frozen as the Mamba's reused ones are (helpers.transplant.peft).
  (b) the items: `data`'s train and dev recordings (never its test split: notebook 06's verdict), each item's style
      the fitted pack's row for its phoneme count (`style_for`, the row synthesis with that voice reads).
  (c) the training: `Trainer(model, None, train, cfg, dev)` (the Trainer's held-out items are the dev clips: they
      choose the step kept, nothing else); only `out_dir` differs between students, and torch's
      global RNG (decoder crops and noise) is seeded with `cfg.seed` for both. A finished or interrupted run in
      `out` with the same voice and start is resumed; otherwise its checkpoints are set aside (never deleted).
  (d) the adapter: `out/adapter`, the dev-best weights by the tempo-normalised token-boundary error (notebook 06's
      primary metric; helpers.train.selection), the start itself (step 0) included when no step beats it; its
      metadata naming the student, start (`init_adapter`, and `init_choice`: how it was picked), voice,
      `trainable_params`, `dropout`, what it saw (`split_hash`, `train_ids`, `selection_ids` = the dev ids), the step
      kept and its dev scores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from helpers.kokoro.forward import style_for
from helpers.train.config import TrainConfig
from helpers.train.items import TrainItem, as_train_items
from helpers.train.resumable import ResumeRefused
from helpers.train.trainer import Trainer
from helpers.transplant.adapters import load_adapter
from helpers.transplant.peft import student_kind

STUDENTS = ("mamba", "cfc", "lstm")
STAGE2_DROPOUT = 0.0  # every student, so the control is matched (module docstring)


@dataclasses.dataclass
class Stage2Run:
    """One student's stage 2: its trainer (model, history), the adapter written, and held-out scores."""

    student: str
    trainer: Trainer
    adapter: Path
    start_scores: dict[str, float]  # dev scores before any stage-2 step: the LSTM as shipped / the stage-1 Mamba
    kept_step: int
    kept_scores: dict[str, float]  # dev scores of the step the adapter holds (chosen on them: optimistic)


def stage2_table(mamba: Stage2Run, lstm: Stage2Run) -> pd.DataFrame:
    """The four systems' dev scores (the same clips, the same fitted voice), one row each. The stage-2 rows are the
    steps chosen on these very clips, so they flatter stage 2 (winner's curse): a progress check, not a verdict
    (notebook 06 gives that on the test split)."""
    rows = {
        "LSTM as shipped": (lstm.start_scores, 0),
        "LSTM + stage 2 (control)": (lstm.kept_scores, lstm.kept_step),
        "Mamba after stage 1": (mamba.start_scores, 0),
        "Mamba after stage 2": (mamba.kept_scores, mamba.kept_step),
    }
    table = {name: {"stage-2 step": step, **{k.removeprefix("val_"): v for k, v in sc.items()}} for name, (sc, step) in rows.items()}
    return pd.DataFrame.from_dict(table, orient="index")


def styled_items(objs, pack: torch.Tensor) -> list[TrainItem]:
    """TrainItems of `objs` (prepared items or TrainItems), each styled with the pack's row for its phoneme count."""
    pack = pack.detach().float().cpu()
    return [dataclasses.replace(it, style=style_for(pack, it.style_row).reshape(-1).numpy().astype(np.float32))
            for it in as_train_items(objs)]  # fmt: skip


def student_model(kokoro, student: str, init: str | Path | None, fresh: Callable[[], nn.Module] | None = None):
    """A fresh model whose DurationEncoder is the student: `init` loaded (an adapter), else Kokoro's own."""
    if student not in STUDENTS:
        raise ValueError(f"unknown student {student!r}; choose one of {STUDENTS}")
    if fresh is None:
        if kokoro.source == "random":
            raise ValueError("random weights cannot be loaded again: pass fresh= (a factory of identical models)")
        from helpers.kokoro.loading import load_kokoro

        device = next(kokoro.model.parameters()).device
        fresh = lambda: load_kokoro(kokoro.source, device=device, verbose=False).model  # noqa: E731
    model = fresh()
    if init is not None:
        load_adapter(model, init)
    if student_kind(model) != student:
        need = "an LSTM adapter or None" if student == "lstm" else f"a stage-1 {student} adapter"
        raise ValueError(f"student {student!r} needs init= {need}; got {init!r} ({student_kind(model)})")
    return model


def set_dropout(model: nn.Module, p: float = STAGE2_DROPOUT) -> float:
    """Set every dropout of the student DurationEncoder to `p`; returns the dropout it now trains with. Kokoro's own
    DurationEncoder (the control) calls F.dropout with training=False: it has none to set, and trains with 0."""
    enc = model.predictor.text_encoder
    if student_kind(model) == "lstm":
        return 0.0
    for m in enc.modules():
        if isinstance(m, nn.Dropout):
            m.p = p
    enc.cfg = dataclasses.replace(enc.cfg, dropout=p)  # the design the adapter records says so too
    return max((m.p for m in enc.modules() if isinstance(m, nn.Dropout)), default=0.0)


def _split_record(data, train: list[TrainItem], dev: list[TrainItem]) -> dict:
    """What a stage-2 run saw: the split file and its hash, the split names, and the ids."""
    return {"split_file": str(getattr(data, "split_file", "") or ""), "split_hash": getattr(data, "split_hash", ""),
            "train_split": "train", "selection_split": "dev", "train_ids": [it.id for it in train],
            "selection_ids": [it.id for it in dev]}  # fmt: skip


def _same_start(out: Path, pack: torch.Tensor, init, student: str, split: str = "", dropout: float = 0.0) -> bool:
    """Record what this run starts from in out/stage2.json; False when the run there started otherwise, or
    when there is no record (checkpoints in `out` from an older notebook then belong to another run)."""
    digest = hashlib.sha256(pack.detach().float().cpu().numpy().tobytes()).hexdigest()[:16]
    start = {"student": student, "init": str(init) if init is not None else None, "voice_sha256": digest,
             "split_hash": split, "dropout": dropout}  # fmt: skip
    path = out / "stage2.json"
    same = path.exists() and json.loads(path.read_text()) == start
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(start, indent=2))
    return same


def finetune(
    kokoro,
    data,
    pack: torch.Tensor,
    cfg: TrainConfig,
    student: str = "mamba",
    init: str | Path | None = None,
    out: str | Path | None = None,
    fresh: Callable[[], nn.Module] | None = None,
    voice: str | Path | None = None,
    progress: bool = True,
    callbacks: list | None = None,
    samples: bool = True,
    start_choice: dict | None = None,
) -> Stage2Run:
    """Stage 2 of one student (module docstring): train, keep the dev-best step, save it to `out/adapter`.

    `data`: prepare_recordings' result (trained on its train split, the step chosen on its dev split; its test
    split is never read) or a (train, dev) pair of items with targets; `pack` [510, 1, 256]: the
    fitted voice (`voice`, its name or path, goes into the metadata); `cfg`: a 'finetune' TrainConfig, its
    out_dir replaced by `out` (default: cfg.out_dir). `samples`: listening samples with the pack in out/samples
    (every cfg.sample_every steps and at the end). `start_choice`: how `init` was chosen
    (`helpers.train.pick.Stage1Pick.record()`), kept in the adapter's JSON as ``init_choice``.
    """
    if cfg.stage != "finetune":
        raise ValueError(f"stage 2 needs a 'finetune' TrainConfig, got stage {cfg.stage!r}")
    out = Path(out if out is not None else cfg.out_dir)
    train_objs, dev_objs = (data.train, data.dev) if hasattr(data, "train") else data
    train, dev = styled_items(train_objs, pack), styled_items(dev_objs, pack)
    model = student_model(kokoro, student, init, fresh)
    dropout = set_dropout(model)
    seen = _split_record(data, train, dev)
    same = _same_start(out, pack, init, student, seen["split_hash"], dropout)
    meta = {"weights": kokoro.source, "student": student, "init": str(init),
            "init_adapter": str(init) if init is not None else None, "voice": str(voice or "given pack"),
            "init_choice": start_choice, "dropout": dropout, **seen}  # fmt: skip
    trainer = Trainer(model, None, train, dataclasses.replace(cfg, out_dir=str(out)), dev, callbacks, meta)
    trainer.metadata["trainable_params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    start = trainer.evaluate()
    trainer.metadata["start_scores"] = start
    trainer.kept.offer(0, start, model.predictor.text_encoder)  # the start is a candidate: no step may be better
    try:
        resumed = trainer.resume(fresh=not same)
    except ResumeRefused as exc:  # checkpoints of another run (another design, data, schedule): set aside
        print(f"{exc}\nStarting a new stage-2 run instead.")
        resumed = trainer.resume(fresh=True)
    if not resumed:  # a new run: both students draw the same crops and noise
        torch.manual_seed(cfg.seed)
    trainer.fit(voice_pack=pack if samples else None, progress=progress)
    adapter = trainer.save_adapter()
    kept = trainer.kept
    step = kept.step if kept.weights is not None else trainer.step
    scores = kept.scores if kept.weights is not None else trainer.evaluate()
    return Stage2Run(student, trainer, adapter.with_suffix(""), start, step, scores)
