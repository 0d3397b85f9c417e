"""The loss of one training step, one function per stage and phase; `Trainer.compute_loss` picks one:

    stage 1, phase 1   layer_matching(tr, batch)   each block vs its own LSTM layer (helpers.train.layerwise)
    stage 1, phase 2   distillation(tr, batch)     the student vs the LSTM teacher, end to end
    stage 2            fine_tuning(tr, batch)      the student vs the recording's targets

Each takes the Trainer (its cfg, model, teacher, the student as trained, device, step) and a batch whose
frozen upstream features are in place, and returns (loss, logged): the weighted sum of its terms
(`weighted`, the weights are TrainConfig's `w_*`) and each term as a float for the run log. The end-to-end
phases share one path (helpers.kokoro.forward):

    d_s    = encode(model, d_en, s, lengths, pad, encoder=student)   (B, T, 640)
    logits = duration_logits(model, d_s, lengths)                     (B, T, 50)
    dur    = the teacher's durations (stage 1) or the recording's (stage 2)   (B, T)
    per utterance b drawn (`draw_prosody_items`; F0/N use InstanceNorm, which padding would corrupt):
        f0_energy(model, d_s[b], dur[b], s[b])                        (2 F_b,) each, vs the reference's curves
        stage 2, the first mel_items of them: decode a W-frame crop   (600 W,) vs the recording's log-mel

The teacher's outputs are targets: computed without gradients, in fp32 outside the student's autocast
(helpers.train.precision). The order of the calls is part of the contract: the mel crops draw from torch's
RNG, which checkpoints carry, so exact resume depends on it.
"""

from __future__ import annotations

import torch

from helpers.kokoro.forward import duration_logits, durations_from_logits, encode, f0_energy
from helpers.train import losses as L
from helpers.train.items import Batch, draw_prosody_items, prosody_mask, target_durations
from helpers.train.layerwise import layer_match_loss, teacher_trace
from helpers.train.precision import fp32
from helpers.train.runlog import rank_and_world

WEIGHTS = {  # loss term -> its TrainConfig weight
    "layer": "w_layer",
    "feature": "w_feature",
    "dur_l1": "w_dur_l1",
    "dur_bce": "w_dur_bce",
    "dur_cum": "w_dur_cum",
    "f0": "w_f0",
    "energy": "w_energy",
    "mel": "w_mel",
}


def weighted(cfg, terms: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """(sum of cfg's weight x term, each term as a float)."""
    total = sum(getattr(cfg, WEIGHTS[k]) * v for k, v in terms.items())
    return total, {k: float(v.detach()) for k, v in terms.items()}


def _mean(terms: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(terms).mean()


def layer_matching(tr, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """Stage 1, phase 1: each student block against its LSTM layer, on the teacher's inputs (teacher-forced)
    or, once the run is past `chain_start`, on the student's own (chained)."""
    if rank_and_world()[1] > 1:
        raise NotImplementedError("the layer-matching phase runs in one process (layer_steps=0 under torchrun)")
    s = batch.ref_s[:, 128:]  # (B, 128) prosody style
    with fp32(tr.device):  # the teacher's layer outputs are targets: never in reduced precision
        trace = teacher_trace(tr.teacher, batch.d_en, s, batch.lengths, batch.pad)  # [(h (B,T,640), y (B,T,512))]
    chained = tr.chained()
    layer = layer_match_loss(tr.model.predictor.text_encoder, trace, s, batch.lengths, batch.pad, chained)
    total, logged = weighted(tr.cfg, {"layer": layer})
    return total, {**logged, "chained": float(chained)}


def distillation(tr, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """Stage 1, phase 2: the student against the LSTM teacher: DurationEncoder features, durations (per token
    and, with w_dur_cum, their running sums) and F0/N, both on the teacher's durations."""
    cfg, model = tr.cfg, tr.model
    s, valid = batch.ref_s[:, 128:], ~batch.pad  # (B, 128) prosody style, (B, T)
    d_s = encode(model, batch.d_en, s, batch.lengths, batch.pad, encoder=tr.student)  # (B, T, 640)
    logits_s = duration_logits(model, d_s, batch.lengths)  # (B, T, 50)
    with torch.no_grad(), fp32(tr.device):  # targets: fp32, outside the student's autocast
        d_t = encode(model, batch.d_en, s, batch.lengths, batch.pad, encoder=tr.teacher)  # (B, T, 640)
        logits_t = duration_logits(model, d_t, batch.lengths)  # (B, T, 50)
        dur = durations_from_logits(logits_t)  # (B, T) the teacher's alignment
    terms = {"feature": L.feature_loss(d_s, d_t, valid)}
    terms["dur_l1"], terms["dur_bce"] = L.duration_loss(logits_s, torch.sigmoid(logits_t), valid)
    if cfg.w_dur_cum:
        terms["dur_cum"] = L.cumulative_duration_loss(logits_s, torch.sigmoid(logits_t), valid)
    f0_terms, n_terms = [], []
    for b in draw_prosody_items(len(batch.items), cfg.prosody_items, cfg.seed, tr.step):
        n = int(batch.lengths[b])
        f0_s, n_s = f0_energy(model, d_s[b, :n], dur[b, :n], s[b : b + 1])  # (2F,) each
        with torch.no_grad(), fp32(tr.device):
            f0_t, n_t = f0_energy(model, d_t[b, :n], dur[b, :n], s[b : b + 1])  # (2F,) each
        f0_terms.append(L.f0_loss(f0_s, f0_t))
        n_terms.append(L.energy_loss(n_s, n_t))
    if f0_terms:  # prosody_items=0: no F0/N passes
        terms["f0"], terms["energy"] = _mean(f0_terms), _mean(n_terms)
    return weighted(cfg, terms)


def fine_tuning(tr, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
    """Stage 2: the student against the recording: durations on the spoken tokens (BOS/EOS and the punctuation
    next to them hold the recording's silences), F0 on its voiced frames and energy, both on the recorded
    durations, and the log-mel of a decoded crop for the first `mel_items` utterances drawn."""
    cfg, model = tr.cfg, tr.model
    s = batch.ref_s[:, 128:]  # (B, 128) prosody style
    d_s = encode(model, batch.d_en, s, batch.lengths, batch.pad, encoder=tr.student)  # (B, T, 640)
    logits_s = duration_logits(model, d_s, batch.lengths)  # (B, T, 50)
    dur = target_durations(batch)  # (B, T)
    terms = {}
    terms["dur_l1"], terms["dur_bce"] = L.duration_loss(logits_s, L.duration_targets(dur), prosody_mask(batch))
    f0_terms, n_terms, mel_terms = [], [], []
    for j, b in enumerate(draw_prosody_items(len(batch.items), cfg.prosody_items, cfg.seed, tr.step)):
        n, item = int(batch.lengths[b]), batch.items[b]
        f0_s, n_s = f0_energy(model, d_s[b, :n], dur[b, :n], s[b : b + 1])  # (2F,) each
        f0_t = torch.as_tensor(item.f0, device=tr.device)  # (2F,) Hz, 0 = unvoiced
        n_t = torch.as_tensor(item.energy, device=tr.device)  # (2F,)
        f0_terms.append(L.f0_loss(f0_s, f0_t, voiced=f0_t > 0))
        n_terms.append(L.energy_loss(n_s, n_t))
        if j < cfg.mel_items:  # the decoder on a crop (its start from torch's RNG)
            args = (batch.ids[b, :n], batch.ref_s[b : b + 1], f0_s, n_s, dur[b, :n], cfg.mel_crop_frames)
            mel_terms.append(L.cropped_mel_loss(model, item.mel, *args))
    if f0_terms:  # prosody_items=0: no F0/N passes (and so no mel term either)
        terms["f0"], terms["energy"] = _mean(f0_terms), _mean(n_terms)
    if mel_terms:
        terms["mel"] = _mean(mel_terms)
    return weighted(cfg, terms)
