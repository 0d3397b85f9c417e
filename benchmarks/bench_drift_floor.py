"""How exact must a student be for the drift bar? Drift of slightly perturbed *teachers* next to the shipped student.

Issue 13's drift bar (mean token-boundary drift <= 25 ms) is set on rounded durations: a token's duration is
round(sum of 50 sigmoids), so a continuous error far below one frame still flips some roundings, and the flips
add up along a sentence as a random walk. This script measures that sensitivity directly: it makes "students"
that are the LSTM teacher itself with a known, tiny perturbation (its weights stored in fp16; Gaussian noise
of a given fraction of each weight tensor's std) and scores them with the same held-out evaluation as the
shipped adapter (helpers.compare.distillation), adding the RMS error of the *continuous* durations (frames).

    python benchmarks/bench_drift_floor.py                      # 48 held-out sentences x 3 voices
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch

from helpers.compare.distillation import _phonemized, evaluate_distillation
from helpers.kokoro.forward import duration_logits, encode, style_for, upstream_features
from helpers.kokoro.loading import load_kokoro
from helpers.settings import Settings
from helpers.transplant.adapters import SHIPPED_ADAPTER, encoder_from_adapter


def perturbed(teacher: torch.nn.Module, rel: float | None, seed: int = 0) -> torch.nn.Module:
    """A copy of the teacher with weights rounded to fp16 (rel=None) or plus N(0, rel * std(tensor))."""
    out = copy.deepcopy(teacher).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            if rel is None:
                p.copy_(p.half().float())
            elif p.numel() > 1:
                p.add_(torch.randn(p.shape, generator=g) * rel * p.std())
    return out


@torch.no_grad()
def continuous_rms(kokoro, student, teacher, sentences, voices) -> float:
    """RMS over tokens of (student - teacher) continuous durations, sum of the 50 sigmoids, in frames."""
    model, errs = kokoro.model.eval(), []
    for ps, ids in _phonemized(sentences)[0]:
        ids_t = torch.tensor([ids])  # (1, T)
        pad = torch.zeros_like(ids_t, dtype=torch.bool)
        lengths = torch.tensor([len(ids)])
        d_en = upstream_features(model, ids_t, pad)  # (1, 512, T)
        for v in voices:
            s = style_for(kokoro.voice(v), len(ps))[:, 128:]  # (1, 128)
            cont = [torch.sigmoid(duration_logits(model, encode(model, d_en, s, lengths, pad, encoder=e), lengths)).sum(-1)
                    for e in (student, teacher)]  # fmt: skip
            errs.append((cont[0] - cont[1]).flatten().numpy())
    return float(np.sqrt(np.mean(np.concatenate(errs) ** 2)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--voices", default="af_heart,am_michael,jf_alpha")
    p.add_argument("--noise", default="0.001,0.003,0.01,0.03", help="relative weight noise levels")
    a = p.parse_args()
    S = Settings.from_env(mode="full", device="cpu")
    kokoro = load_kokoro("offline-int8", device="cpu", verbose=False)
    teacher = kokoro.model.predictor.text_encoder.eval()
    sentences = [s.strip() for s in (S.data_dir / "text" / "heldout.txt").read_text().splitlines() if s.strip()]
    voices = a.voices.split(",")
    students = {"teacher, weights in fp16": perturbed(teacher, None)}
    students |= {f"teacher + {float(r):.1%} weight noise": perturbed(teacher, float(r)) for r in a.noise.split(",")}
    students["shipped Mamba (results/distill-cpu)"] = encoder_from_adapter(SHIPPED_ADAPTER)
    print(f"{len(sentences)} held-out sentences x {len(voices)} voices, pooled")
    print(f"{'student':40s} {'within 1':>9s} {'exact':>7s} {'drift ms':>9s} {'p95 ms':>7s} {'cont. RMS (frames)':>19s}")
    for name, st in students.items():
        o = evaluate_distillation(kokoro, st, sentences, voices, teacher=teacher, progress=False)["voices"]["overall"]
        rms = continuous_rms(kokoro, st, teacher, sentences, voices)
        print(f"{name:40s} {o['within_1_pct']:8.1f}% {o['exact_pct']:6.1f}% {o['drift_ms']:9.1f} "
              f"{o['drift_p95_ms']:7.1f} {rms:19.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
