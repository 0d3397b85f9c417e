"""CfC time spans: unit time vs a learned per-token span, on a short layer-matching distillation (CPU).

    python benchmarks/bench_cfc_timespan.py                      # 40 steps per variant, seed 0
    python benchmarks/bench_cfc_timespan.py --steps 80 --seeds 0,1

Both students start from the same cells (the learned span starts at exactly 1 and draws no random numbers),
see the same batches and voices, and take the same phase-1 steps of the recipe (each BiCfC learns its own LSTM
layer on the teacher's inputs, helpers.train.layerwise; AdamW, lr 1e-3). Reported per variant: the held-out
layer-match MSE (mean over the 3 layers, on the corpus's validation sentences), the seconds per step, and for
the learned variant the spread of its spans on the held-out tokens. A CPU-sized probe, not a full run.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--seeds", default="0")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--val", type=int, default=32, help="held-out sentences")
    p.add_argument("--weights", default="offline-int8")
    a = p.parse_args(argv)

    import numpy as np
    import torch

    from helpers.data.text_corpus import prepare_text_corpus
    from helpers.kokoro.forward import upstream_features
    from helpers.kokoro.loading import load_kokoro
    from helpers.settings import Settings
    from helpers.train.config import TrainConfig
    from helpers.train.items import as_train_items, collate, restyle
    from helpers.train.layerwise import layer_match_loss, teacher_trace
    from helpers.train.recipe import CFC_DESIGN, TRAIN_VOICES
    from helpers.train.trainer import Trainer
    from helpers.transplant.surgery import replace_duration_encoder, restore

    S = Settings.from_env(mode="full", device="cpu")
    kokoro = load_kokoro(a.weights, device="cpu", verbose=False)
    text = prepare_text_corpus(kokoro, S.data_dir / "text" / "sentences.txt", S, progress=False, verbose=False)
    train, val = as_train_items(text.train), as_train_items(text.val)[: a.val]
    bank = {v: kokoro.voice(v) for v in TRAIN_VOICES}
    val_batches = []
    for i in range(0, len(val), a.batch_size):
        b = collate(val[i : i + a.batch_size])
        restyle(b, bank, np.random.default_rng([1, i]))
        with torch.no_grad():
            b.d_en = upstream_features(kokoro.model, b.ids, b.pad)  # (B, 512, T)
        val_batches.append(b)
    print(f"threads {torch.get_num_threads()}, {len(train)} training / {len(val)} held-out sentences, "
          f"{a.steps} steps of batch {a.batch_size} per variant")  # fmt: skip
    print(f"{'time span':>10} {'seed':>4} {'held-out layer MSE':>19} {'s/step':>7}  spans (held-out tokens)")
    for seed in (int(s) for s in a.seeds.split(",")):
        for span in ("unit", "learned"):
            torch.manual_seed(seed)
            report = replace_duration_encoder(kokoro.model, dataclasses.replace(CFC_DESIGN, cfc_timespan=span))
            cfg = TrainConfig(
                stage="distill", steps=a.steps, layer_steps=a.steps, chain_fraction=0.0, batch_size=a.batch_size, lr=1e-3,
                warmup_steps=5, seed=seed, log_every=10**9, eval_every=10**9, ckpt_every=10**9,
                sample_every=10**9, out_dir=tempfile.mkdtemp(),
            )  # fmt: skip
            trainer = Trainer(kokoro.model, report.removed, train, cfg, voice_bank=bank)
            t = time.perf_counter()
            trainer.fit(progress=False)
            sec = (time.perf_counter() - t) / a.steps
            enc = kokoro.model.predictor.text_encoder.eval()
            losses, spans = [], []
            with torch.no_grad():
                for b in val_batches:
                    s = b.ref_s[:, 128:]
                    trace = teacher_trace(report.removed, b.d_en, s, b.lengths, b.pad)
                    losses.append(float(layer_match_loss(enc, trace, s, b.lengths, b.pad)))
                    if span == "learned":
                        for (h_in, _), block in zip(trace, enc.blocks):
                            spans.append(block.timespans(h_in)[~b.pad])
            note = ""
            if spans:
                ts = torch.cat(spans).flatten()
                note = f"mean {ts.mean():.3f}, 5-95% {ts.quantile(0.05):.3f}-{ts.quantile(0.95):.3f}"
            print(f"{span:>10} {seed:>4} {np.mean(losses):>19.5f} {sec:>7.2f}  {note}", flush=True)
            restore(kokoro.model, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
