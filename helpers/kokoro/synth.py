"""Text -> speech with everything Kokoro computes on the way (durations, F0, energy), for people.

    synthesize(kokoro, "Hello.", voice="af_heart") -> Synthesis (audio, phonemes, durations, f0, energy)
    predict_prosody(kokoro, phonemes, voice, durations=None) -> durations, F0, energy (no decoder)

Both run `helpers.kokoro.forward`, the one forward path, for one utterance (B = 1); pass `durations` to
force them (to compare two models frame for frame). The decoder's noise is seeded by `seed` without
touching the global RNG.

Bad requests fail early and say why: text that is not English is screened *before* G2P (emoji, control
characters and other scripts are stripped with a warning; nothing English left is a G2PError), `speed`
outside (0, 4] is a ValueError, and a voice pack of the wrong shape (or an unreadable pack file) is a
VoiceError naming it (`helpers.kokoro.voices`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from helpers.grid import SAMPLE_RATE
from helpers.kokoro.forward import check_speed, style_for, synthesize_ids
from helpers.kokoro.g2p import G2PError, phonemes_to_ids, phonemize
from helpers.kokoro.voices import PACK_FILE_SUFFIXES, float_pack, read_pack_file


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


def as_pack(kokoro, voice) -> torch.Tensor:
    """A voice pack [510, 1, 256] from a name, a pack, a pack file (see `read_pack_file`), or one style (256,)."""
    if isinstance(voice, np.ndarray):
        voice = torch.from_numpy(voice)
    if isinstance(voice, torch.Tensor):
        v = voice.float()
        if v.numel() == 256:  # one ref_s: every row the same, so style_for picks it whatever the length
            return v.reshape(1, 1, 256).expand(510, 1, 256)
        return float_pack(v)
    if isinstance(voice, Path) or (isinstance(voice, str) and voice.endswith(PACK_FILE_SUFFIXES)):
        return read_pack_file(voice)
    return kokoro.voice(voice)


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
    """Text (or phonemes) -> Synthesis. `kokoro` is a LoadedKokoro (or a bare KModel with `voice` a pack).

    Text is screened before G2P: emoji, control characters and other scripts are removed with a warning
    (`helpers.kokoro.textscreen`); text with nothing English left raises G2PError. `speed` must satisfy
    0 < speed <= 4 (ValueError otherwise).
    """
    speed = check_speed(speed)
    if phonemes is None:
        if text is None:
            raise G2PError("give text or phonemes")
        phonemes = phonemize(text)
    ids = phonemes_to_ids(phonemes, strict=False)
    model = getattr(kokoro, "model", kokoro)
    ref_s = style_for(as_pack(kokoro, voice), len(phonemes))
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
        extras={**{k: out[k] for k in ("predicted_durations", "duration_logits", "d")}, "ref_s": ref_s},
    )


def predict_prosody(kokoro, phonemes: str, voice=None, speed: float = 1.0, durations=None) -> dict:
    """The prosody side only (no decoder): durations (T,), F0 (2F,) and energy (2F,) as NumPy arrays.

    With `durations` (T,) given, F0 and energy follow that alignment (teacher-forced), so two models'
    curves share one time grid. The same path as `synthesize`, stopped before the decoder (which dominates
    the cost). `speed` must satisfy 0 < speed <= 4.
    """
    speed = check_speed(speed)
    model = getattr(kokoro, "model", kokoro)
    ids = phonemes_to_ids(phonemes, strict=False)
    ref_s = style_for(as_pack(kokoro, voice), len(phonemes))
    out = synthesize_ids(model, ids, ref_s, speed=speed, durations=durations, decoder=False)
    return {
        "durations": out["durations"].cpu().numpy(),
        "predicted_durations": out["predicted_durations"].cpu().numpy(),
        "f0": out["f0"].float().cpu().numpy(),
        "energy": out["energy"].float().cpu().numpy(),
    }


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def split_sentences(text: str) -> list[str]:
    """Split long text at sentence punctuation, for texts over Kokoro's 510-phoneme limit."""
    return [s for s in (p.strip() for p in _SENTENCE_END.split(text)) if s]
