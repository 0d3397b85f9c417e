"""Does it sound like the speaker? Speaker similarity with resemblyzer's d-vector encoder.

    sims = speaker_similarity(wavs, reference_wavs, sr=24000)   # (n,) cosine, one per synthesized clip
    summary = similarity_summary(sims)                          # {"n", "mean", "lo", "hi"} (95% Student-t)
    table = similarity_table({"LSTM": wavs_a, "Mamba": wavs_b}, reference_wavs, sr)   # one row per system
    table = systems_similarity(models, items, voice=pack)   # notebook 06: each system reads the held-out clips

The encoder (resemblyzer's `VoiceEncoder`: 40-band log-mel -> 3-layer LSTM -> 256-d unit vector, trained
for speaker verification) ships its weights inside the PyPI package, so it loads with no network. Each wav
is resampled to 16 kHz, loudness-normalised and stripped of long silences (resemblyzer's `preprocess_wav`,
webrtcvad). The speaker is the mean of the reference recordings' embeddings, renormalised (resemblyzer's
speaker embedding); each clip scores the cosine of its embedding with it, in [-1, 1] (1 = same direction).
For scale: a held-out clip of the starter reader scores above 0.75 against his other clips, and the same clip
played 4/3 as fast (a higher, smaller voice) clearly lower (`tests/compare/test_similarity.py`); Kokoro's voices,
stock or fitted, score about 0.68 against him (`results/fit-voice`).

Install (the eval extra brings webrtcvad-wheels; resemblyzer itself goes in without its declared deps,
which name the source-only `webrtcvad` and the obsolete `typing` backport):
`pip install --no-deps resemblyzer==0.1.4` (scripts/workbook.sh does it).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from helpers.compare.stats import t_interval
from helpers.grid import SAMPLE_RATE

ENCODER_SR = 16_000


class SimilarityUnavailable(ImportError):
    """resemblyzer (or webrtcvad) is not installed."""


@functools.cache
def speaker_encoder():
    """resemblyzer's VoiceEncoder on CPU, built once (weights from the package: no download)."""
    try:
        from resemblyzer import VoiceEncoder
    except ImportError as e:
        raise SimilarityUnavailable(
            f"speaker similarity needs resemblyzer and webrtcvad-wheels ({e}): "
            "pip install webrtcvad-wheels && pip install --no-deps resemblyzer==0.1.4"
        ) from e
    return VoiceEncoder("cpu", verbose=False)


def embed(wav, sr: int) -> np.ndarray:
    """One utterance -> its (256,) unit-norm speaker embedding."""
    from resemblyzer import preprocess_wav

    y = np.asarray(wav, dtype=np.float32).ravel()
    if y.size == 0 or not np.isfinite(y).all():
        raise ValueError("speaker similarity needs finite, non-empty audio")
    enc = speaker_encoder()
    pre = preprocess_wav(y, source_sr=sr)  # 16 kHz, normalised, long silences removed
    if pre.size < ENCODER_SR // 4:  # VAD left under 0.25 s (near silence): embed the plain resampled clip
        import librosa

        pre = librosa.resample(y, orig_sr=sr, target_sr=ENCODER_SR) if sr != ENCODER_SR else y
    return enc.embed_utterance(pre)


def speaker_embedding(reference_wavs: Sequence, sr: int) -> np.ndarray:
    """The speaker: mean of the references' embeddings, renormalised (256,)."""
    if len(reference_wavs) == 0:
        raise ValueError("speaker similarity needs at least one reference recording of the speaker")
    return speaker_of([embed(w, sr) for w in reference_wavs])


def speaker_of(embeddings: Sequence) -> np.ndarray:
    """The speaker from the references' embeddings (already computed, e.g. cached): their mean, renormalised."""
    e = np.mean(embeddings, axis=0)
    return e / np.linalg.norm(e)


def speaker_similarity(wavs: Sequence, reference_wavs: Sequence, sr: int, ref_sr: int | None = None) -> np.ndarray:
    """(n,) cosine similarity of each wav's embedding to the speaker of `reference_wavs` (at `ref_sr`, default sr)."""
    spk = speaker_embedding(reference_wavs, ref_sr or sr)
    return np.array([float(embed(w, sr) @ spk) for w in wavs])


def similarity_summary(sims, level: float = 0.95) -> dict:
    """{"n", "mean", "lo", "hi"}: the mean cosine and its Student-t interval over clips (stats.t_interval)."""
    mean, lo, hi = t_interval(sims, level=level)
    return {"n": int(np.isfinite(np.asarray(sims, dtype=float)).sum()), "mean": mean, "lo": lo, "hi": hi}


def similarity_table(systems: Mapping[str, Sequence], reference_wavs: Sequence, sr: int,
                     ref_sr: int | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per system: n, mean cosine similarity to the speaker, 95% interval (the speaker embedded once)."""
    spk = speaker_embedding(reference_wavs, ref_sr or sr)
    rows = []
    for name, wavs in systems.items():
        sims = np.array([float(embed(w, sr) @ spk) for w in wavs])
        rows.append({"system": name, **similarity_summary(sims)})
    return pd.DataFrame(rows).set_index("system")


def systems_similarity(models: Mapping, items: Sequence, voice, seed: int | None = 0, references: Sequence | None = None,
                       sr: int = SAMPLE_RATE) -> pd.DataFrame:  # fmt: skip
    """Each model reads every held-out clip's phonemes with `voice` (its own durations, decoder seed `seed`);
    one row per model: n, mean cosine similarity to the speaker, 95% interval. The speaker is the clips' own
    recordings (`item.audio`, 24 kHz: prepare_dataset's store_audio) unless `references` (wavs at `sr`) are given.
    `table.attrs["per_clip"]`: clip x model similarities, for paired comparisons (`stats.compare_paired`)."""
    from helpers.kokoro.synth import synthesize

    if references is None:
        missing = [it.id for it in items if getattr(it, "audio", None) is None]
        if missing:
            raise ValueError(f"{missing[0]}: no recording stored with the clip: pass references=, or prepare with "
                             "store_audio=True")  # fmt: skip
        references = [np.asarray(it.audio, dtype=np.float32) for it in items]
    spk = speaker_embedding(references, sr)
    per_clip = {}
    for name, model in models.items():
        per_clip[name] = [float(embed(synthesize(model, phonemes=it.phonemes, voice=voice, seed=seed).audio, SAMPLE_RATE) @ spk)
                          for it in items]  # fmt: skip
    wide = pd.DataFrame(per_clip, index=[it.id for it in items])
    table = pd.DataFrame([{"system": name, **similarity_summary(wide[name])} for name in models]).set_index("system")
    table.attrs["per_clip"] = wide
    return table
