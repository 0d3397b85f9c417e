"""Held-out scores (`held_out_scores`, behind `Trainer.evaluate`) and which step's weights a run keeps by them.

The Trainer evaluates on its held-out items every `eval_every` steps (`Trainer.evaluate`) and offers each result
here. Those items are a **dev** split, never a test split: in stage 2 the recordings' dev clips
(helpers.train.stage2 passes `data.dev`; the test clips are notebook 06's verdict and no run reads them), in stage 1
the text corpus's held-out sentences. The keys keep the prefix `val_` (validation = dev). One score decides:

    finetune   val_boundary_tempo_ms  lower is better: token edges vs the dev recordings (ms), tempo-normalised:
                                      notebook 06's declared primary metric (rhythm, not speaking rate)
    distill    val_dur_within_1   higher is better: durations within one frame of the teacher

Stage 2 keeps the dev-best weights: they are what its adapter holds (`keep_weights=True`), so a run that
over-fits the training clips late does not hand its worst state to notebook 06. The kept step's dev scores are
chosen on those very clips, so they are optimistic; only test scores grade it. Stage 1 records its best step
but its adapter is the last state (the layer-matching recipe improves to the end; resume checks it exactly).
The adapter's metadata says which step was kept, by what rule, and its dev scores (`HeldOutBest.metadata`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from helpers.compare import metrics as M
from helpers.kokoro.forward import duration_logits, durations_from_logits, encode, f0_energy
from helpers.kokoro.g2p import spoken_tokens
from helpers.train.items import TrainItem, collate

RULES = {"finetune": ("val_boundary_tempo_ms", "min"), "distill": ("val_dur_within_1", "max")}


class HeldOutBest:
    """The best held-out evaluation of a run so far: its step, its scores and (keep_weights) the student's state."""

    def __init__(self, stage: str, keep_weights: bool | None = None):
        self.metric, self.direction = RULES[stage]
        self.keep_weights = stage == "finetune" if keep_weights is None else keep_weights
        self.step: int | None = None
        self.scores: dict[str, float] = {}
        self.weights: dict[str, torch.Tensor] | None = None  # the student's state_dict at `step`, on the CPU

    @property
    def score(self) -> float | None:
        return self.scores.get(self.metric)

    def better(self, scores: dict[str, float]) -> bool:
        new = scores.get(self.metric)
        if new is None or new != new:  # not evaluated, or NaN: never better
            return False
        if self.score is None:
            return True
        return new < self.score if self.direction == "min" else new > self.score

    def offer(self, step: int, scores: dict[str, float], student: nn.Module) -> bool:
        """Keep `step` when its scores beat the best so far (True); the weights are copied when kept."""
        if not self.better(scores):
            return False
        self.step, self.scores = step, {k: float(v) for k, v in scores.items() if k.startswith("val_")}
        if self.keep_weights:
            self.weights = {k: v.detach().cpu().clone() for k, v in student.state_dict().items()}
        return True

    def state_dict(self) -> dict:
        """For checkpoints: resume must know the best so far, and (stage 2) its weights."""
        return {"step": self.step, "scores": self.scores, "weights": self.weights}

    def load_state_dict(self, state: dict | None) -> None:
        state = state or {}  # checkpoints from before held-out selection: nothing kept yet
        self.step, self.scores, self.weights = (
            state.get("step"),
            dict(state.get("scores") or {}),
            state.get("weights"),
        )

    def metadata(self, last_step: int) -> dict:
        """What an adapter records about the selection: the rule, the step kept and its held-out scores."""
        kept = self.step if self.weights is not None else last_step
        return {
            "selected_by": f"dev {self.metric} ({'lowest' if self.direction == 'min' else 'highest'})",
            "kept_step": kept,
            "best_step": self.step,
            "best_scores": self.scores,
        }


@torch.no_grad()
def held_out_scores(trainer, items: list[TrainItem]) -> dict[str, float]:
    """The student against the reference on held-out items, with the metrics of helpers.compare.metrics:
    durations within 1 frame, token-boundary error (ms) plain and tempo-normalised, F0 RMSE (Hz, frames voiced in
    both).

    Reference: the teacher in stage 1; the recording's targets in stage 2. The student's F0 is computed
    on the reference's durations, so both curves share one time grid. Stage 2 leaves out the durations of
    BOS/EOS and the punctuation next to them (the recording's silences, `prosody_mask`): token edges
    count from the onset of speech.
    """
    if not items:
        return {}
    was_training = trainer.model.predictor.text_encoder.training
    trainer.model.eval()
    durs, refs, f0s, f0_refs, edges_ms, tempo_ms = [], [], [], [], [], []
    for it in items:
        batch = collate([it]).to(trainer.device)
        batch.d_en = trainer._cached_upstream(batch)
        s = batch.ref_s[:, 128:]
        d_s = encode(trainer.model, batch.d_en, s, batch.lengths, batch.pad)  # (1, T, 640)
        dur_s = durations_from_logits(duration_logits(trainer.model, d_s, batch.lengths))[0]  # (T,)
        if trainer.cfg.stage == "distill" and trainer.teacher is not None:
            d_t = encode(trainer.model, batch.d_en, s, batch.lengths, batch.pad, encoder=trainer.teacher)
            dur_ref = durations_from_logits(duration_logits(trainer.model, d_t, batch.lengths))[0]
            f0_ref, _ = f0_energy(trainer.model, d_t[0], dur_ref, s)
        else:
            dur_ref = torch.as_tensor(it.durations, device=trainer.device)
            f0_ref = torch.as_tensor(it.f0, device=trainer.device)
        f0_s, _ = f0_energy(trainer.model, d_s[0], dur_ref, s)
        keep = spoken_tokens(it.token_ids) if trainer.cfg.stage == "finetune" else slice(None)
        durs.append(dur_s.cpu().numpy()[keep])
        refs.append(dur_ref.cpu().numpy()[keep])
        f0s.append(f0_s.float().cpu().numpy())
        f0_refs.append(f0_ref.float().cpu().numpy())
        edges_ms.append(M.boundary_mae_ms(durs[-1], refs[-1]))
        tempo_ms.append(M.tempo_boundary_mae_ms(durs[-1], refs[-1]))
    trainer.model.predictor.text_encoder.train(was_training)
    return {
        "val_dur_within_1": M.duration_within(np.concatenate(durs), np.concatenate(refs)) / 100.0,
        "val_boundary_ms": float(np.mean(edges_ms)),
        "val_boundary_tempo_ms": float(np.nanmean(tempo_ms)) if np.isfinite(tempo_ms).any() else float("nan"),
        "val_f0_rmse_hz": M.f0_rmse(np.concatenate(f0s), np.concatenate(f0_refs)),
    }
