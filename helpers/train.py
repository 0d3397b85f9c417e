"""Training the transplanted Mamba blocks: distillation from the LSTM teacher, then fine-tuning on recordings.

Only the new blocks learn (helpers.peft); everything else is frozen but still differentiable, so gradients
flow from the losses through the frozen duration LSTM, F0/N branch and decoder back into the blocks.

Kokoro's own forward runs one utterance under no_grad. Training needs a batched path:

    ids (B, T) padded, lengths (B,), pad (B, T) True on padding, ref_s (B, 256)
    d_en = bert_encoder(ALBERT(ids))             (B, 512, T)   frozen: computed once per item and cached
    d    = DurationEncoder(d_en, s, lengths, pad) (B, T, 640)   teacher (LSTM) and student (Mamba)
    logits = duration_proj(packed predictor.lstm(d)) (B, T, 50)
    per utterance b (F0/N and the decoder use InstanceNorm, which padding would corrupt):
        aln_b from durations (teacher's in stage 1, the targets' in stage 2)   (T_b, F_b)
        F0_b, N_b = F0Ntrain(d_b^T @ aln_b, s_b)                               (2 F_b,)
        stage 2: audio = decoder(asr crop, F0 crop, N crop, timbre)            (600 W,) on a W-frame crop

Stage 1 ("distill") needs text only: teacher and student see the same sentence, the losses compare their
features, durations and F0/N (helpers.losses). Stage 2 ("finetune") compares against a recording's targets
(notebook 04): durations, F0, energy, and the log-mel of generated vs real audio.

Runs the same in a notebook (`Trainer(...).fit()`) and in a terminal:

    python -m helpers.train --stage distill --steps 3000 --out runs/distill
    python -m helpers.train --stage finetune --data data/librivox --init-adapter runs/distill/adapter --out runs/ft

One process, one device. Under torchrun each process trains its own copy with its own slice of the
batches (rank-sharded order), and only rank 0 writes; gradient averaging across GPUs is not implemented.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from . import losses as L
from .checkpoints import CheckpointManager, rng_state, set_rng_state
from .peft import PeftConfig, freeze_for_peft, save_adapter, trainable_summary
from .surgery import MambaDurationEncoder, SurgeryConfig
from .synth import alignment_from_durations


class TrainingDiverged(RuntimeError):
    """Too many non-finite losses in a row; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Every knob of a training run. `TrainConfig.for_mode(S.mode, stage)` gives CI or full defaults."""

    stage: str = "distill"  # "distill" (text only, teacher = LSTM) | "finetune" (recordings' targets)
    steps: int = 3000
    batch_size: int = 16
    lr: float = 1e-4  # the original plan's choice
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay to lr * this
    grad_clip: float = 1.0
    bf16: bool = True  # autocast on CUDA only; the scan state stays fp32
    seed: int = 0
    log_every: int = 10
    eval_every: int = 250
    ckpt_every: int = 250
    sample_every: int = 500
    keep_last: int = 3
    max_bad_steps: int = 5  # consecutive non-finite losses before stopping
    # loss weights
    w_feature: float = 1.0
    w_dur_l1: float = 1.0
    w_dur_bce: float = 1.0
    w_f0: float = 1.0
    w_energy: float = 1.0
    w_mel: float = 5.0  # stage 2 only
    w_stft: float = 0.0  # stage 2 only; multi-resolution STFT needs target audio
    prosody_items: int = 4  # per batch, utterances that also get F0/N losses (each is a B=1 pass)
    mel_items: int = 1  # stage 2: utterances per batch that go through the decoder
    mel_crop_frames: int = 32  # stage 2: decoder on crops of this many 25 ms frames
    train_norms: bool = False
    train_whole_predictor: bool = False  # benchmark: everything in the predictor trainable
    out_dir: str = "runs/distill"
    sample_text: str = "The quick brown fox jumps over the lazy dog, and then it rests."

    def __post_init__(self) -> None:
        if self.stage not in ("distill", "finetune"):
            raise ValueError(f"stage must be 'distill' or 'finetune', got {self.stage!r}")

    @classmethod
    def for_mode(cls, mode: str, stage: str = "distill", **overrides) -> TrainConfig:
        if mode == "ci":  # CPU, a few minutes
            base = dict(
                steps=30 if stage == "distill" else 6,
                batch_size=8 if stage == "distill" else 2,
                warmup_steps=5,
                log_every=2,
                eval_every=15,
                ckpt_every=10,
                sample_every=30,
                prosody_items=2,
                mel_crop_frames=24,
            )
        else:
            base = dict(
                steps=3000 if stage == "distill" else 1000, batch_size=16 if stage == "distill" else 4
            )
        base.update(stage=stage, out_dir=f"runs/{stage}")
        base.update(overrides)
        return cls(**base)


# --------------------------------------------------------------------------------------------------------
# Data: items, batches, length buckets
# --------------------------------------------------------------------------------------------------------


@dataclass
class TrainItem:
    """One utterance. Stage 1 needs ids and style; stage 2 also the recording's targets."""

    id: str
    token_ids: np.ndarray  # (T,) int, BOS/EOS included
    style: np.ndarray  # (256,) ref_s: [:128] timbre, [128:] prosody
    durations: np.ndarray | None = None  # (T,) 25 ms frames, sum = F
    f0: np.ndarray | None = None  # (2F,) Hz, 0 = unvoiced
    energy: np.ndarray | None = None  # (2F,)
    mel: np.ndarray | None = None  # (80, 2F) normalised log-mel

    def __len__(self) -> int:
        return len(self.token_ids)


def bucketed_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Length-bucketed batches: similar lengths together (little padding), order random but reproducible."""
    g = np.random.default_rng([seed, epoch])
    jitter = g.random(len(lengths))
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], jitter[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    g.shuffle(batches)
    return batches


def as_train_items(objs) -> list[TrainItem]:
    """Notebook 04's TextItem / ItemTargets (or anything with the same fields) -> TrainItems."""
    get = lambda o, k: None if getattr(o, k, None) is None else np.asarray(getattr(o, k))
    return [
        TrainItem(
            o.id,
            get(o, "token_ids"),
            get(o, "style").reshape(-1).astype(np.float32),
            get(o, "durations"),
            get(o, "f0"),
            get(o, "energy"),
            get(o, "mel"),
        )
        for o in objs
    ]


def items_for_stage(
    kokoro, stage: str, settings, corpus: str | Path, data: str | Path
) -> tuple[list[TrainItem], list[TrainItem]]:
    """(train, validation) items: the text corpus for 'distill', a prepared recording dataset for 'finetune'."""
    from .prepare import prepare_dataset, prepare_text_corpus

    if stage == "distill":
        c = prepare_text_corpus(kokoro, corpus, settings, limit=64 if settings.is_ci else None)
        return as_train_items(c.train), as_train_items(c.val)
    d = prepare_dataset(kokoro, data, settings)
    return as_train_items(d.train), as_train_items(d.val)


@dataclass
class Batch:
    ids: torch.Tensor  # (B, T) long, 0-padded
    lengths: torch.Tensor  # (B,)
    pad: torch.Tensor  # (B, T) bool, True on padding
    ref_s: torch.Tensor  # (B, 256)
    items: list[TrainItem] = field(repr=False)
    d_en: torch.Tensor | None = None  # (B, 512, T) frozen upstream features

    def to(self, device) -> Batch:
        move = lambda t: None if t is None else t.to(device)
        return Batch(
            move(self.ids), self.lengths, move(self.pad), move(self.ref_s), self.items, move(self.d_en)
        )


def collate(items: list[TrainItem]) -> Batch:
    T = max(len(it) for it in items)
    ids = torch.zeros(len(items), T, dtype=torch.long)
    for b, it in enumerate(items):
        ids[b, : len(it)] = torch.as_tensor(it.token_ids, dtype=torch.long)
    lengths = torch.tensor([len(it) for it in items])
    pad = torch.arange(T)[None, :] >= lengths[:, None]
    ref_s = torch.stack([torch.as_tensor(it.style, dtype=torch.float32).reshape(-1) for it in items])
    return Batch(ids, lengths, pad, ref_s, items)


# --------------------------------------------------------------------------------------------------------
# The batched training forward
# --------------------------------------------------------------------------------------------------------


@torch.no_grad()
def upstream_features(model: nn.Module, ids: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Frozen ALBERT + bert_encoder on a right-padded batch: (B, T) -> (B, 512, T). Exact under padding."""
    bert = model.bert(ids, attention_mask=(~pad).int())  # (B, T, 768)
    return model.bert_encoder(bert).transpose(-1, -2)  # (B, 512, T)


def duration_logits(model: nn.Module, d: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Packed predictor.lstm + duration_proj: (B, T, 640) -> (B, T, 50). Packing keeps padding out."""
    packed = pack_padded_sequence(d, lengths.cpu(), batch_first=True, enforce_sorted=False)
    x, _ = model.predictor.lstm(packed)
    x, _ = pad_packed_sequence(x, batch_first=True, total_length=d.shape[1])  # (B, T, 512)
    return model.predictor.duration_proj(x)  # (B, T, 50)


def prosody(model: nn.Module, d: torch.Tensor, durations: torch.Tensor, s: torch.Tensor):
    """One utterance: d (T, 640), durations (T,), s (1, 128) -> F0 (2F,), N (2F,)."""
    aln = alignment_from_durations(durations)  # (T, F)
    en = (d.transpose(0, 1) @ aln).unsqueeze(0)  # (1, 640, F)
    f0, n = model.predictor.F0Ntrain(en, s)  # (1, 2F) each
    return f0[0], n[0]


def rounded_durations(logits: torch.Tensor) -> torch.Tensor:
    """(…, 50) logits -> integer durations >= 1, as Kokoro's inference rounds them."""
    return torch.round(torch.sigmoid(logits).sum(-1)).clamp(min=1).long()


# --------------------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------------------


def _lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


class Trainer:
    """Train the MambaDurationEncoder of an operated Kokoro (`model`) against `teacher` and/or targets."""

    def __init__(
        self,
        model: nn.Module,
        teacher: nn.Module | None,
        train_items: list[TrainItem],
        cfg: TrainConfig,
        val_items: list[TrainItem] | None = None,
        callbacks: list | None = None,
        metadata: dict | None = None,
    ):
        if not isinstance(model.predictor.text_encoder, MambaDurationEncoder):
            raise TypeError("operate first: model.predictor.text_encoder must be a MambaDurationEncoder")
        if cfg.stage == "distill" and teacher is None:
            raise ValueError("stage 'distill' needs the teacher (the original DurationEncoder)")
        if cfg.stage == "finetune" and any(it.durations is None for it in train_items):
            raise ValueError("stage 'finetune' needs items with target durations/F0/energy/mel (notebook 04)")
        if not train_items:
            raise ValueError("no training items")
        self.model, self.teacher, self.cfg = model, teacher, cfg
        self.items, self.val_items = train_items, val_items or []
        self.callbacks = callbacks or []
        self.metadata = metadata or {}
        self.device = next(model.parameters()).device
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
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
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _lr_lambda(cfg))
        self.ckpt = CheckpointManager(self.out / "checkpoints", keep_last=cfg.keep_last)
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.bad_steps, self.best = 0, None
        self.history: list[dict] = []
        self._upstream: dict[str, torch.Tensor] = {}  # item id -> (512, T) cached frozen features
        self.log_path = self.out / "metrics.csv"
        self._tb = None

    # ---- modes -------------------------------------------------------------------------------------
    def _train_mode(self) -> None:
        """Frozen parts in eval (no dropout), the student in train mode. The frozen LSTMs are put in train
        mode too: cuDNN's RNN backward refuses eval mode, and single-layer LSTMs have no dropout anyway."""
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
        rank, world = _dist_rank_world()
        return batches[rank::world] if world > 1 else batches

    def _next_batch(self) -> Batch:
        batches = self._batches(self.epoch)
        if self.batch_in_epoch >= len(batches):
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            batches = self._batches(self.epoch)
        idx = batches[self.batch_in_epoch]
        self.batch_in_epoch += 1
        batch = collate([self.items[i] for i in idx]).to(self.device)
        batch.d_en = self._cached_upstream(batch)
        return batch

    def _cached_upstream(self, batch: Batch) -> torch.Tensor:
        missing = [b for b, it in enumerate(batch.items) if it.id not in self._upstream]
        if missing:
            feats = upstream_features(self.model, batch.ids[missing], batch.pad[missing])  # (M, 512, T)
            for j, b in enumerate(missing):
                n = int(batch.lengths[b])
                self._upstream[batch.items[b].id] = feats[j, :, :n].cpu()
        T = batch.ids.shape[1]
        d_en = torch.zeros(len(batch.items), 512, T)
        for b, it in enumerate(batch.items):
            f = self._upstream[it.id]
            d_en[b, :, : f.shape[1]] = f
        return d_en.to(self.device)

    # ---- losses ------------------------------------------------------------------------------------
    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, model = self.cfg, self.model
        s = batch.ref_s[:, 128:]  # (B, 128) prosody style
        valid = ~batch.pad  # (B, T)
        student = model.predictor.text_encoder
        d_s = student(batch.d_en, s, batch.lengths, batch.pad)  # (B, T, 640)
        logits_s = duration_logits(model, d_s, batch.lengths)  # (B, T, 50)
        terms: dict[str, torch.Tensor] = {}
        if cfg.stage == "distill":
            with torch.no_grad():
                d_t = self.teacher(batch.d_en, s, batch.lengths, batch.pad)  # (B, T, 640)
                logits_t = duration_logits(model, d_t, batch.lengths)
                dur = rounded_durations(logits_t)  # (B, T) the teacher's alignment
            terms["feature"] = L.feature_loss(d_s, d_t, valid)
            terms["dur_l1"], terms["dur_bce"] = L.duration_loss(logits_s, torch.sigmoid(logits_t), valid)
        else:
            dur = torch.zeros_like(batch.ids)
            for b, it in enumerate(batch.items):
                dur[b, : len(it)] = torch.as_tensor(it.durations)
            terms["dur_l1"], terms["dur_bce"] = L.duration_loss(logits_s, L.duration_targets(dur), valid)
        f0_terms, n_terms, mel_terms = [], [], []
        for b in range(min(cfg.prosody_items, len(batch.items))):
            n = int(batch.lengths[b])
            f0_s, n_s = prosody(model, d_s[b, :n], dur[b, :n], s[b : b + 1])  # (2F,)
            if cfg.stage == "distill":
                with torch.no_grad():
                    f0_t, n_t = prosody(model, d_t[b, :n], dur[b, :n], s[b : b + 1])
            else:
                f0_t = torch.as_tensor(batch.items[b].f0, device=self.device)
                n_t = torch.as_tensor(batch.items[b].energy, device=self.device)
            f0_terms.append(L.f0_loss(f0_s, f0_t))
            n_terms.append(L.energy_loss(n_s, n_t))
            if cfg.stage == "finetune" and b < cfg.mel_items:
                mel_terms.append(self._mel_term(batch, b, f0_s, n_s, dur[b, :n]))
        terms["f0"] = torch.stack(f0_terms).mean()
        terms["energy"] = torch.stack(n_terms).mean()
        if mel_terms:
            terms["mel"] = torch.stack(mel_terms).mean()
        weights = {
            "feature": cfg.w_feature,
            "dur_l1": cfg.w_dur_l1,
            "dur_bce": cfg.w_dur_bce,
            "f0": cfg.w_f0,
            "energy": cfg.w_energy,
            "mel": cfg.w_mel,
        }
        total = sum(weights[k] * v for k, v in terms.items())
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def _mel_term(
        self, batch: Batch, b: int, f0: torch.Tensor, n_curve: torch.Tensor, durations: torch.Tensor
    ) -> torch.Tensor:
        """Decoder on a random crop of W frames (teacher-forced alignment) vs the recording's log-mel."""
        model, it = self.model, batch.items[b]
        n = int(batch.lengths[b])
        F = int(durations.sum())
        W = min(self.cfg.mel_crop_frames, F)
        a = int(torch.randint(0, F - W + 1, (1,)))  # crop start, drawn from the (checkpointed) torch RNG
        with torch.no_grad():
            aln = alignment_from_durations(durations)  # (T, F)
            ids = batch.ids[b : b + 1, :n]
            t_en = model.text_encoder(
                ids, batch.lengths[b : b + 1].to(self.device), batch.pad[b : b + 1, :n]
            )  # (1, 512, T)
            asr = (t_en @ aln)[:, :, a : a + W]  # (1, 512, W)
        audio = model.decoder(
            asr,
            f0[None, 2 * a : 2 * (a + W)],
            n_curve[None, 2 * a : 2 * (a + W)],
            batch.ref_s[b : b + 1, :128],
        )
        target = torch.as_tensor(it.mel[:, 2 * a : 2 * (a + W)], device=self.device)  # (80, 2W)
        return L.mel_loss(audio.reshape(-1), target)

    # ---- one step ----------------------------------------------------------------------------------
    def train_step(self) -> dict | None:
        self._train_mode()
        batch = self._next_batch()
        use_bf16 = self.cfg.bf16 and self.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            loss, terms = self.compute_loss(batch)
        self.step += 1
        if not torch.isfinite(loss):
            self.opt.zero_grad(set_to_none=True)
            self.bad_steps += 1
            warnings.warn(
                f"step {self.step}: non-finite loss ({float(loss.detach())}), step skipped ({self.bad_steps} in a row)",
                stacklevel=2,
            )
            self._log({"step": self.step, "skipped": 1, "loss": float(loss.detach())})
            if self.bad_steps >= self.cfg.max_bad_steps:
                raise TrainingDiverged(
                    f"{self.bad_steps} non-finite losses in a row at step {self.step}; "
                    f"the last good checkpoint is in {self.ckpt.dir}"
                )
            return None
        self.bad_steps = 0
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.model.parameters() if p.requires_grad]
        gnorm = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip))
        self.opt.step()
        self.sched.step()
        return {
            "step": self.step,
            "loss": float(loss.detach()),
            **terms,
            "grad_norm": gnorm,
            "lr": self.sched.get_last_lr()[0],
        }

    # ---- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "student": self.model.predictor.text_encoder.state_dict(),
            "trainable": {n: p.detach().cpu() for n, p in self.model.named_parameters() if p.requires_grad},
            "surgery": self.model.predictor.text_encoder.cfg.to_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best": self.best,
            "rng": rng_state(),
            "config": dataclasses.asdict(self.cfg),
        }

    def load_state_dict(self, state: dict) -> None:
        if SurgeryConfig(**state["surgery"]).to_dict() != self.model.predictor.text_encoder.cfg.to_dict():
            raise ValueError(f"checkpoint was made for another surgery config: {state['surgery']}")
        self.model.predictor.text_encoder.load_state_dict(state["student"])
        params = dict(self.model.named_parameters())
        with torch.no_grad():
            for n, v in state["trainable"].items():
                params[n].copy_(v)
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        self.best = state["best"]
        set_rng_state(state["rng"])

    def save_checkpoint(self, is_best: bool = False) -> Path | None:
        if _dist_rank_world()[0] != 0:
            return None
        return self.ckpt.save(self.state_dict(), self.step, is_best=is_best)

    def resume(self) -> bool:
        """Continue from the newest readable checkpoint in out_dir (True when one was found)."""
        found = self.ckpt.load_latest()
        if found is None:
            return False
        state, path = found
        self.load_state_dict(state)
        print(f"resumed from {path.name} (step {self.step})")
        return True

    # ---- evaluation and samples ------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, items: list[TrainItem] | None = None, max_items: int = 16) -> dict[str, float]:
        """Durations within 1 frame and F0 RMSE (Hz, voiced frames) of the student vs the reference.

        Reference: the teacher in stage 1; the recording's targets in stage 2. F0 is compared on the
        reference's alignment, so both curves have the same length.
        """
        items = (items if items is not None else self.val_items)[:max_items]
        if not items:
            return {}
        was_training = self.model.predictor.text_encoder.training
        self.model.eval()
        agree = total = 0
        f0_se, f0_n = 0.0, 0
        for it in items:
            batch = collate([it]).to(self.device)
            batch.d_en = self._cached_upstream(batch)
            s = batch.ref_s[:, 128:]
            d_s = self.model.predictor.text_encoder(batch.d_en, s, batch.lengths, batch.pad)
            dur_s = rounded_durations(duration_logits(self.model, d_s, batch.lengths))[0]  # (T,)
            if self.cfg.stage == "distill" and self.teacher is not None:
                d_t = self.teacher(batch.d_en, s, batch.lengths, batch.pad)
                dur_ref = rounded_durations(duration_logits(self.model, d_t, batch.lengths))[0]
                f0_ref, _ = prosody(self.model, d_t[0], dur_ref, s)
            else:
                dur_ref = torch.as_tensor(it.durations, device=self.device)
                f0_ref = torch.as_tensor(it.f0, device=self.device)
            f0_s, _ = prosody(self.model, d_s[0], dur_ref, s)
            agree += int(((dur_s - dur_ref).abs() <= 1).sum())
            total += len(it)
            voiced = f0_ref > 40
            f0_se += float(((f0_s - f0_ref)[voiced] ** 2).sum())
            f0_n += int(voiced.sum())
        self.model.predictor.text_encoder.train(was_training)
        return {"val_dur_within_1": agree / max(total, 1), "val_f0_rmse_hz": math.sqrt(f0_se / max(f0_n, 1))}

    @torch.no_grad()
    def write_sample(self, voice_pack: torch.Tensor, tag: str | None = None) -> dict[str, Path]:
        """Synthesize cfg.sample_text with the teacher (once) and the current student; save wavs."""
        import soundfile as sf

        from .g2p import phonemes_to_ids, phonemize
        from .synth import style_for, synthesize_ids

        self.model.eval()
        ps = phonemize(self.cfg.sample_text)
        ids, ref_s = phonemes_to_ids(ps, strict=False), style_for(voice_pack, len(ps))
        out_dir = self.out / "samples"
        out_dir.mkdir(exist_ok=True)
        paths = {}
        teacher_path = out_dir / "teacher.wav"
        if self.teacher is not None and not teacher_path.exists():
            student = self.model.predictor.text_encoder
            self.model.predictor.text_encoder = self.teacher
            try:
                sf.write(
                    teacher_path,
                    synthesize_ids(self.model, ids, ref_s, seed=0)["audio"].float().cpu().numpy(),
                    24000,
                )
            finally:
                self.model.predictor.text_encoder = student
        if teacher_path.exists():
            paths["teacher"] = teacher_path
        path = out_dir / f"student-{tag or f'step{self.step:06d}'}.wav"
        sf.write(path, synthesize_ids(self.model, ids, ref_s, seed=0)["audio"].float().cpu().numpy(), 24000)
        paths["student"] = path
        return paths

    # ---- logging -----------------------------------------------------------------------------------
    def _log(self, row: dict) -> None:
        self.history.append(row)
        if _dist_rank_world()[0] != 0:
            return
        new = not self.log_path.exists()
        fields = [
            "step",
            "loss",
            "feature",
            "dur_l1",
            "dur_bce",
            "f0",
            "energy",
            "mel",
            "grad_norm",
            "lr",
            "skipped",
            "val_dur_within_1",
            "val_f0_rmse_hz",
            "sec_per_step",
        ]
        with open(self.log_path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.out / "tensorboard"))
            except Exception:
                self._tb = False
        if self._tb:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, row["step"])
        for cb in self.callbacks:
            cb(row, self)

    # ---- the loop ----------------------------------------------------------------------------------
    def fit(
        self, voice_pack: torch.Tensor | None = None, progress: bool = True, stop_after: int | None = None
    ) -> list[dict]:
        """Train until cfg.steps (or `stop_after` more steps); checkpoints, evals and samples on schedule."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        end = cfg.steps if stop_after is None else min(cfg.steps, self.step + stop_after)
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress, desc=f"{cfg.stage}")
        t0 = time.perf_counter()
        while self.step < end:
            row = self.train_step()
            bar.update(1)
            if row is None:
                continue
            row["sec_per_step"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            is_best = False
            if self.val_items and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                row.update(self.evaluate())
                score = row["val_dur_within_1"]
                is_best = self.best is None or score > self.best
                self.best = max(score, self.best or score)
            if self.step % cfg.log_every == 0 or "val_dur_within_1" in row:
                self._log(row)
                bar.set_postfix(loss=f"{row['loss']:.3f}")
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps or is_best:
                self.save_checkpoint(is_best=is_best)
            if voice_pack is not None and (self.step % cfg.sample_every == 0 or self.step == cfg.steps):
                self.write_sample(voice_pack)
        bar.close()
        return self.history

    def save_adapter(self, name: str = "adapter", extra: dict | None = None) -> Path:
        meta = {
            "stage": self.cfg.stage,
            "steps": self.step,
            "config": dataclasses.asdict(self.cfg),
            **self.metadata,
            **(extra or {}),
        }
        if self.history:
            meta["last"] = {k: v for k, v in self.history[-1].items() if isinstance(v, (int, float))}
        st, _ = save_adapter(self.model, self.out / name, meta)
        return st


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


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
    p.add_argument("--design", default="layerwise", choices=["layerwise", "single"])
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if flag in ("--out-dir",):
            flag = "--out"
        kind = type(f.default)
        if kind is bool:
            p.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=None)
        else:
            p.add_argument(flag, type=kind, default=None, dest=f.name)
    return p


def main(argv: list[str] | None = None) -> Path:
    from .loading import load_kokoro
    from .peft import load_adapter
    from .settings import Settings
    from .surgery import replace_duration_encoder

    args = _build_parser().parse_args(argv)
    S = Settings.from_env(**({"mode": args.mode} if args.mode else {}))
    overrides = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    cfg = TrainConfig.for_mode(S.mode, overrides.pop("stage", "distill"), **overrides)
    S.seed_everything(cfg.seed)
    kokoro = load_kokoro(args.weights, device=args.device or S.device)
    report = replace_duration_encoder(kokoro.model, SurgeryConfig(design=args.design))
    if args.init_adapter:
        load_adapter(kokoro.model, args.init_adapter)
    pack = kokoro.voice(args.voice)
    train_items, val_items = items_for_stage(kokoro, cfg.stage, S, corpus=args.corpus, data=args.data)
    trainer = Trainer(
        kokoro.model,
        report.removed,
        train_items,
        cfg,
        val_items,
        metadata={"weights": kokoro.source, "voice": args.voice},
    )
    print(trainable_summary(kokoro.model))
    if args.resume:
        trainer.resume()
    trainer.fit(voice_pack=pack)
    path = trainer.save_adapter()
    print(
        json.dumps(
            {"adapter": str(path), **{k: v for k, v in trainer.history[-1].items() if isinstance(v, float)}},
            indent=1,
        )
    )
    return path


if __name__ == "__main__":
    main()
