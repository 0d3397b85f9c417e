"""Training targets for one recording: per-token durations by DTW, a style vector, features on one grid.

Kokoro learns durations per phoneme token, but a (text, wav) dataset only says *what* was said, not *when*.
We have no external aligner offline, so we use the teacher itself (measured: benchmarks/README.md, "Duration targets by DTW"):

    phonemes --Kokoro (voice pack, speed S/N)--> reference audio, token durations known
    reference log-mel  vs  recording log-mel --DTW (pause-aware)--> path (recording frame <-> reference frame)
    reference token edges --carried along the path--> recording token edges --> durations (T,) in 25 ms frames

Pause-aware DTW: a reader pauses where the synthesis does not. Every inter-word space token of the
reference gets one extra column that costs 0 against *silent* recording frames (and a constant elsewhere),
so a pause in the recording is absorbed by the space token instead of stretching a phoneme; the
reference's own silent frames (BOS/EOS, punctuation) also cost 0 against silent recording frames.

Public API (shapes in comments; F = 25 ms duration frames of the clip, T = tokens incl. BOS/EOS):

    DTWSettings(...)                                  # frozen; every alignment knob, hashed into caches
    CheckSettings(max_junction_error_ms=150.0, ...)   # the pocketsphinx cross-check
    StyleSource (protocol): .name: str; __call__(phonemes: str) -> torch.Tensor (1, 256)
    VoicePackStyle(pack, name)                        # ref_s = pack[len(phonemes) - 1], Kokoro's own rule
    voice_style(kokoro, voice="auto") -> VoicePackStyle

    align_durations(kokoro, phonemes, audio, ref_s, settings=DTWSettings()) -> Alignment
        audio: (600 F,) float32 at 24 kHz (already on the grid: helpers.data.features.fit_to_grid)
        Alignment.durations (T,) int64, all >= 1, sum == F; .path, .cost, .reference, ...
    check_word_boundaries(text, phonemes, durations, audio, settings=CheckSettings()) -> WordCheck
        WordCheck.checked, .suspect, .reason, .max_error_ms, .words (a table of word edges)
    compute_targets(kokoro, item_id, text, phonemes, audio, style, ...) -> ItemTargets

    ItemTargets: one utterance's targets, all on one grid (mel frames == 2 * durations.sum() == len(f0)):
        id, text, phonemes: str
        token_ids       (T,) int64, BOS/EOS = 0 at both ends
        durations       (T,) int64, 25 ms frames, >= 1, sum F
        mel             (80, 2F) float32, normalised log-mel (log(1e-5 + mel) + 4) / 4 (StyleTTS2's recipe)
        f0              (2F,) float32 Hz at 80 Hz (12.5 ms), 0 = unvoiced (pYIN)
        voiced_prob     (2F,) float32 pYIN voicing probability; .voiced (2F,) bool = f0 > 0
        energy          (2F,) float32 StyleTTS2's N: log L2 norm of the mel frame
        style           (256,) float32 ref_s: [:128] decoder timbre, [128:] prosody
        audio           (600 F,) float32 at 24 kHz, or None when the cache was built without audio
        teacher_durations (T,) int64: Kokoro's own prediction at speed 1 for this voice
        voice, split ("train"/"dev"/"test"/"suspect"), suspect (bool), reason (str), check (dict of the word check)
        .n_frames = F; .tensors() -> dict of torch tensors; .save(path) / ItemTargets.load(path)

`helpers.data.prepare` runs this over a dataset, caches one file per item and splits train / dev / test.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from helpers.data.align import Alignment, DTWSettings, align_durations
from helpers.data.features import DEFAULT as DEFAULT_FEATURES
from helpers.data.features import FeatureSettings, extract_features, fit_to_grid
from helpers.data.wordcheck import CheckSettings, check_word_boundaries
from helpers.grid import SAMPLES_PER_FRAME
from helpers.kokoro.forward import predict_durations, style_for
from helpers.kokoro.g2p import phonemes_to_ids

# ------------------------------------------------------------------------------------------------ style


@runtime_checkable
class StyleSource(Protocol):
    """Where an item's ref_s comes from. `name` goes into cache manifests (a new name invalidates them)."""

    name: str

    def __call__(self, phonemes: str) -> torch.Tensor:  # (1, 256)
        ...


@dataclass
class VoicePackStyle:
    """Kokoro's own rule: ref_s = pack[len(phonemes) - 1] of a voice pack [510, 1, 256]."""

    pack: torch.Tensor = field(repr=False)  # [510, 1, 256]
    name: str = "voice"

    def __call__(self, phonemes: str) -> torch.Tensor:
        return style_for(self.pack, len(phonemes)).float()  # (1, 256)


def voice_style(kokoro, voice: str | None = "auto") -> VoicePackStyle:
    """The StyleSource for a named voice of this Kokoro ("auto" = its default voice, af_heart).

    For a recorded dataset, `helpers.data.prepare` resolves "auto" to the English pack nearest the
    speaker's F0 register first (`helpers.data.reference_voice`) and passes that name here.
    """
    name = kokoro.default_voice() if voice in (None, "auto") else voice
    return VoicePackStyle(kokoro.voice(name), f"voice:{name}")


# --------------------------------------------------------------------------------------- item targets


@dataclass
class ItemTargets:
    """Everything training needs for one utterance, on one grid (see the module docstring for shapes)."""

    id: str
    text: str
    phonemes: str
    token_ids: np.ndarray  # (T,) int64
    durations: np.ndarray  # (T,) int64, sum F
    mel: np.ndarray  # (80, 2F) float32 normalised log-mel
    f0: np.ndarray  # (2F,) float32 Hz, 0 = unvoiced
    voiced_prob: np.ndarray  # (2F,) float32
    energy: np.ndarray  # (2F,) float32
    style: np.ndarray  # (256,) float32
    teacher_durations: np.ndarray  # (T,) int64
    audio: np.ndarray | None = field(default=None, repr=False)  # (600 F,) float32 or None
    voice: str = ""
    split: str = "train"
    suspect: bool = False
    reason: str = ""
    check: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.durations.sum())

    @property
    def voiced(self) -> np.ndarray:
        return self.f0 > 0

    def validate(self) -> None:
        """Raise AssertionError unless every array sits on the same grid."""
        F = self.n_frames
        assert len(self.token_ids) == len(self.durations), "one duration per token"
        assert (self.durations >= 1).all(), "every token needs >= 1 frame"
        assert self.mel.shape[1] == 2 * F == len(self.f0) == len(self.energy) == len(self.voiced_prob)
        assert self.audio is None or len(self.audio) == SAMPLES_PER_FRAME * F
        assert self.style.shape == (256,)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The arrays as torch tensors (same shapes), e.g. for a Dataset's __getitem__."""
        out = {
            "token_ids": torch.from_numpy(self.token_ids),
            "durations": torch.from_numpy(self.durations),
            "mel": torch.from_numpy(self.mel),
            "f0": torch.from_numpy(self.f0),
            "voiced_prob": torch.from_numpy(self.voiced_prob),
            "energy": torch.from_numpy(self.energy),
            "style": torch.from_numpy(self.style),
            "teacher_durations": torch.from_numpy(self.teacher_durations),
        }
        if self.audio is not None:
            out["audio"] = torch.from_numpy(self.audio)
        return out

    _ARRAYS = ("token_ids", "durations", "mel", "f0", "voiced_prob", "energy", "style", "teacher_durations")

    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        """One .npz per item: the arrays, audio as int16 (when present) and a JSON string of the rest."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "id": self.id,
            "text": self.text,
            "phonemes": self.phonemes,
            "voice": self.voice,
            "suspect": self.suspect,
            "reason": self.reason,
            "check": self.check,
            **(extra or {}),
        }
        arrays = {k: getattr(self, k) for k in self._ARRAYS}
        if self.audio is not None:
            arrays["audio_int16"] = (np.clip(self.audio, -1, 1) * 32767).round().astype(np.int16)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        tmp.replace(path)  # atomic: an interrupted run never leaves half a file
        return path

    @staticmethod
    def read_meta(path: str | Path) -> dict:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["meta"]))

    @classmethod
    def load(cls, path: str | Path, split: str = "train") -> ItemTargets:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in cls._ARRAYS}
            audio = z["audio_int16"].astype(np.float32) / 32767 if "audio_int16" in z else None
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**arrays, audio=audio, split=split, **{k: v for k, v in meta.items() if k in fields})


def compute_targets(
    kokoro,
    item_id: str,
    text: str,
    phonemes: str,
    audio: np.ndarray,
    style: StyleSource,
    *,
    features: FeatureSettings = DEFAULT_FEATURES,
    dtw: DTWSettings = DTWSettings(),
    check: CheckSettings = CheckSettings(),
    keep_audio: bool = True,
) -> tuple[ItemTargets, Alignment]:
    """All targets of one clip (mono 24 kHz samples, any length: cut to the 600-sample grid here)."""
    y = fit_to_grid(audio, "trim")  # (600 F,)
    ref_s = style(phonemes)  # (1, 256)
    al = align_durations(kokoro, phonemes, y, ref_s, dtw)
    feats = extract_features(y, features, mode="trim")
    model = getattr(kokoro, "model", kokoro)
    device = next(model.parameters()).device
    ids = torch.as_tensor(phonemes_to_ids(phonemes, strict=False), device=device).reshape(1, -1)
    with torch.no_grad():
        _, _, teacher = predict_durations(model, ids, ref_s.reshape(1, -1).to(device), 1.0)
    wc = check_word_boundaries(text, phonemes, al.durations, y, check, silent=al.silent)
    tg = ItemTargets(
        id=item_id,
        text=text,
        phonemes=phonemes,
        token_ids=ids[0].cpu().numpy().astype(np.int64),
        durations=al.durations,
        mel=feats.mel,
        f0=feats.f0,
        voiced_prob=feats.voiced_prob,
        energy=feats.energy,
        style=ref_s.reshape(-1).cpu().numpy().astype(np.float32),
        teacher_durations=teacher.cpu().numpy().astype(np.int64),
        audio=y if keep_audio else None,
        voice=getattr(style, "name", "custom"),
        suspect=wc.suspect,
        reason=wc.reason,
        check=wc.to_dict(),
    )
    tg.validate()
    return tg, al


