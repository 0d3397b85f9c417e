"""Why the teacher's targets are computed in fp32: its durations in fp32 vs under a bf16 autocast.

The trainer used to compute the LSTM teacher's durations (round(sum of 50 sigmoids)) inside the student's bf16
autocast. This script measures what that does to the targets on real Kokoro: the held-out sentences, three
voices, the teacher's DurationEncoder and duration head once in fp32 and once under
`torch.autocast(device, bfloat16)`, and reports how far the continuous durations move (RMS, max, frames) and
how many rounded durations flip. The drift bar needs the continuous durations within ~0.1 frame RMS
(benchmarks/bench_drift_floor.py).

    python benchmarks/bench_bf16_targets.py                  # CPU autocast (its own bf16 op list)
    python benchmarks/bench_bf16_targets.py --device cuda

Measured (offline-int8, CPU autocast, 24 held-out sentences x af_heart, am_michael, jf_alpha, 5,088 tokens):
0.004 frames RMS, max 0.12 frames; 0.2% of the rounded durations flip. CPU autocast casts fewer ops than CUDA's
(the LSTM may stay fp32 there), so this is a lower bound for a GPU; the GPU figure is still to be measured.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from helpers.compare.distillation import _phonemized
from helpers.kokoro.forward import duration_logits, encode, style_for, upstream_features
from helpers.kokoro.loading import load_kokoro
from helpers.settings import Settings


@torch.no_grad()
def continuous_durations(model, ids, s, bf16: bool, device: str) -> torch.Tensor:
    """(T,) sum of the duration head's sigmoids for one sentence, fp32 or under a bf16 autocast."""
    ids = torch.as_tensor(ids, device=device)[None]  # (1, T)
    pad = torch.zeros_like(ids, dtype=torch.bool)
    lengths = torch.tensor([ids.shape[1]])
    d_en = upstream_features(model, ids, pad)  # (1, 512, T) fp32: the trainer computes it outside the autocast
    with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):  # as the teacher's forward used to run
        d = encode(model, d_en, s, lengths, pad)  # (1, T, 640)
        logits = duration_logits(model, d, lengths)  # (1, T, 50)
    return torch.sigmoid(logits.float()).sum(-1)[0]  # (T,)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--voices", default="af_heart,am_michael,jf_alpha")
    p.add_argument("--limit", type=int, default=48)
    a = p.parse_args(argv)
    S = Settings.from_env(mode="full", device=a.device)
    kokoro = load_kokoro("auto", device=a.device, verbose=False)
    lines = (S.data_dir / "text" / "heldout.txt").read_text(encoding="utf-8").splitlines()
    sentences, _ = _phonemized([ln.strip() for ln in lines if ln.strip()][: a.limit])
    errors, flips, tokens = [], 0, 0
    for voice in a.voices.split(","):
        pack = kokoro.voice(voice).to(a.device)
        for ps, ids in sentences:
            s = style_for(pack, len(ps))[:, 128:].to(a.device)  # (1, 128)
            full = continuous_durations(kokoro.model, ids, s, False, a.device)
            half = continuous_durations(kokoro.model, ids, s, True, a.device)
            errors.append((half - full).cpu().numpy())
            rounded = lambda x: torch.round(x).clamp(min=1)
            flips += int((rounded(half) != rounded(full)).sum())
            tokens += int(full.numel())
    err = np.concatenate(errors)
    out = {"weights": kokoro.source, "device": a.device, "sentences": len(sentences), "voices": a.voices,
           "tokens": tokens, "rms_frames": float(np.sqrt((err**2).mean())), "max_frames": float(np.abs(err).max()),
           "flipped_pct": 100.0 * flips / tokens}  # fmt: skip
    print(
        f"{out['weights']} on {a.device}, {len(sentences)} sentences x {len(a.voices.split(','))} voices, "
        f"{tokens} tokens: bf16 autocast moves the teacher's continuous durations by {out['rms_frames']:.3f} "
        f"frames RMS (max {out['max_frames']:.2f}); {out['flipped_pct']:.1f}% of the rounded durations flip"
    )
    return out


if __name__ == "__main__":
    main()
