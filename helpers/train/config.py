"""Every knob of a training run (`TrainConfig`), its CI/full defaults, and the learning-rate schedule.

The defaults are stage 1's measured recipe (helpers.train.recipe, results/distill-cpu/README.md): AdamW at 1e-3,
30 warm-up steps, layer matching for the whole budget (`layer_fraction` 1.0) with its second half chained
(`chain_fraction` 0.5), F0/N on one utterance per batch. `layer_fraction` 0 is the end-to-end variant (features,
durations, F0/N through the frozen heads from the first step), still an option and measured worse. Stage 2
(`for_mode(mode, "finetune")`) fine-tunes at 1e-4 with 100 warm-up steps and four F0/N utterances per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from helpers.argtypes import check_ranges
from helpers.settings import runs_root

FINETUNE_DEFAULTS = {"lr": 1e-4, "warmup_steps": 100, "prosody_items": 4}  # stage 2, where it differs from stage 1


class TrainingDiverged(RuntimeError):
    """Too many non-finite losses in a row; the last good checkpoint is kept."""


@dataclass
class TrainConfig:
    """Every knob of a training run. `TrainConfig.for_mode(S.mode, stage)` gives CI or full defaults."""

    stage: str = "distill"  # "distill" (text only, teacher = LSTM) | "finetune" (recordings' targets)
    steps: int = 3000
    batch_size: int = 16
    lr: float = 1e-3  # stage 1's recipe (fresh blocks); for_mode's stage 2: FINETUNE_DEFAULTS
    weight_decay: float = 0.01
    warmup_steps: int = 30
    min_lr_ratio: float = 0.1  # cosine decay to lr * this
    grad_clip: float = 1.0
    precision: str = "auto"  # helpers.train.precision: auto (CUDA: bf16 if native, else fp16 + scaler) | fp32 | ...
    seed: int = 0
    log_every: int = 10
    eval_every: int = 250
    eval_items: int = 16  # held-out items scored at each evaluation (the first N); stage 2 full mode: 64 dev clips
    ckpt_every: int = 250
    sample_every: int = 500
    keep_last: int = 3
    max_bad_steps: int = 5  # consecutive non-finite losses before stopping
    # loss weights
    w_feature: float = 1.0
    w_dur_l1: float = 1.0
    w_dur_bce: float = 1.0
    w_dur_cum: float = 0.0  # distill: L1 on cumulative durations (token edges); the recipe measures its effect
    w_f0: float = 1.0
    w_energy: float = 1.0
    w_mel: float = 5.0  # stage 2 only
    prosody_items: int = 1  # per batch, utterances that also get F0/N losses (each is a B=1 pass)
    layer_fraction: float = 1.0  # distill: the recipe's share of its planned steps spent layer matching (0: end to end)
    layer_steps: int = 0  # distill: the first N steps match each block to its LSTM layer only (layerwise.py); the
    #                       recipe sets it to layer_fraction x the steps it plans, for_mode to layer_fraction x steps
    w_layer: float = 1.0  # weight of that layer-matching loss
    chain_fraction: float = 0.5  # the last share of those steps feeds each block the student's own input (chained);
    #                              the switch step is fixed when training starts (Trainer.chain_start)
    mel_items: int = 1  # stage 2: utterances per batch that go through the decoder
    mel_crop_frames: int = 32  # stage 2: decoder on crops of this many 25 ms frames
    train_norms: bool = False
    train_whole_predictor: bool = False  # benchmark: everything in the predictor trainable
    out_dir: str = "runs/full/distill"  # for_mode: runs/<mode>/<stage>; the CLI: Settings.runs_dir / stage
    sample_text: str = "The quick brown fox jumps over the lazy dog, and then it rests."

    def __post_init__(self) -> None:
        if self.stage not in ("distill", "finetune"):
            raise ValueError(f"stage must be 'distill' or 'finetune', got {self.stage!r}")
        check_ranges(self)  # helpers.argtypes.RANGES: e.g. steps >= 1, grad_clip > 0

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
            if stage == "finetune":  # every step choice is made on the dev clips: score (nearly) all of them
                base["eval_items"] = 64
        if stage == "finetune":
            base = {**FINETUNE_DEFAULTS, **base}
        base.update(stage=stage, out_dir=str(runs_root() / mode / stage))  # one run folder per mode
        base.update(overrides)
        if stage == "distill" and "layer_steps" not in overrides:  # the recipe's layer matching, for these steps
            fraction = base.get("layer_fraction", cls.layer_fraction)
            base["layer_steps"] = round(fraction * base.get("steps", cls.steps))
        return cls(**base)


def _lr_lambda(cfg: TrainConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / max(1, cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f

