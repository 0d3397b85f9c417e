"""A student's prosody against a reference's, one utterance: the comparison every scorer of the workbook makes.

    pair = prosody_pair(model, s, d, durations, ref_durations, ref_d=d_teacher)    the reference is an encoder
    pair = prosody_pair(model, s, d, durations, ref_durations, ref_f0=f0)          ... or given curves
    pair.spoken(token_ids).scores()     one utterance: evaluate's columns (duration and F0 errors)
    pooled(pairs)                       many utterances: tokens, edges and frames pooled

The rule, defined here once: the student's durations are its own (free); its F0 and energy are computed on the
*reference's* durations, so both curves share one time grid (helpers.compare.metrics says why). The reference is
either another DurationEncoder's output (the LSTM teacher: its durations and curves come from the same model's
F0/N branch) or given curves (a recording's targets, another system's synthesis).

Its callers, each with its own reference and summary:

    helpers.train.selection.held_out_scores        the Trainer's dev scores: vs the teacher (stage 1) or the
                                                   recordings' targets (stage 2, spoken tokens)
    helpers.compare.distillation                   the distillation bar: vs the teacher, per voice
    helpers.compare.evaluation                     notebook 06's rows: vs the recordings and vs the reference
                                                   system's synthesis
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from helpers.compare import metrics as M
from helpers.kokoro.forward import f0_energy
from helpers.kokoro.g2p import spoken_tokens


def _array(x) -> np.ndarray | None:
    """Tensors to NumPy (float curves in float32); arrays as they are (their dtype kept)."""
    if x is None or not isinstance(x, torch.Tensor):
        return None if x is None else np.asarray(x)
    return (x.float() if x.is_floating_point() else x).detach().cpu().numpy()


@dataclass
class ProsodyPair:
    """One utterance's prosody by a student and by its reference, on the reference's time grid (NumPy)."""

    durations: np.ndarray  # (T,) the student's own durations, frames of 25 ms
    ref_durations: np.ndarray  # (T,)
    f0: np.ndarray | None = None  # (2F,) Hz: the student's F0 on ref_durations (None: no reference curve)
    ref_f0: np.ndarray | None = None  # (2F,) Hz, 0 = unvoiced
    energy: np.ndarray | None = None  # (2F,) the student's N curve on ref_durations
    ref_energy: np.ndarray | None = None  # (2F,)

    def spoken(self, token_ids) -> ProsodyPair:
        """Durations on the spoken tokens only (`spoken_tokens`): against a recording, BOS/EOS and the
        punctuation next to them hold its leading and trailing silences, which no text predicts."""
        keep = spoken_tokens(token_ids)  # (T,) bool
        return replace(self, durations=self.durations[keep], ref_durations=self.ref_durations[keep])

    def scores(self) -> dict[str, float]:
        """This utterance's duration errors and, with a reference curve, its F0 errors (helpers.compare.metrics)."""
        out = M.duration_errors(self.durations, self.ref_durations)
        if self.f0 is not None:
            out.update(M.f0_errors(self.f0, self.ref_f0))
        return out


@torch.no_grad()
def prosody_pair(
    model: nn.Module,
    s: torch.Tensor,
    d: torch.Tensor,
    durations,
    ref_durations,
    ref_d: torch.Tensor | None = None,
    ref_f0=None,
    ref_energy=None,
) -> ProsodyPair:
    """One utterance, the student against its reference.

    model: the Kokoro whose F0/N branch turns DurationEncoder outputs into curves; s (1, 128) the prosody style;
    d (T, 640) the student's DurationEncoder output and `durations` (T,) its own; ref_durations (T,) the
    reference's. The reference's curves: from its DurationEncoder output `ref_d` (T, 640) by the same branch,
    or given as `ref_f0` (2F,) and optionally `ref_energy` (2F,); with neither, durations only. A given F0 that
    misses a frame or two of the durations' grid (a recording's pYIN) is compared on the frames both have.
    """
    pair = ProsodyPair(_array(durations), _array(ref_durations))
    if ref_d is None and ref_f0 is None:
        return pair
    dur_ref = torch.as_tensor(ref_durations, device=d.device).long()  # (T,)
    f0, n = f0_energy(model, d, dur_ref, s)  # (2F,) each: the student on the reference's grid
    if ref_d is not None:
        ref_f0, ref_energy = f0_energy(model, ref_d, dur_ref, s)  # (2F,) each
    f0, ref_f0, n, ref_energy = _array(f0), _array(ref_f0), _array(n), _array(ref_energy)
    m = min(len(f0), len(ref_f0))  # equal, but for a given curve a frame or two off the grid
    ref_energy = None if ref_energy is None else ref_energy[:m]
    return replace(pair, f0=f0[:m], ref_f0=ref_f0[:m], energy=n[:m], ref_energy=ref_energy)


def _nanmean(values) -> float:
    v = np.asarray(values, dtype=float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def pooled(pairs: list[ProsodyPair]) -> dict[str, float]:
    """Many utterances, pooled: tokens for the duration shares, inner token edges for the drift, frames voiced in
    both for the F0 RMSE; `boundary_mae_ms` is the mean over utterances of each one's mean edge error.

    within_1_pct, exact_pct (% tokens), drift_ms and drift_p95_ms (every inner edge), boundary_mae_ms and
    boundary_tempo_ms (its tempo-normalised twin, the mean over utterances where it is defined),
    f0_rmse_hz and energy_mae (NaN unless every pair has both curves), sentences, tokens.
    """
    cat = lambda name: np.concatenate([getattr(p, name) for p in pairs])
    has = lambda *names: all(getattr(p, k) is not None for p in pairs for k in names)
    dur, ref = cat("durations"), cat("ref_durations")
    drift = np.concatenate([M.boundary_errors_ms(p.durations, p.ref_durations) for p in pairs])  # (edges,) ms
    nan = float("nan")
    return {
        "within_1_pct": M.duration_within(dur, ref, 1),
        "exact_pct": M.duration_within(dur, ref, 0),
        "drift_ms": float(drift.mean()) if drift.size else nan,
        "drift_p95_ms": float(np.percentile(drift, 95)) if drift.size else nan,
        "boundary_mae_ms": float(np.mean([M.boundary_mae_ms(p.durations, p.ref_durations) for p in pairs])),
        "boundary_tempo_ms": _nanmean([M.tempo_boundary_mae_ms(p.durations, p.ref_durations) for p in pairs]),
        "f0_rmse_hz": M.f0_rmse(cat("f0"), cat("ref_f0")) if has("f0") else nan,
        "energy_mae": float(np.abs(cat("energy") - cat("ref_energy")).mean())
        if has("energy", "ref_energy")
        else nan,
        "sentences": len(pairs),
        "tokens": int(ref.size),
    }
