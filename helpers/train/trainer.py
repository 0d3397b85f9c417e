"""Training the transplanted Mamba blocks: distillation from the LSTM teacher, then fine-tuning on recordings.

Only the new blocks learn (helpers.transplant.peft); everything else is frozen but still differentiable, so gradients
flow from the losses through the frozen duration LSTM, F0/N branch and decoder back into the blocks.

The step runs helpers.kokoro.forward, the path synthesis and evaluation use too, batched; its loss is one
function per stage and phase (helpers.train.stage_losses), picked by `compute_loss`:

    d_en = upstream_features(model, ids, pad)       (B, 512, T)   frozen: computed once per item, cached
    loss, terms = compute_loss(batch)               layer matching | distillation | fine-tuning
    backward, clip, AdamW step, LR schedule         `train_step`; `fit` adds evaluation, checkpoints, samples

Stage 1 ("distill") needs text only: teacher and student see the same sentence, the losses compare their
layers (phase 1, `layer_steps`), then their features, durations and F0/N (phase 2; helpers.train.losses).
Stage 2 ("finetune") compares against a recording's targets (notebook 04): durations, F0, energy, and the
log-mel of generated vs real audio. Stage 2 also trains the same-recipe LSTM control: an un-operated model,
whose DurationEncoder's own BiLSTMs are the student (peft). Every `eval_every` steps the held-out items are
scored (helpers.train.selection, by helpers.compare.scoring); the adapter keeps the best step.

Arithmetic (helpers.train.precision, printed): the student under bf16 autocast on GPUs with native bf16, fp16
with a GradScaler on older ones, fp32 elsewhere; the teacher's forwards and durations always in fp32 (targets).
Layer matching is teacher-forced, then chained from `chain_start`, a step fixed at the start (or once by
`plan_chain`, the recipe's plan): re-planning cannot move it, checkpoints carry it, rows log it (`chained`).

Runs the same in a notebook (`Trainer(...).fit()`) and in a terminal:

    python -m helpers.train --stage distill --minutes 60       # stage 1: helpers.train.recipe drives a Trainer
    python -m helpers.train --stage finetune --student lstm    # stage 2: helpers.train.stage2.finetune

One process, one device; or, under `torchrun --nproc_per_node=N`, N processes whose gradients are averaged
by DistributedDataParallel, each on its own slice of the batches, rank 0 alone writing (helpers.train.distributed).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from helpers.kokoro.forward import upstream_features
from helpers.outputs import OutputLock
from helpers.train import distributed as D
from helpers.train import resumable as R
from helpers.train import stage_losses as SL
from helpers.train.checkpoints import CheckpointManager, rng_state, set_rng_state
from helpers.train.config import TrainConfig, TrainingDiverged, _lr_lambda
from helpers.train.items import Batch, TrainItem, bucketed_batches, collate, restyle
from helpers.train.layerwise import chain_start_step
from helpers.train.precision import backward, clip_and_step, precision_for
from helpers.train.runlog import RunLog, rank_and_world, write_samples
from helpers.train.selection import HeldOutBest, held_out_scores
from helpers.transplant.adapters import save_adapter
from helpers.transplant.peft import PeftConfig, freeze_for_peft, student_kind
from helpers.transplant.surgery import encoder_design, same_design

# --------------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------------


class Trainer:
    """Train the DurationEncoder of `model` against `teacher` and/or targets: the transplanted blocks of an operated
    Kokoro, or (stage 'finetune' only: the same-recipe control) the BiLSTMs of an un-operated one."""

    def __init__(
        self,
        model: nn.Module,
        teacher: nn.Module | None,
        train_items: list[TrainItem],
        cfg: TrainConfig,
        val_items: list[TrainItem] | None = None,
        callbacks: list | None = None,
        metadata: dict | None = None,
        voice_bank: dict[str, torch.Tensor] | None = None,
    ):
        """`voice_bank` {name: pack [510, 1, 256]}: each utterance of each batch gets a random pack's style
        row (distillation across voices); None keeps every item's own style."""
        if student_kind(model) == "lstm" and cfg.stage != "finetune":  # TypeError for any other module
            raise ValueError("Kokoro's own LSTMs train in stage 'finetune' only (the control); operate to distill")
        if cfg.stage == "distill" and teacher is None:
            raise ValueError("stage 'distill' needs the teacher (the original DurationEncoder)")
        if cfg.stage == "finetune" and any(it.durations is None for it in train_items):
            raise ValueError("stage 'finetune' needs items with target durations/F0/energy/mel (notebook 04)")
        if not train_items:
            raise ValueError("no training items")
        self.model, self.teacher, self.cfg = model, teacher, cfg
        self.items, self.val_items = train_items, val_items or []
        self.callbacks = callbacks or []
        self.voice_bank = voice_bank
        self.metadata = metadata or {}
        self.device = next(model.parameters()).device
        self.out = Path(cfg.out_dir).expanduser()
        if rank_and_world()[0] == 0:  # one writing process per folder (helpers.outputs): OutputBusy otherwise
            self.lock = OutputLock(self.out, f"training ({cfg.stage})").acquire()
        peft = PeftConfig(
            train_norms=cfg.train_norms, extra=("predictor",) if cfg.train_whole_predictor else ()
        )
        self.trainable_names = freeze_for_peft(model, peft)
        if teacher is not None:
            teacher.requires_grad_(False).eval().to(self.device)
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [
            p
            for n, p in model.named_parameters()
            if p.requires_grad and not getattr(p, "_no_weight_decay", False)
        ]
        no_decay = [
            p
            for n, p in model.named_parameters()
            if p.requires_grad and getattr(p, "_no_weight_decay", False)
        ]
        assert len(decay) + len(no_decay) == len(params)
        self.student = D.wrap(model.predictor.text_encoder, self.device)  # DDP under torchrun, else itself
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _lr_lambda(cfg))
        self.ckpt = CheckpointManager(self.out / "checkpoints", keep_last=cfg.keep_last)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.bad_steps, self.kept = 0, HeldOutBest(cfg.stage)
        self.chain_start = chain_start_step(cfg.layer_steps, cfg.chain_fraction)  # None: never chained
        self.precision = precision_for(self.device, cfg.precision)
        self.scaler = self.precision.grad_scaler(self.device.type)  # fp16 only
        if rank_and_world()[0] == 0:
            print(self.precision.describe())
        self.history: list[dict] = []
        self._upstream: dict[bytes, torch.Tensor] = {}  # token ids -> (512, T) frozen features (style-free)
        self.log = RunLog(self.out)

    def plan_chain(self, layer_steps: int, not_before: int = 0) -> int | None:
        """Fix the first chained step from a planned number of layer-matching steps, before training reaches
        it (the recipe calls this once, after calibration). Later re-planning leaves it where it is.
        `not_before`: the earliest step it may be (the recipe's: the steps its calibration already took, so a
        budget too short for the plan chains from the next step rather than failing)."""
        start = chain_start_step(layer_steps, self.cfg.chain_fraction)
        start = None if start is None else max(start, not_before)
        if self.chain_start is not None and self.step > self.chain_start:
            raise ValueError(f"layer matching has been chained since step {self.chain_start}: it stays so")
        if start is not None and start < self.step:
            raise ValueError(f"cannot chain from step {start}: the run is at step {self.step} already")
        self.chain_start = start
        return start

    def chained(self) -> bool:
        """Whether the current layer-matching step feeds each block the student's own input."""
        return self.chain_start is not None and self.step >= self.chain_start

    # ---- modes -------------------------------------------------------------------------------------
    def _train_mode(self) -> None:
        """Frozen parts in eval (no dropout), the student in train mode. Every LSTM is put in train mode, frozen
        or trained (the control's): cuDNN's RNN backward refuses eval mode; single-layer LSTMs have no dropout."""
        self.model.eval()
        self.model.predictor.text_encoder.train()
        if self.cfg.train_whole_predictor:
            self.model.predictor.train()
        for m in self.model.modules():
            if isinstance(m, nn.LSTM):
                m.train()

    # ---- data --------------------------------------------------------------------------------------
    def _batches(self, epoch: int) -> list[list[int]]:
        batches = bucketed_batches([len(it) for it in self.items], self.cfg.batch_size, self.cfg.seed, epoch)
        return D.shard(batches, *rank_and_world())  # every rank the same number: the tail is dropped

    def _next_batch(self) -> Batch:
        batches = self._batches(self.epoch)
        if self.batch_in_epoch >= len(batches):
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            batches = self._batches(self.epoch)
        idx = batches[self.batch_in_epoch]
        self.batch_in_epoch += 1
        batch = collate([self.items[i] for i in idx]).to(self.device)
        if self.voice_bank:
            restyle(batch, self.voice_bank, np.random.default_rng([self.cfg.seed, self.step]))
        batch.d_en = self._cached_upstream(batch)
        return batch

    def _cached_upstream(self, batch: Batch) -> torch.Tensor:  # keyed by content: corpora may reuse ids
        keys = [np.asarray(it.token_ids, dtype=np.int64).tobytes() for it in batch.items]
        missing = [b for b, k in enumerate(keys) if k not in self._upstream]
        if missing:
            feats = upstream_features(self.model, batch.ids[missing], batch.pad[missing])  # (M, 512, T)
            for j, b in enumerate(missing):
                n = int(batch.lengths[b])
                self._upstream[keys[b]] = feats[j, :, :n].cpu()
        T = batch.ids.shape[1]
        d_en = torch.zeros(len(batch.items), 512, T)
        for b, k in enumerate(keys):
            f = self._upstream[k]
            d_en[b, :, : f.shape[1]] = f
        return d_en.to(self.device)

    # ---- losses (helpers.train.stage_losses) -------------------------------------------------------
    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss, logged terms) of this step's stage and phase, on a batch with its upstream features."""
        if self.cfg.stage == "finetune":
            return SL.fine_tuning(self, batch)
        if self.step < self.cfg.layer_steps:  # stage 1, phase 1: each block vs its LSTM layer
            return SL.layer_matching(self, batch)
        return SL.distillation(self, batch)

    # ---- one step ----------------------------------------------------------------------------------
    def train_step(self) -> dict | None:
        """One optimiser step on the next batch: its log row, or None when the loss was not finite (skipped)."""
        self._train_mode()
        batch = self._next_batch()
        with self.precision.autocast(self.device.type):
            loss, terms = self.compute_loss(batch)
        self.step += 1
        self.opt.zero_grad(set_to_none=True)
        if not D.all_finite(loss):  # decided on every rank together
            return self._skip(loss)
        self.bad_steps = 0
        backward(loss, self.scaler)  # under DDP, the student's gradients arrive averaged over the ranks
        D.average_gradients(self.model, self.student)  # trainable parameters outside the student, if any
        params = [p for p in self.model.parameters() if p.requires_grad]
        gnorm = clip_and_step(self.opt, params, self.cfg.grad_clip, self.scaler)  # fp16: unscaled first
        self.sched.step()
        return {
            "step": self.step,
            "loss": float(loss.detach()),
            **terms,
            "grad_norm": gnorm,
            "lr": self.sched.get_last_lr()[0],
        }

    # ---- the loop ----------------------------------------------------------------------------------
    def fit(
        self, voice_pack: torch.Tensor | None = None, progress: bool = True, stop_after: int | None = None
    ) -> list[dict]:
        """Train until cfg.steps (or `stop_after` more steps); checkpoints, evals and samples on schedule."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        end = float("inf") if stop_after is None else self.step + stop_after
        main = rank_and_world()[0] == 0
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not (progress and main), desc=f"{cfg.stage}")
        t0 = time.perf_counter()
        while self.step < min(end, cfg.steps):  # a callback may move cfg.steps (a time budget)
            row = self.train_step()
            bar.total = cfg.steps
            bar.update(1)
            if row is None:
                continue
            row["sec_per_step"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            is_best = False
            if self.val_items and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                row.update(self.evaluate())
                is_best = self.kept.offer(self.step, row, self.model.predictor.text_encoder)
            if self.step % cfg.log_every == 0 or "val_dur_within_1" in row:
                self._log(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}")
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps or is_best:
                self.save_checkpoint(is_best=is_best)
            if main and voice_pack is not None and (self.step % cfg.sample_every == 0 or self.step == cfg.steps):
                self.write_sample(voice_pack)
        bar.close()
        return self.history

    def _skip(self, loss: torch.Tensor) -> None:
        """A non-finite loss: the step is skipped, warned about and logged; `max_bad_steps` in a row stop the run."""
        self.bad_steps += 1
        warnings.warn(
            f"step {self.step}: non-finite loss ({float(loss.detach())}), step skipped ({self.bad_steps} in a row)",
            stacklevel=3,
        )
        self._log({"step": self.step, "skipped": 1, "loss": float(loss.detach())})
        if self.bad_steps >= self.cfg.max_bad_steps:
            raise TrainingDiverged(
                f"{self.bad_steps} non-finite losses in a row at step {self.step}; "
                f"the last good checkpoint is in {self.ckpt.dir}"
            )

    # ---- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "student": self.model.predictor.text_encoder.state_dict(),
            "trainable": {n: p.detach().cpu() for n, p in self.model.named_parameters() if p.requires_grad},
            "surgery": encoder_design(self.model.predictor.text_encoder),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "kept": self.kept.state_dict(),
            "chain_start": self.chain_start,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_state(),
            "config": dataclasses.asdict(self.cfg),
            "run": R.identity(self),  # stage, design, data, schedule: what resume must match
        }

    def load_state_dict(self, state: dict) -> None:
        if not same_design(state["surgery"], self.model.predictor.text_encoder):
            raise ValueError(f"checkpoint was made for another surgery config: {state['surgery']}")
        self.model.predictor.text_encoder.load_state_dict(state["student"])
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for n, v in state["trainable"].items():
                params[n].copy_(v)
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.kept.load_state_dict(state.get("kept"))
        if "chain_start" in state:  # decided when the run started: the checkpoint's decision holds
            self.chain_start = state["chain_start"]
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        rngs = state.get("rng_by_rank") or []  # one per process under torchrun
        set_rng_state(rngs[rank_and_world()[0]] if len(rngs) == rank_and_world()[1] else state["rng"])

    def save_checkpoint(self, is_best: bool = False) -> Path | None:
        """Rank 0 writes; every rank must call it (each rank's RNG state goes into the file, for resume)."""
        rngs = D.gather(rng_state())
        if rank_and_world()[0] != 0:
            return None
        return self.ckpt.save({**self.state_dict(), "rng_by_rank": rngs}, self.step, is_best=is_best)

    def resume(self, fresh: bool = False) -> bool:
        """Continue from the newest readable checkpoint in out_dir (True when one was found); CheckpointError
        when none is readable. fresh=True starts over: checkpoints are moved aside (never deleted)."""
        if fresh:
            return self.ckpt.start_over()
        found = self.ckpt.load_latest()
        if found is None:  # said, not silent: the run starts over
            print(f"resume: no checkpoint in {self.ckpt.dir}: starting from step 0", flush=True)
            return False
        state, path = found
        R.check(state, R.identity(self), path)  # ResumeRefused when it belongs to another run
        self.load_state_dict(state)
        print(f"resumed from {path.name} (step {self.step})")
        return True

    # ---- evaluation and samples ------------------------------------------------------------------
    def evaluate(self, items: list[TrainItem] | None = None, max_items: int | None = None) -> dict[str, float]:
        """The student against the reference on the first `max_items` (default cfg.eval_items) held-out items."""
        n = self.cfg.eval_items if max_items is None else max_items
        return held_out_scores(self, (items if items is not None else self.val_items)[:n])

    def write_sample(self, voice_pack: torch.Tensor, tag: str | None = None) -> dict[str, Path]:
        """Synthesize cfg.sample_text with the teacher (once) and the current student; save wavs."""
        self.model.eval()
        name = f"student-{tag or f'step{self.step:06d}'}.wav"
        return write_samples(self.model, self.teacher, self.cfg.sample_text, voice_pack, self.out / "samples", name)

    def _log(self, row: dict) -> None:
        self.history.append(row)
        self.log.write(row)
        for cb in self.callbacks:
            cb(row, self)

    def save_adapter(self, name: str = "adapter", extra: dict | None = None, overwrite: bool = True) -> Path | None:
        """Save the student as out_dir/<name> (replaced unless overwrite=False); rank 0 writes, others get None.

        Stage 2 saves its held-out-best weights (helpers.train.selection), the model itself keeps its last ones;
        the metadata names the step kept ("kept_step") and its held-out scores ("best_scores")."""
        if rank_and_world()[0] != 0:
            return None
        meta = {"stage": self.cfg.stage, "steps": self.step, "config": dataclasses.asdict(self.cfg), **self.metadata}
        meta = {**meta, **self.kept.metadata(self.step), **(extra or {})}
        if self.history:
            meta["last"] = {k: v for k, v in self.history[-1].items() if isinstance(v, (int, float))}
        enc = self.model.predictor.text_encoder
        last = {k: v.detach().clone() for k, v in enc.state_dict().items()} if self.kept.weights else None
        try:
            if last is not None:
                enc.load_state_dict(self.kept.weights)
            st, _ = save_adapter(self.model, self.out / name, meta, overwrite=overwrite)
        finally:
            if last is not None:
                enc.load_state_dict(last)
        return st

