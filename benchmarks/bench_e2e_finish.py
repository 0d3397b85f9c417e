"""Variant E of results/distill-cpu/README.md: an end-to-end finish from the shipped layer-matched adapter.

Starts from `results/distill-cpu/adapter`, builds a *fresh* AdamW at a low learning rate (so no optimizer state
from the layer-matching phase survives) and trains with the end-to-end distillation losses (features, durations
L1 + BCE, the drift loss on token edges, F0/N on one item per batch), printing the held-out figures every
`--every` steps on the first 16 held-out sentences x 3 voices (within 1 frame / exact / drift ms / F0 Hz).

    python benchmarks/bench_e2e_finish.py --lr 1e-4 --w-dur-cum 1.0 --steps 400 --every 50
"""

from __future__ import annotations

import argparse
import time

from safetensors.torch import load_file

from helpers.compare.distillation import evaluate_distillation
from helpers.data.text_corpus import prepare_text_corpus
from helpers.kokoro.loading import load_kokoro
from helpers.settings import Settings
from helpers.train.config import TrainConfig
from helpers.train.items import as_train_items
from helpers.train.recipe import DESIGN, EVAL_VOICES, TRAIN_VOICES
from helpers.train.trainer import Trainer
from helpers.transplant.adapters import SHIPPED_ADAPTER, adapter_paths
from helpers.transplant.surgery import replace_duration_encoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--w-dur-cum", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--out", default="runs/bench/e2e-finish")
    a = p.parse_args()
    S = Settings.from_env(mode="full", device="cpu")
    S.seed_everything(0)
    kokoro = load_kokoro("offline-int8", device="cpu")
    items = as_train_items(prepare_text_corpus(kokoro, S.data_dir / "text" / "sentences.txt", S, progress=False).train)
    heldout = [s.strip() for s in (S.data_dir / "text" / "heldout.txt").read_text().splitlines() if s.strip()][:16]
    report = replace_duration_encoder(kokoro.model, DESIGN)
    student = kokoro.model.predictor.text_encoder
    student.load_state_dict({k: v.float() for k, v in load_file(adapter_paths(SHIPPED_ADAPTER)[0]).items()})
    cfg = TrainConfig(stage="distill", steps=a.steps, batch_size=16, lr=a.lr, warmup_steps=10, seed=1, log_every=1,
                      eval_every=10**9, ckpt_every=10**9, sample_every=10**9, prosody_items=1, layer_steps=0,
                      w_dur_cum=a.w_dur_cum, out_dir=a.out)  # fmt: skip
    t0, paused = time.perf_counter(), [0.0]

    def held_out(step: int) -> None:
        t = time.perf_counter()
        r = evaluate_distillation(kokoro, student, heldout, list(EVAL_VOICES), teacher=report.removed, progress=False)
        student.train()
        cells = " | ".join(f"{v}: {o['within_1_pct']:.1f}/{o['exact_pct']:.1f}/{o['drift_ms']:.1f}/{o['f0_rmse_hz']:.1f}"
                           for v, o in r["voices"].items())  # fmt: skip
        print(f"step {step}, {(t - t0 - paused[0]) / 60:.1f} min of training | {cells}", flush=True)
        paused[0] += time.perf_counter() - t

    def every(row: dict, trainer: Trainer) -> None:
        if trainer.step % a.every == 0:
            held_out(trainer.step)

    trainer = Trainer(kokoro.model, report.removed, items, cfg, callbacks=[every],
                      voice_bank={v: kokoro.voice(v) for v in TRAIN_VOICES})  # fmt: skip
    held_out(0)
    trainer.fit(progress=True)


if __name__ == "__main__":
    main()
