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

import torch
from torch import nn

from helpers.compare.scoring import pooled, prosody_pair
from helpers.kokoro.forward import duration_logits, durations_from_logits, encode
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
    """The student against the reference on held-out items (helpers.compare.scoring, pooled over the items):
    durations within 1 frame (a share), token-boundary error plain and tempo-normalised (ms, means over items),
    F0 RMSE (Hz, frames voiced in both).

    Reference: the teacher in stage 1; the recording's targets in stage 2. The student's F0 is computed
    on the reference's durations, so both curves share one time grid. Stage 2 leaves out the durations of
    BOS/EOS and the punctuation next to them (the recording's silences, `ProsodyPair.spoken`): token edges
    count from the onset of speech.
    """
    if not items:
        return {}
    was_training = trainer.model.predictor.text_encoder.training
    trainer.model.eval()
    model, pairs = trainer.model, []
    for it in items:
        batch = collate([it]).to(trainer.device)
        batch.d_en = trainer._cached_upstream(batch)  # (1, 512, T)
        s, lengths, pad = batch.ref_s[:, 128:], batch.lengths, batch.pad  # s (1, 128)
        d_s = encode(model, batch.d_en, s, lengths, pad)  # (1, T, 640)
        dur_s = durations_from_logits(duration_logits(model, d_s, lengths))[0]  # (T,)
        if trainer.cfg.stage == "distill" and trainer.teacher is not None:
            d_t = encode(model, batch.d_en, s, lengths, pad, encoder=trainer.teacher)  # (1, T, 640)
            dur_t = durations_from_logits(duration_logits(model, d_t, lengths))[0]  # (T,)
            pair = prosody_pair(model, s, d_s[0], dur_s, dur_t, ref_d=d_t[0])
        else:
            pair = prosody_pair(model, s, d_s[0], dur_s, it.durations, ref_f0=it.f0)
        pairs.append(pair.spoken(it.token_ids) if trainer.cfg.stage == "finetune" else pair)
    trainer.model.predictor.text_encoder.train(was_training)
    summary = pooled(pairs)
    return {
        "val_dur_within_1": summary["within_1_pct"] / 100.0,
        "val_boundary_ms": summary["boundary_mae_ms"],
        "val_boundary_tempo_ms": summary["boundary_tempo_ms"],
        "val_f0_rmse_hz": summary["f0_rmse_hz"],
    }
