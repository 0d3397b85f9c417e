"""Training speed and memory: stage 1 (distill) and stage 2 (finetune), PEFT (Mamba blocks only) vs the
whole predictor trainable. Prints one table with the ratios side by side.

    python benchmarks/bench_training.py                 # CPU (or CUDA when available), real offline weights
    python benchmarks/bench_training.py --steps 10 --device cuda

Each configuration runs in its own process so that its peak memory is its own: peak RSS on CPU,
torch.cuda.max_memory_allocated on CUDA. Steps/s is measured after warm-up steps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [("distill", False), ("distill", True), ("finetune", False), ("finetune", True)]


def run_one(stage: str, whole: bool, steps: int, warmup: int, device: str, batch: int) -> dict:
    import tempfile

    import torch

    sys.path.insert(0, str(ROOT))
    from helpers.data.prepare import prepare_dataset
    from helpers.data.text_corpus import prepare_text_corpus
    from helpers.kokoro.loading import load_kokoro
    from helpers.settings import Settings
    from helpers.train.config import TrainConfig
    from helpers.train.items import as_train_items
    from helpers.train.trainer import Trainer
    from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

    S = Settings.from_env(mode="ci")
    S.device = device
    kokoro = load_kokoro("offline-int8", device=device, verbose=False)
    report = replace_duration_encoder(kokoro.model, SurgeryConfig())
    if stage == "distill":
        items = as_train_items(
            prepare_text_corpus(
                kokoro, ROOT / "data/text/sentences.txt", S, limit=64, progress=False, verbose=False
            )
        )
    else:
        data = prepare_dataset(kokoro, ROOT / "data/librivox", S, progress=False, verbose=False)
        items = as_train_items(list(data.train) + list(data.dev))
    cfg = TrainConfig.for_mode(
        "full",
        stage,
        batch_size=batch,
        steps=10_000,
        eval_every=10**9,
        ckpt_every=10**9,
        log_every=10**9,
        sample_every=10**9,
        out_dir=tempfile.mkdtemp(),
        train_whole_predictor=whole,
    )
    tr = Trainer(kokoro.model, report.removed, items, cfg)
    for _ in range(warmup):
        tr.train_step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        tr.train_step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    trainable = sum(p.numel() for p in kokoro.model.parameters() if p.requires_grad)
    return {
        "stage": stage,
        "trainable": "whole predictor" if whole else "Mamba blocks (PEFT)",
        "trainable_params": trainable,
        "steps_per_s": steps / dt,
        "sec_per_step": dt / steps,
        "peak_MiB": peak,
        "batch": batch,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default=None)
    ap.add_argument("--one", nargs=2, metavar=("STAGE", "WHOLE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.one:
        stage, whole = args.one[0], args.one[1] == "1"
        batch = 16 if stage == "distill" else 2
        print("RESULT " + json.dumps(run_one(stage, whole, args.steps, args.warmup, device, batch)))
        return
    rows = []
    for stage, whole in CONFIGS:
        cmd = [
            sys.executable,
            __file__,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--device",
            device,
            "--one",
            stage,
            "1" if whole else "0",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        line = next((line for line in out.stdout.splitlines() if line.startswith("RESULT ")), None)
        if line is None:
            print(out.stdout[-2000:], out.stderr[-2000:])
            raise SystemExit(f"{stage}/{whole} failed")
        rows.append(json.loads(line[7:]))
    print(
        f"\nTraining speed and memory on {device} ({torch.get_num_threads()} threads), offline-int8 weights, "
        f"{args.steps} timed steps after {args.warmup} warm-up"
    )
    head = f"{'stage':9} {'trainable':22} {'batch':>5} {'params':>11} {'s/step':>8} {'steps/s':>8} {'peak MiB':>9} {'time x PEFT':>11} {'mem x PEFT':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        base = next(b for b in rows if b["stage"] == r["stage"] and b["trainable"].startswith("Mamba"))
        print(
            f"{r['stage']:9} {r['trainable']:22} {r['batch']:5d} {r['trainable_params']:11,d} {r['sec_per_step']:8.2f} "
            f"{r['steps_per_s']:8.3f} {r['peak_MiB']:9.0f} {r['sec_per_step'] / base['sec_per_step']:11.2f} "
            f"{r['peak_MiB'] / base['peak_MiB']:10.2f}"
        )


if __name__ == "__main__":
    main()
