"""Stage-1 quality within a time budget: how close does the Mamba student get to the LSTM teacher?

    python benchmarks/eval_distillation.py --minutes 10            # CPU, offline weights
    python benchmarks/eval_distillation.py --minutes 60 --device cuda --batch-size 32

Trains the default layerwise surgery on the text corpus's training split for the given wall-clock budget,
then reports on the held-out sentences: % tokens whose rounded duration is within 1 frame of the teacher's,
exact agreement, and F0 RMSE (Hz) on voiced frames (both F0 curves on the teacher's alignment). Targets of
the full recipe: >= 90% within 1 frame and <= 10 Hz. The adapter is saved in the run folder.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N corpus sentences")
    ap.add_argument("--out", default=str(ROOT / "runs" / "eval_distill"))
    args = ap.parse_args()

    import torch

    from helpers.data.text_corpus import prepare_text_corpus
    from helpers.kokoro.loading import load_kokoro
    from helpers.settings import Settings
    from helpers.train.config import TrainConfig
    from helpers.train.items import as_train_items
    from helpers.train.trainer import Trainer
    from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    S = Settings.from_env(mode="full")
    S.device = device
    kokoro = load_kokoro("auto", device=device)
    report = replace_duration_encoder(kokoro.model, SurgeryConfig())
    corpus = prepare_text_corpus(kokoro, ROOT / "data/text/sentences.txt", S, limit=args.limit)
    train, val = as_train_items(corpus.train), as_train_items(corpus.val)
    budget = args.minutes * 60
    cfg = TrainConfig.for_mode(
        "full",
        "distill",
        batch_size=args.batch_size,
        lr=args.lr,
        out_dir=args.out,
        steps=100_000,
        warmup_steps=50,
        eval_every=10**9,
        sample_every=10**9,
        ckpt_every=200,
    )
    tr = Trainer(kokoro.model, report.removed, train, cfg, val, metadata={"weights": kokoro.source})
    before = tr.evaluate(val, max_items=len(val))
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < budget:
        tr.fit(progress=False, stop_after=5)
    wall = time.perf_counter() - t0
    after = tr.evaluate(val, max_items=len(val))
    tr.save_adapter(extra={"val": after, "wall_s": wall})
    last = tr.history[-1] if tr.history else {}
    print(
        f"\nStage-1 distillation on {device}, weights {kokoro.source}, {len(train)} train / {len(val)} held-out sentences"
    )
    print(f"{'':24} {'steps':>6} {'wall min':>8} {'dur within 1':>12} {'F0 RMSE Hz':>10} {'loss':>8}")
    print(
        f"{'before training':24} {0:6d} {0:8.1f} {100 * before['val_dur_within_1']:11.1f}% {before['val_f0_rmse_hz']:10.1f} {'':>8}"
    )
    print(
        f"{'after':24} {tr.step:6d} {wall / 60:8.1f} {100 * after['val_dur_within_1']:11.1f}% {after['val_f0_rmse_hz']:10.1f} "
        f"{last.get('loss', float('nan')):8.3f}"
    )
    print("targets of the full recipe: >= 90% within 1 frame, <= 10 Hz")


if __name__ == "__main__":
    main()
