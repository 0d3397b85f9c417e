"""Which English voice pack speaks for a recorded speaker: the one nearest in F0 register.

The DTW reference of `helpers.data.targets` is Kokoro speaking the clip's phonemes with a stock voice pack,
and the same pack supplies the style vector stored with the targets. The closer that voice is to the
reader, the closer the two spectrograms DTW compares. Kokoro has no style encoder, so the choice is made
on one figure that both sides have: the **median F0** (pitch register).

* speaker: the median of pYIN's F0 (`helpers.data.features.f0_pyin`) over the voiced frames of up to
  `MAX_CLIPS` of the kept clips, pooled;
* pack: the median F0 of Kokoro speaking `REFERENCE_SENTENCE` with it, measured once per pack with the
  offline weights (`measure_pack_f0`) and stored in `PACK_MEDIAN_F0_HZ`;
* nearest = smallest distance in semitones, |12 log2(speaker / pack)| (pitch is heard on a log scale).

    choice = choose_for_clips(wav_paths)          # -> VoiceChoice
    print(choice.reason)                           # which pack, and why
    choice.to_dict()                               # what prepare_dataset stores in its manifest
    choice.table()                                 # one row per pack: median F0 and distance

`helpers.data.prepare` calls `choose_for_clips` when the voice setting is "auto"; the chosen pack's name
becomes the style name, which is part of the targets' cache key (a new choice recomputes the targets).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from helpers.data.audio import load_audio
from helpers.data.features import DEFAULT as DEFAULT_FEATURES
from helpers.data.features import FeatureSettings, f0_pyin, fit_to_grid
from helpers.grid import SAMPLE_RATE
from helpers.kokoro.voices import DEFAULT_VOICE, ENGLISH_VOICES

MAX_CLIPS = 24  # the speaker's F0 register is stable long before this; pYIN costs ~0.3 s per second of audio
REFERENCE_SENTENCE = (
    "When the morning train was late again, the driver apologised, and most of the passengers simply "
    "opened their newspapers and waited."
)
# Median F0 (Hz) of Kokoro speaking REFERENCE_SENTENCE with each pack: offline-int8 weights, decoder seed 0,
# pYIN 50-550 Hz on the voiced frames. Recompute with measure_pack_f0(kokoro); the hub's fp32 weights give
# figures within a few percent (the choice only needs the register).
PACK_MEDIAN_F0_HZ: dict[str, float] = {
    "af_heart": 200.0,
    "af_bella": 204.7,
    "af_nicole": 144.7,  # a soft, breathy voice: low for a female pack
    "am_michael": 111.6,
    "am_fenrir": 135.8,
    "am_puck": 106.6,
    "bf_emma": 176.1,
    "bm_george": 136.6,
}  # for comparison (not candidates): jf_alpha 254.9, jm_kumo 92.2


def median_f0(
    audios: Sequence[np.ndarray], features: FeatureSettings = DEFAULT_FEATURES
) -> tuple[float, int]:
    """(median F0 in Hz over the voiced frames of all clips pooled, number of voiced frames); NaN if none.

    audios: mono float32 clips at 24 kHz (any length: cut to the 600-sample grid here).
    """
    voiced = [f0[f0 > 0] for f0, _ in (f0_pyin(fit_to_grid(a), features) for a in audios if len(a) >= 1200)]
    pooled = np.concatenate(voiced) if voiced else np.zeros(0, np.float32)
    return (float(np.median(pooled)) if pooled.size else float("nan")), int(pooled.size)


def pack_median_f0(kokoro, voice: str, sentence: str = REFERENCE_SENTENCE, seed: int = 0) -> float:
    """Median F0 (Hz) of Kokoro speaking `sentence` with `voice`: one synthesis plus pYIN."""
    from helpers.kokoro.synth import synthesize

    return median_f0([synthesize(kokoro, sentence, voice=voice, seed=seed).audio])[0]


def measure_pack_f0(kokoro, voices: Sequence[str] = ENGLISH_VOICES) -> dict[str, float]:
    """{voice: median F0} for every pack, rounded to 0.1 Hz: how PACK_MEDIAN_F0_HZ was made (~3 s a pack)."""
    return {v: round(pack_median_f0(kokoro, v), 1) for v in voices}


def semitones(f_hz: float, ref_hz: float) -> float:
    """Signed pitch interval from ref to f in semitones (12 per octave)."""
    return 12.0 * math.log2(f_hz / ref_hz)


@dataclass
class VoiceChoice:
    """The pack chosen for a speaker, with the figures behind the choice (all JSON-serialisable)."""

    voice: str
    reason: str
    speaker_f0_hz: float | None  # None when no clip had voiced frames
    n_clips: int
    n_voiced_frames: int
    pack_f0_hz: dict[str, float] = field(default_factory=dict)
    clips_key: str = ""  # identifies the clips measured (prepare_dataset reuses the F0 while it matches)

    def distances(self) -> dict[str, float]:
        """{pack: |semitones| from the speaker}, nearest first (empty without a speaker F0)."""
        if self.speaker_f0_hz is None:
            return {}
        d = {v: abs(semitones(self.speaker_f0_hz, f)) for v, f in self.pack_f0_hz.items()}
        return dict(sorted(d.items(), key=lambda kv: kv[1]))

    def table(self):
        """One row per pack: its median F0 and its distance from the speaker (pandas), nearest first."""
        import pandas as pd

        d = self.distances()
        rows = [{"voice": v, "median_f0_hz": f, "semitones_from_speaker": round(d[v], 2) if d else None,
                 "chosen": v == self.voice} for v, f in self.pack_f0_hz.items()]  # fmt: skip
        return pd.DataFrame(rows).sort_values("semitones_from_speaker", na_position="last", ignore_index=True)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VoiceChoice:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def choose_reference_voice(
    speaker_f0_hz: float,
    n_clips: int = 0,
    n_voiced_frames: int = 0,
    pack_f0_hz: dict[str, float] | None = None,
    clips_key: str = "",
) -> VoiceChoice:
    """The pack whose median F0 is nearest (in semitones) to the speaker's; the default when F0 is unknown."""
    pack_f0_hz = dict(pack_f0_hz or PACK_MEDIAN_F0_HZ)
    if not pack_f0_hz:
        raise ValueError("no pack F0 figures to choose from")
    if speaker_f0_hz is None or not math.isfinite(speaker_f0_hz) or speaker_f0_hz <= 0:
        reason = (f"no voiced frames in {n_clips} clips, so no F0 register to match: "
                  f"using the default voice {DEFAULT_VOICE}")  # fmt: skip
        return VoiceChoice(DEFAULT_VOICE, reason, None, n_clips, n_voiced_frames, pack_f0_hz, clips_key)
    choice = VoiceChoice("", "", float(speaker_f0_hz), n_clips, n_voiced_frames, pack_f0_hz, clips_key)
    ranked = list(choice.distances().items())
    (best, d_best), runner_up = ranked[0], ranked[1] if len(ranked) > 1 else None
    nxt = f" (next: {runner_up[0]}, {runner_up[1]:.1f} semitones away)" if runner_up else ""
    choice.voice = best
    choice.reason = (
        f"reference voice {best}: the speaker's median F0 is {speaker_f0_hz:.0f} Hz (pYIN, {n_voiced_frames} "
        f"voiced frames in {n_clips} clips); {best} speaks at {pack_f0_hz[best]:.0f} Hz, {d_best:.1f} semitones "
        f"away, the nearest of {len(pack_f0_hz)} English packs{nxt}"
    )
    return choice


def choose_for_clips(
    wav_paths: Sequence[str | Path],
    *,
    clips_key: str = "",
    previous: dict | None = None,
    max_clips: int = MAX_CLIPS,
    features: FeatureSettings = DEFAULT_FEATURES,
) -> VoiceChoice:
    """Measure the speaker's median F0 on up to `max_clips` clips and choose the nearest pack.

    `previous` (a stored `VoiceChoice.to_dict()`) with the same non-empty `clips_key` reuses its measured
    speaker F0, so re-running a preparation costs no pYIN; the choice itself is always made afresh.
    """
    wav_paths = list(wav_paths)[:max_clips]
    prev = previous or {}
    if clips_key and prev.get("clips_key") == clips_key and "speaker_f0_hz" in prev:
        f0, n_clips, n_voiced = prev["speaker_f0_hz"], prev.get("n_clips", 0), prev.get("n_voiced_frames", 0)
    else:
        audios = [load_audio(p, SAMPLE_RATE).samples for p in wav_paths]
        (f0, n_voiced), n_clips = median_f0(audios, features), len(audios)
    return choose_reference_voice(f0, n_clips, n_voiced, clips_key=clips_key)
