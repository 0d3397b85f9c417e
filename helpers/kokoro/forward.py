"""THE forward path: token ids -> prosody -> audio, step by step, shared by synthesis, training and evaluation.

Kokoro's `forward_with_tokens` runs one utterance under no_grad and returns audio and durations only. The
workbook needs the steps one at a time (to train the DurationEncoder, to force durations, to compare two
encoders), so they are written here once, and everything else calls them:

    ids (B, T) right-padded, lengths (B,), pad (B, T) True on padding, ref_s (B, 256)
    d_en   = upstream_features(model, ids, pad)                    (B, 512, T)   ALBERT -> bert_encoder
    d      = encode(model, d_en, s, lengths, pad, encoder=...)     (B, T, 640)   the DurationEncoder (surgery target)
    logits = duration_logits(model, d, lengths)                    (B, T, 50)    packed predictor.lstm -> proj
    dur    = durations_from_logits(logits, speed)                  (B, T)        round(sum sigmoid / speed) >= 1
    per utterance (F0Ntrain and the decoder use InstanceNorm, which padding would corrupt: B = 1):
    aln    = alignment_from_durations(dur_b)                       (T, F)        hard, monotonic
    f0, n  = f0_energy(model, d_b, dur_b, s_b)                     (2F,) each    F0Ntrain on d^T @ aln
    audio  = decode(model, ids_b, aln, f0, n, timbre_b, seed)      (600 F,)      text_encoder @ aln -> decoder

`s = ref_s[:, 128:]` is the prosody style, `ref_s[:, :128]` the decoder's timbre. `encoder=` swaps the
DurationEncoder for another one (the LSTM teacher, a Mamba or CfC student) without touching the model, so
teacher and students are interchangeable arguments of the same path. ALBERT, the DurationEncoder and the
packed LSTM are exact under right padding (a padded batch equals single runs).

`predict_durations` and `synthesize_ids` compose these for one utterance (B = 1).

The decoder draws random sine phases and noise: `seed` makes a run repeatable *without* touching the
global torch RNG (the draw happens inside `torch.random.fork_rng`), so a listening sample in the middle
of training does not change what the training does next.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

STYLE_DIM = 128  # ref_s = [timbre (128) ; prosody (128)]


def style_for(pack: torch.Tensor, n_phonemes: int) -> torch.Tensor:
    """The reference style row Kokoro's pipeline uses: pack[len(phonemes) - 1] -> (1, 256)."""
    row = min(max(n_phonemes - 1, 0), pack.shape[0] - 1)
    return pack[row].reshape(1, -1)


def alignment_from_durations(durations: torch.Tensor) -> torch.Tensor:
    """Hard monotonic alignment (T, F): token t covers durations[t] consecutive frames."""
    T = durations.shape[0]
    frame_token = torch.repeat_interleave(torch.arange(T, device=durations.device), durations)  # (F,)
    aln = torch.zeros(T, frame_token.shape[0], device=durations.device)
    aln[frame_token, torch.arange(frame_token.shape[0], device=durations.device)] = 1.0
    return aln


@torch.no_grad()
def upstream_features(model: nn.Module, ids: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Frozen ALBERT + bert_encoder on a right-padded batch: (B, T) -> d_en (B, 512, T). Exact under padding."""
    bert = model.bert(ids, attention_mask=(~pad).int())  # (B, T, 768)
    return model.bert_encoder(bert).transpose(-1, -2)  # (B, 512, T)


def encode(
    model: nn.Module,
    d_en: torch.Tensor,
    s: torch.Tensor,
    lengths: torch.Tensor,
    pad: torch.Tensor,
    encoder: nn.Module | None = None,
) -> torch.Tensor:
    """The DurationEncoder: d_en (B, 512, T), s (B, 128) -> d (B, T, 640). `encoder` defaults to the model's."""
    enc = model.predictor.text_encoder if encoder is None else encoder
    return enc(d_en, s, lengths, pad)  # (B, T, 640), last 128 channels = s, 0 on padding


def duration_logits(model: nn.Module, d: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Packed predictor.lstm + duration_proj: d (B, T, 640) -> (B, T, 50). Packing keeps padding out."""
    packed = pack_padded_sequence(d, lengths.cpu(), batch_first=True, enforce_sorted=False)
    x, _ = model.predictor.lstm(packed)
    x, _ = pad_packed_sequence(x, batch_first=True, total_length=d.shape[1])  # (B, T, 512)
    return model.predictor.duration_proj(x)  # (B, T, 50)


def durations_from_logits(logits: torch.Tensor, speed: float = 1.0) -> torch.Tensor:
    """(..., 50) logits -> integer durations >= 1 in 25 ms frames, rounded as Kokoro's inference does."""
    return torch.round(torch.sigmoid(logits).sum(-1) / speed).clamp(min=1).long()


def f0_energy(model: nn.Module, d: torch.Tensor, durations: torch.Tensor, s: torch.Tensor):
    """One utterance: d (T, 640), durations (T,), s (1, 128) -> F0 (2F,) in Hz, N (2F,)."""
    aln = alignment_from_durations(durations)  # (T, F)
    en = (d.transpose(0, 1) @ aln).unsqueeze(0)  # (1, 640, F)
    f0, n = model.predictor.F0Ntrain(en, s)  # (1, 2F) each
    return f0[0], n[0]


def decode(
    model: nn.Module,
    ids: torch.Tensor,
    aln: torch.Tensor,
    f0: torch.Tensor,
    n: torch.Tensor,
    timbre: torch.Tensor,
    seed: int | None = 0,
    crop: tuple[int, int] | None = None,
) -> torch.Tensor:
    """One utterance: ids (T,), aln (T, F), f0/n (2F,), timbre (1, 128) -> audio (600 F,) at 24 kHz.

    `seed` fixes the decoder's noise without touching the global RNG; None draws from the global RNG.
    `crop=(a, b)` decodes duration frames a..b only (training's mel loss): audio (600 (b - a),).
    """
    ids = ids.reshape(1, -1)  # (1, T)
    T = ids.shape[1]
    t_en = model.text_encoder(
        ids, torch.full((1,), T, device=ids.device), torch.zeros_like(ids, dtype=torch.bool)
    )  # (1, 512, T)
    asr = t_en @ aln.unsqueeze(0)  # (1, 512, F)
    f0, n = f0.reshape(1, -1), n.reshape(1, -1)  # (1, 2F)
    if crop is not None:
        a, b = crop
        asr, f0, n = asr[:, :, a:b], f0[:, 2 * a : 2 * b], n[:, 2 * a : 2 * b]
    if seed is None:
        return model.decoder(asr, f0, n, timbre).squeeze()
    devices = [ids.device] if ids.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return model.decoder(asr, f0, n, timbre).squeeze()  # (600 F,)


def _single(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    T = ids.shape[1]
    return torch.full((1,), T, dtype=torch.long), torch.zeros(1, T, dtype=torch.bool, device=ids.device)


def predict_durations(
    model: nn.Module, ids: torch.Tensor, ref_s: torch.Tensor, speed: float = 1.0, encoder: nn.Module | None = None
):
    """The text side for one utterance: ids (1, T), ref_s (1, 256) -> (d (1,T,640), logits (1,T,50), dur (T,))."""
    speed = check_speed(speed)
    lengths, pad = _single(ids)
    d_en = upstream_features(model, ids, pad)  # (1, 512, T)
    d = encode(model, d_en, ref_s[:, STYLE_DIM:], lengths, pad, encoder)  # (1, T, 640)
    logits = duration_logits(model, d, lengths)  # (1, T, 50)
    return d, logits, durations_from_logits(logits, speed)[0]


MAX_SPEED = 4.0


def check_speed(speed) -> float:
    """`speed` as a float, or a ValueError: Kokoro divides durations by it, so it must be in (0, MAX_SPEED]."""
    try:
        value = float(speed)
    except (TypeError, ValueError):
        raise ValueError(f"speed must be a number in (0, {MAX_SPEED:g}], got {speed!r}") from None
    if not 0.0 < value <= MAX_SPEED:  # also refuses NaN
        raise ValueError(
            f"speed must satisfy 0 < speed <= {MAX_SPEED:g} (1 = Kokoro's pace, 2 = twice as fast), got {speed!r}"
        )
    return value


def check_durations(durations, n_tokens: int, device) -> torch.Tensor:
    """Forced durations as a (T,) long tensor; a clear error when they do not fit the tokens."""
    dur = torch.as_tensor(np.asarray(durations), dtype=torch.long, device=device).reshape(-1)
    if dur.shape[0] != n_tokens or bool((dur < 1).any()):
        raise ValueError(f"forced durations need {n_tokens} values >= 1, got {tuple(dur.shape)}")
    return dur


@torch.no_grad()
def synthesize_ids(
    model: nn.Module,
    ids: list[int] | torch.Tensor,
    ref_s: torch.Tensor,
    speed: float = 1.0,
    seed: int | None = 0,
    durations: torch.Tensor | np.ndarray | None = None,
    encoder: nn.Module | None = None,
    decoder: bool = True,
) -> dict[str, torch.Tensor]:
    """The whole path for one utterance; `durations` (T,) overrides the predicted ones (teacher forcing).

    `decoder=False` stops after F0/N (the prosody only: much cheaper, no audio). `speed` must satisfy
    0 < speed <= 4 (`check_speed`).
    """
    speed = check_speed(speed)
    device = next(model.parameters()).device
    ids = torch.as_tensor(ids, dtype=torch.long, device=device).reshape(1, -1)  # (1, T)
    ref_s = ref_s.to(device).reshape(1, -1)  # (1, 256)
    d, logits, pred = predict_durations(model, ids, ref_s, speed, encoder)
    dur = pred if durations is None else check_durations(durations, ids.shape[1], device)
    f0, n = f0_energy(model, d[0], dur, ref_s[:, STYLE_DIM:])  # (2F,) each
    out = {"durations": dur, "predicted_durations": pred, "f0": f0, "energy": n, "duration_logits": logits[0], "d": d[0]}
    if decoder:
        out["audio"] = decode(model, ids[0], alignment_from_durations(dur), f0, n, ref_s[:, :STYLE_DIM], seed)
    return out
