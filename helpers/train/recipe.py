"""THE stage-1 recipe: distil a Mamba DurationEncoder from Kokoro's LSTM in a time budget, on any device.

    python -m helpers.train.recipe --weights offline-int8 --device cpu --minutes 60   # what made the shipped adapter
    python -m helpers.train.recipe --block cfc --chain-fraction 0  # the liquid (CfC) contender: runs/distill-cfc-cpu

The shipped adapters were made on one thread of a 2-core CPU with the int8 offline weights in an hour; the recipe
itself runs with the Settings' device, weights and budget (`Settings.stage1_minutes`, CI mode: a few seconds on its
first 64 sentences, `CI_HELDOUT` dev sentences per evaluation). Notebook 05's stage 1 and `python -m helpers.train
--stage distill` are `run(...)`; TrainConfig's defaults are its settings.

The default `--out` is under runs/ (`$KOKORO_MAMBA_RUNS`), never the repository's shipped results/; a folder that
already holds a recipe's adapter or results is refused unless `--overwrite` (writing into results/ needs it too).

What it does, and why (the measurements are in results/distill-cpu/README.md):

* design: `SurgeryConfig(bidirectional="shared", expand=1.5, dropout=0)` - Vim-style blocks with one shared
  in/out projection, 6.3M parameters against the LSTM encoder's 5.9M, a third of the default's 17.2M, so a
  CPU step is several times cheaper; dropout off because the job is to copy a function exactly;
  `--block cfc` trains `CFC_DESIGN` instead, by the same recipe: BiCfC layers of the BiLSTMs' widths
  (helpers.transplant.cfc, 5.9M parameters), written to runs/distill-cfc-cpu unless `--out` says otherwise;
* layer matching for the whole budget (`layer_fraction` 1.0): each block learns its own LSTM layer
  (helpers.train.layerwise) - no backward through the frozen heads, one signal per layer - for the first half on
  the teacher's inputs, for the second half (`chain_fraction` 0.5) on the student's own previous outputs, as at
  inference (run F against the teacher-forced run D: drift 44.7 vs 51.4 ms, F0 7.9 vs 8.6 Hz at 60 minutes).
  The switch step is fixed once the plan is made (`Trainer.plan_chain`; the calibration steps are
  teacher-forced), so re-planning moves the end of training, never the switch back and forth;
  Measured against the alternative (results/distill-cpu/README.md, "Variants"): switching to the end-to-end
  losses (features, durations L1 + BCE + the drift loss on token edges, F0/N on one item per batch) halfway
  made every held-out figure worse within ~15 steps, and so did an end-to-end finish from the trained adapter
  with a fresh AdamW at lr 1e-4 (variant E, benchmarks/bench_e2e_finish.py): the signal, not the optimizer
  state; `--layer-fraction 0.5` etc. still runs that phase;
* every utterance of every batch gets the style row of a voice drawn from `TRAIN_VOICES` (English and
  Japanese packs), so the student learns the style conditioning; am_michael is never trained on and is
  one of the evaluation voices;
* AdamW at `lr` 1e-3 (fresh blocks move ~10x faster per step than at the fine-tuning rate 1e-4), warm-up,
  cosine decay to 0.1 x; the number of steps is planned from the measured speed and re-planned as it changes
  (`Milestones.replan`), so that training fits `minutes` of wall time, and a hard stop enforces it;
* held-out evaluation (helpers.compare.distillation) at the `milestones` (minutes of training time; the
  evaluation itself is not counted), each with an adapter snapshot, on the **dev half** of the held-out
  sentences (`data/text/heldout_dev.txt`): it chooses the milestone shipped, so it never reports a figure; the
  test half (`heldout_test.txt`) is for the figures reported afterwards (results/*/README.md).

It writes `<out>/adapter.safetensors` (fp16) + `adapter.json`: the milestone snapshot with the smallest held-out
token-boundary drift (all snapshots stay in `<out>/milestones/`), `<out>/results.json` (the exact command, code
commit, steps, wall time, data, voices, the held-out metrics at every milestone, which one was shipped and why)
and the training log (`<out>/run/metrics.csv`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from helpers.argtypes import minutes_list, real, whole
from helpers.compare.distillation import evaluate_distillation
from helpers.outputs import OutputLock, refuse_existing, shipped_results
from helpers.settings import REPO_ROOT, Settings, runs_root
from helpers.train.config import TrainConfig
from helpers.train.items import as_train_items
from helpers.train.trainer import Trainer
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

TRAIN_VOICES = (
    "af_heart", "af_bella", "af_nicole", "am_fenrir", "am_puck", "bf_emma", "bm_george",
    "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo",
)  # fmt: skip
EVAL_VOICES = ("af_heart", "am_michael", "jf_alpha")  # seen English, UNSEEN English, seen Japanese (offline)
DESIGN = SurgeryConfig(bidirectional="shared", expand=1.5, dropout=0.0)
CFC_DESIGN = SurgeryConfig(block="cfc", dropout=0.0)
OUT = {"mamba": "distill-cpu", "cfc": "distill-cfc-cpu"}  # default --out per block, under runs_root()
CI_HELDOUT = 4  # CI mode: dev sentences per evaluation (full mode: all 24)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
        return out.stdout.strip() or None
    except OSError:
        return None


def save_half(trainer: Trainer, path: Path, metadata: dict) -> Path:
    """The student as an fp16 adapter at `path` (half the bytes; the blocks compute in fp32 after loading)."""
    from safetensors.torch import save_file

    from helpers.transplant.adapters import save_adapter

    meta = {"stage": "distill", "steps": trainer.step, **trainer.metadata, **metadata}
    st, _ = save_adapter(trainer.model, path, meta, overwrite=True)
    tensors = {k: v.half().contiguous() for k, v in trainer.model.predictor.text_encoder.state_dict().items()}
    save_file(tensors, str(st))
    return st


class Milestones:
    """Trainer callback: evaluate on the held-out sentences at given minutes of *training* time, and keep the
    planned number of steps fitted to the budget (`replan`)."""

    def __init__(self, kokoro, sentences, voices, minutes, out: Path, budget_s: float, layer_fraction: float = 0.0):
        self.kokoro, self.sentences, self.voices = kokoro, sentences, voices
        self.todo = sorted(minutes)
        self.out, self.budget_s, self.layer_fraction = out, budget_s, layer_fraction
        self.t0, self.paused, self.results = time.perf_counter(), 0.0, []
        self.sec = {"phase1": None, "phase2": None}  # running mean seconds per step of each phase

    def train_seconds(self) -> float:
        return time.perf_counter() - self.t0 - self.paused

    def __call__(self, row: dict, trainer: Trainer) -> None:
        t = self.train_seconds()
        last = t >= self.budget_s or trainer.step >= trainer.cfg.steps
        if self.todo and (t >= 60 * self.todo[0] or last):
            self.evaluate(trainer, t)
        if last:
            trainer.cfg.steps = trainer.step  # the hard stop: fit() ends after this step
        elif "sec_per_step" in row:
            self.replan(trainer, row, t)

    def replan(self, trainer: Trainer, row: dict, t: float) -> None:
        """Re-fit cfg.steps (and the phase-1 share) to the time left, from the speed measured so far.

        Epoch 1 is slow (ALBERT runs once per sentence, then it is cached) and a shared machine changes speed,
        so a plan made from the first steps alone would end early or be cut short before the LR has decayed.
        """
        phase = "phase1" if "layer" in row else "phase2"
        old, dt = self.sec[phase], row["sec_per_step"]
        self.sec[phase] = dt if old is None else 0.9 * old + 0.1 * dt
        if trainer.step % 10:
            return
        cfg, f, left = trainer.cfg, self.layer_fraction, self.budget_s - t
        t1, t2 = self.sec["phase1"] or 0.0, self.sec["phase2"] or self.sec["phase1"]
        if phase == "phase1" and f > 0:  # remaining phase-1 and phase-2 steps both scale with n
            n = (left + trainer.step * t1) / (f * t1 + (1 - f) * t2)
            cfg.layer_steps = max(trainer.step, int(f * n))
        else:
            n = trainer.step + left / t2
        cfg.steps = max(trainer.step + 1, int(n))

    def evaluate(self, trainer: Trainer, t: float) -> None:
        t_eval = time.perf_counter()
        minute = self.todo.pop(0) if self.todo else round(t / 60, 1)
        r = evaluate_distillation(
            self.kokoro, trainer.model.predictor.text_encoder, self.sentences, list(self.voices),
            teacher=trainer.teacher, progress=False,
        )  # fmt: skip
        trainer.model.predictor.text_encoder.train()
        entry = {"milestone_min": minute, "train_min": round(t / 60, 2), "step": trainer.step, **r}
        self.results.append(entry)
        save_half(trainer, self.out / "milestones" / f"adapter-{minute:g}min", {"milestone_min": minute})
        o = r["voices"]["overall"]
        print(
            f"[{minute} min, step {trainer.step}] within 1 frame {o['within_1_pct']:.1f}% | drift "
            f"{o['drift_ms']:.1f} ms | F0 RMSE {o['f0_rmse_hz']:.1f} Hz | meets bar: {r['meets_bar']}",
            flush=True,
        )
        self.paused += time.perf_counter() - t_eval


def _time_end_to_end_step(trainer: Trainer, repeats: int = 2) -> float:
    """Seconds of one end-to-end (phase 2) forward+backward; gradients are discarded, nothing is updated."""
    saved = (trainer.cfg.layer_steps, trainer.epoch, trainer.batch_in_epoch)
    trainer.cfg.layer_steps = 0
    trainer._train_mode()
    times = []
    for _ in range(repeats):
        batch = trainer._next_batch()
        t = time.perf_counter()
        loss, _ = trainer.compute_loss(batch)
        loss.backward()
        times.append(time.perf_counter() - t)
        trainer.opt.zero_grad(set_to_none=True)
    trainer.cfg.layer_steps, trainer.epoch, trainer.batch_in_epoch = saved
    return min(times)


def run(
    out: str | Path,
    minutes: float | None = None,
    milestones=(5, 15, 30, 60),
    design: SurgeryConfig = DESIGN,
    *,
    settings: Settings | None = None,
    kokoro=None,
    weights: str | None = None,
    device: str | None = None,
    init: str | Path | None = None,
    corpus: str | Path | None = None,
    heldout: str | Path | None = None,
    heldout_limit: int | None = None,
    train_voices=TRAIN_VOICES,
    eval_voices=EVAL_VOICES,
    calibration_steps: int = 6,
    command: str | None = None,
    callbacks=(),
    **config,
) -> dict:
    """Train with the recipe for `minutes` of wall time; returns the provenance record (also results.json).

    `settings` (default `Settings.from_env()`) gives the mode (CI: its text-corpus limit, CI-sized TrainConfig,
    `CI_HELDOUT` dev sentences per evaluation), the budget (`stage1_minutes`, unless `minutes`), and the device and
    weights (unless `device` / `weights`). `kokoro`: an already loaded, un-operated LoadedKokoro to train in (the
    notebook's); it is operated for the run and restored afterwards (the student lives on in `out/adapter`).
    `init`: a stage-1 adapter to continue from (its design is read from its JSON; `design` is then ignored).
    `callbacks`: more Trainer callbacks (the notebook's live loss plot). `config`: TrainConfig fields over
    `TrainConfig.for_mode(mode, "distill")`, whose defaults are this recipe.
    """
    out = Path(out).expanduser()
    lock = OutputLock(out, "helpers.train.recipe").acquire()  # OutputBusy when another run writes there
    try:
        return _run(out, minutes, milestones, design, settings or Settings.from_env(), kokoro, weights, device, init,
                    corpus, heldout, heldout_limit, train_voices, eval_voices, calibration_steps, command, callbacks,
                    config)  # fmt: skip
    finally:
        lock.release()


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse (FileExistsError) an --out holding a recipe's adapter or results, or inside the shipped results/,
    unless `overwrite`."""
    if overwrite:
        return
    refuse_existing(
        [out / "adapter.safetensors", out / "adapter.json", out / "results.json", out / "milestones"],
        f"a recipe's output in {out}",
        "pass --overwrite to replace it, or choose another --out",
    )
    if shipped_results(out):
        raise FileExistsError(
            f"{out} is inside the repository's shipped results/ (the adapters and evidence the workbook ships): "
            "pass --overwrite to write there on purpose, or leave --out at its default under runs/"
        )


def _start(kokoro, design: SurgeryConfig, init):
    """(surgery report, design): `kokoro` operated with `design`, or with `init`'s design and its weights loaded."""
    from helpers.transplant.adapters import (
        adapter_block,
        adapter_info,
        adapter_paths,
        adapter_surgery,
        load_adapter,
    )

    if init is not None:
        info = adapter_info(init)
        if adapter_block(info) not in ("mamba", "cfc"):
            raise ValueError(f"stage 1 trains new blocks: {init} holds a {adapter_block(info)} DurationEncoder")
        design = adapter_surgery(info, adapter_paths(init)[1])
    report = replace_duration_encoder(kokoro.model, design)
    if init is not None:
        load_adapter(kokoro.model, init, strict_config=design)
    return report, design


def _run(out, minutes, milestones, design, S, kokoro, weights, device, init, corpus, heldout, heldout_limit,
         train_voices, eval_voices, calibration_steps, command, callbacks, config) -> dict:  # fmt: skip
    from helpers.data.text_corpus import heldout_file, prepare_text_corpus
    from helpers.kokoro.loading import load_kokoro
    from helpers.transplant.surgery import restore

    minutes = S.stage1_minutes if minutes is None else minutes
    cfg = TrainConfig.for_mode(S.mode, "distill", **config)
    S.seed_everything(cfg.seed)
    kokoro = kokoro or load_kokoro(weights or S.weights, device=device or S.device)
    corpus_path = Path(corpus) if corpus else S.data_dir / "text" / "sentences.txt"
    heldout_path = Path(heldout) if heldout else heldout_file("dev", S.data_dir)  # choices read dev only
    text = prepare_text_corpus(kokoro, corpus_path, S, progress=False)  # CI mode: its first CI_CORPUS_LIMIT
    train_items = as_train_items(text.train)
    sentences = [ln.strip() for ln in heldout_path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    sentences = sentences[: heldout_limit or (CI_HELDOUT if S.is_ci else None)]
    bank = {v: kokoro.voice(v) for v in train_voices}
    report, design = _start(kokoro, design, init)
    try:
        return _train(out, minutes, milestones, design, kokoro, report, cfg, train_items, sentences, bank,
                      eval_voices, calibration_steps, init, command, corpus_path, heldout_path, callbacks)  # fmt: skip
    finally:
        restore(kokoro.model, report)  # `kokoro` as it came; the student is in out/adapter


def _train(out, minutes, milestones, design, kokoro, report, cfg, train_items, sentences, bank, eval_voices,
           calibration_steps, init, command, corpus_path, heldout_path, callbacks) -> dict:  # fmt: skip
    layer_fraction = cfg.layer_fraction
    cfg = dataclasses.replace(cfg, steps=10_000, log_every=1, eval_every=10**9, ckpt_every=10**9,
                              sample_every=10**9, out_dir=str(out / "run"))  # fmt: skip
    budget_s = 60.0 * minutes
    todo = sorted({m for m in milestones if m < minutes} | {minutes})  # the end of the budget is always evaluated
    ms = Milestones(kokoro, sentences, eval_voices, todo, out, budget_s, layer_fraction)
    trainer = Trainer(
        kokoro.model, report.removed, train_items, cfg, callbacks=[ms, *callbacks], voice_bank=bank,
        metadata={"weights": kokoro.source, "recipe": "helpers.train.recipe", "init_adapter": str(init) if init else None},
    )  # fmt: skip
    # calibrate: a few phase-1 steps (real training), one timed phase-2 forward+backward (no update) when the plan
    # has a phase 2 (layer_fraction < 1)
    cfg.layer_steps = calibration_steps
    t = time.perf_counter()
    trainer.fit(progress=False, stop_after=calibration_steps)
    t1 = (time.perf_counter() - t) / max(1, trainer.step)  # fewer than calibration_steps when the budget ran out
    t2 = _time_end_to_end_step(trainer) if layer_fraction < 1 else t1
    remaining = budget_s - ms.train_seconds()
    # layer_fraction of the steps in phase 1 (t1 each), the rest end to end (t2 each); Milestones.replan
    # keeps this fitted to the measured speed as the run goes
    n = max(0, int(remaining / (layer_fraction * t1 + (1 - layer_fraction) * t2))) + trainer.step
    cfg.steps, cfg.layer_steps = n, max(calibration_steps, int(layer_fraction * n))
    # fixed now: Milestones.replan cannot move it; a budget shorter than the plan (a slow CPU, CI's seconds) chains
    # from the first step after calibration
    chain_start = trainer.plan_chain(cfg.layer_steps, not_before=trainer.step)
    ms.sec = {"phase1": t1, "phase2": t2}
    print(f"calibration: phase 1 {t1:.2f} s/step, phase 2 {t2:.2f} s/step -> {n} steps planned, layer matching "
          f"chained from step {chain_start}", flush=True)  # fmt: skip
    trainer.fit(progress=True)
    if ms.todo:
        ms.evaluate(trainer, ms.train_seconds())
    # ship the milestone with the smallest overall token-boundary drift (the bar's hardest term)
    best = min(ms.results, key=lambda m: (m["voices"]["overall"]["drift_ms"], -m["milestone_min"]))
    record = {
        "command": command or "python -m helpers.train.recipe " + " ".join(sys.argv[1:]),
        "code_commit": _git_commit(),
        "design": design.to_dict(),
        "init_adapter": str(init) if init else None,
        "trainable_parameters": sum(p.numel() for p in kokoro.model.predictor.text_encoder.parameters()),
        "teacher_parameters": sum(p.numel() for p in report.removed.parameters()),
        "weights": kokoro.source,
        "config": dataclasses.asdict(cfg),
        "steps": trainer.step,
        "chain_start": trainer.chain_start,
        "train_minutes": round(ms.train_seconds() / 60, 2),
        "eval_minutes": round(ms.paused / 60, 2),
        "step_seconds": {"phase1": round(t1, 3), "phase2": round(t2, 3)},
        "data": {"corpus": str(corpus_path.relative_to(REPO_ROOT)) if corpus_path.is_relative_to(REPO_ROOT) else str(corpus_path),
                 "train_sentences": len(train_items), "heldout": heldout_path.name, "heldout_sentences": len(sentences)},  # fmt: skip
        "train_voices": list(bank),
        "eval_voices": list(ms.voices),
        "machine": {"threads": torch.get_num_threads(), "torch": torch.__version__,
                    "device": str(next(kokoro.model.parameters()).device)},  # fmt: skip
        "milestones": ms.results,
        "shipped": {"milestone_min": best["milestone_min"], "step": best["step"], "train_min": best["train_min"],
                    "rule": "the milestone with the smallest overall token-boundary drift (the bar's hardest term)"},  # fmt: skip
        "end_of_run": ms.results[-1]["voices"],
        "final": best["voices"],
        "meets_bar": best["meets_bar"],
        "adapter": str(out / "adapter"),
    }
    snap = out / "milestones" / f"adapter-{best['milestone_min']:g}min"
    for ext in (".safetensors", ".json"):
        (out / f"adapter{ext}").write_bytes(snap.with_name(snap.name + ext).read_bytes())
    (out / "results.json").write_text(json.dumps(record, indent=1))
    return record


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m helpers.train.recipe", description=__doc__.split("\n")[0])
    p.add_argument("--block", default="mamba", choices=["mamba", "cfc"], help="mamba: DESIGN; cfc: CFC_DESIGN")
    p.add_argument("--out", default=None, help=f"default per block, under {runs_root()}: {OUT}")
    p.add_argument("--overwrite", action="store_true", help="replace a recipe's output already in --out")
    p.add_argument("--minutes", type=real(0, lo_open=True), default=None, help="default: Settings.stage1_minutes")
    p.add_argument("--milestones", type=minutes_list, default=(5.0, 15.0, 30.0, 60.0))
    p.add_argument("--lr", type=real(0, lo_open=True), default=TrainConfig.lr)
    p.add_argument("--layer-fraction", type=real(0, 1), default=TrainConfig.layer_fraction,
                   help="share of the steps spent layer matching (0: end to end, measured worse)")
    p.add_argument("--batch-size", type=whole(1), default=None, help="default: TrainConfig.for_mode's (full: 16)")
    p.add_argument("--prosody-items", type=whole(0), default=TrainConfig.prosody_items)
    p.add_argument("--bidirectional", default=DESIGN.bidirectional, choices=["separate", "shared"])
    p.add_argument("--expand", type=real(0, lo_open=True), default=DESIGN.expand)
    p.add_argument("--dropout", type=real(0, 1, hi_open=True), default=DESIGN.dropout)
    p.add_argument("--timespan", default=CFC_DESIGN.cfc_timespan, choices=["unit", "learned"], help="cfc only")
    p.add_argument("--weights", default=None, help="default: Settings.weights (the shipped adapters: offline-int8)")
    p.add_argument("--device", default=None, help="default: Settings.device (CUDA when present in full mode)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chain-fraction", type=real(0, 1), default=TrainConfig.chain_fraction,
                   help="the last share of the layer-matching steps feeds each block the student's own input")
    p.add_argument("--w-dur-cum", type=real(0), default=0.0, help="phase 2: weight of the drift (token-edge) loss")
    p.add_argument("--w-f0", type=real(0), default=1.0, help="phase 2: weight of the F0 term")
    p.add_argument("--w-energy", type=real(0), default=1.0, help="phase 2: weight of the energy term")
    a = p.parse_args(argv)
    out = Path(a.out).expanduser() if a.out else runs_root() / OUT[a.block]
    try:
        check_out(out, a.overwrite)  # before the model is loaded
    except FileExistsError as e:
        p.exit(2, f"{p.prog}: error: {e}\n")
    config = {k: getattr(a, k) for k in ("lr", "layer_fraction", "prosody_items", "seed", "chain_fraction",
                                         "w_dur_cum", "w_f0", "w_energy")}  # fmt: skip
    if a.batch_size is not None:
        config["batch_size"] = a.batch_size
    design = design_for(a.block, bidirectional=a.bidirectional, expand=a.expand, dropout=a.dropout, timespan=a.timespan)
    return run(out, a.minutes, tuple(a.milestones), design, weights=a.weights, device=a.device, **config)


def design_for(block: str = "mamba", bidirectional: str = DESIGN.bidirectional, expand: float = DESIGN.expand,
               dropout: float = 0.0, timespan: str = CFC_DESIGN.cfc_timespan) -> SurgeryConfig:  # fmt: skip
    """The recipe's design for a block: `DESIGN` (Mamba) or `CFC_DESIGN`, with the options its command offers."""
    if block == "cfc":
        return dataclasses.replace(CFC_DESIGN, cfc_timespan=timespan, dropout=dropout)
    return dataclasses.replace(DESIGN, bidirectional=bidirectional, expand=expand, dropout=dropout)


if __name__ == "__main__":
    main()
