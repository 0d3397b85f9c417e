"""Token ids -> 24 kHz audio, keeping what Kokoro computes on the way (durations, F0, energy).

Kokoro's `forward_with_tokens` returns audio and durations only. The workbook needs the intermediate
prosody too, and sometimes wants to *force* durations (to compare two models frame for frame), so this
module runs the same data flow step by step, for one utterance (B = 1):

    ids (1, T) --ALBERT--> (1, T, 768) --bert_encoder--> d_en (1, 512, T)
    d_en, s_prosody --DurationEncoder--> d (1, T, 640)                      <- the surgery target
    d --predictor.lstm--> (1, T, 512) --duration_proj--> logits (1, T, 50)
    durations = round(sigmoid(logits).sum(-1) / speed).clamp(min=1)      # frames of 25 ms (600 samples)
    alignment (T, F) from durations; en = d^T @ aln (1, 640, F)
    en, s_prosody --F0Ntrain--> F0, N (1, 2F) at 80 Hz (12.5 ms)
    ids --text_encoder--> (1, 512, T) @ aln --> asr (1, 512, F)
    asr, F0, N, s_timbre --decoder--> audio (600 F samples at 24 kHz)

The decoder draws random sine phases and noise: pass `seed` to make two runs comparable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

from .g2p import G2PError, phonemes_to_ids, phonemize

SAMPLE_RATE = 24_000
SAMPLES_PER_FRAME = 600  # one duration frame = 25 ms
SAMPLES_PER_F0_FRAME = 300  # F0 / N frames = 12.5 ms


@dataclass
class Synthesis:
    """One synthesized utterance and the prosody that produced it."""

    audio: np.ndarray  # (samples,) float32 in [-1, 1] at 24 kHz
    phonemes: str
    token_ids: list[int]  # with BOS/EOS (0) at both ends
    durations: np.ndarray  # (T,) int frames of 25 ms, one per token including BOS/EOS
    f0: np.ndarray  # (2F,) Hz, 80 frames per second
    energy: np.ndarray  # (2F,) Kokoro's N curve (log-energy-like, arbitrary units)
    sample_rate: int = SAMPLE_RATE
    extras: dict = field(default_factory=dict, repr=False)

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def n_frames(self) -> int:
        return int(self.durations.sum())


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


def predict_durations(model, ids: torch.Tensor, ref_s: torch.Tensor, speed: float = 1.0):
    """Run the text side for one utterance: returns (d (1,T,640), logits (1,T,50), durations (T,))."""
    T = ids.shape[1]
    lengths = torch.full((1,), T, dtype=torch.long, device=ids.device)
    pad_mask = torch.zeros(1, T, dtype=torch.bool, device=ids.device)  # True = padding
    bert_out = model.bert(ids, attention_mask=(~pad_mask).int())  # (1, T, 768)
    d_en = model.bert_encoder(bert_out).transpose(-1, -2)  # (1, 512, T)
    s = ref_s[:, 128:]  # (1, 128) prosody style
    d = model.predictor.text_encoder(d_en, s, lengths, pad_mask)  # (1, T, 640)
    x, _ = model.predictor.lstm(d)  # (1, T, 512)
    logits = model.predictor.duration_proj(x)  # (1, T, 50)
    durations = torch.round(torch.sigmoid(logits).sum(-1) / speed).clamp(min=1).long().squeeze(0)  # (T,)
    return d, logits, durations


@torch.no_grad()
def synthesize_ids(
    model,
    ids: list[int] | torch.Tensor,
    ref_s: torch.Tensor,
    speed: float = 1.0,
    seed: int | None = 0,
    durations: torch.Tensor | np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """The full forward for one utterance; `durations` (T,) overrides the predicted ones."""
    device = next(model.parameters()).device
    ids = torch.as_tensor(ids, dtype=torch.long, device=device).reshape(1, -1)  # (1, T)
    ref_s = ref_s.to(device)
    d, logits, pred = predict_durations(model, ids, ref_s, speed)
    if durations is not None:
        durations = torch.as_tensor(durations, dtype=torch.long, device=device).reshape(-1)
        if durations.shape[0] != ids.shape[1] or bool((durations < 1).any()):
            raise ValueError(
                f"forced durations need {ids.shape[1]} values >= 1, got {tuple(durations.shape)}"
            )
    else:
        durations = pred
    aln = alignment_from_durations(durations).unsqueeze(0)  # (1, T, F)
    en = d.transpose(-1, -2) @ aln  # (1, 640, F)
    s = ref_s[:, 128:]
    f0, n = model.predictor.F0Ntrain(en, s)  # (1, 2F) each
    t_en = model.text_encoder(
        ids, torch.full((1,), ids.shape[1], device=device), torch.zeros_like(ids, dtype=torch.bool)
    )
    asr = t_en @ aln  # (1, 512, F)
    if seed is not None:
        torch.manual_seed(seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(seed)
    audio = model.decoder(asr, f0, n, ref_s[:, :128]).squeeze()  # (600 F,)
    return {
        "audio": audio,
        "durations": durations,
        "predicted_durations": pred,
        "f0": f0[0],
        "energy": n[0],
        "duration_logits": logits[0],
        "d": d[0],
    }


def synthesize(
    kokoro,
    text: str | None = None,
    *,
    phonemes: str | None = None,
    voice: str | torch.Tensor | None = None,
    speed: float = 1.0,
    seed: int | None = 0,
    durations: np.ndarray | torch.Tensor | None = None,
) -> Synthesis:
    """Text (or phonemes) -> Synthesis. `kokoro` is a LoadedKokoro (or a bare KModel with `voice` a pack)."""
    if phonemes is None:
        if text is None:
            raise G2PError("give text or phonemes")
        phonemes = phonemize(text)
    ids = phonemes_to_ids(phonemes, strict=False)
    model = getattr(kokoro, "model", kokoro)
    if isinstance(voice, torch.Tensor):
        pack = voice
    else:
        pack = kokoro.voice(voice)
    ref_s = style_for(pack, len(phonemes))
    out = synthesize_ids(model, ids, ref_s, speed=speed, seed=seed, durations=durations)
    audio = out["audio"].float().cpu().numpy()
    if not np.isfinite(audio).all():
        raise FloatingPointError("synthesis produced non-finite samples")
    return Synthesis(
        audio=audio,
        phonemes=phonemes,
        token_ids=ids,
        durations=out["durations"].cpu().numpy(),
        f0=out["f0"].float().cpu().numpy(),
        energy=out["energy"].float().cpu().numpy(),
        extras={k: out[k] for k in ("predicted_durations", "duration_logits", "d")},
    )


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def split_sentences(text: str) -> list[str]:
    """Split long text at sentence punctuation, for texts over Kokoro's 510-phoneme limit."""
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]
