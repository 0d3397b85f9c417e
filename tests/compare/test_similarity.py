"""Speaker similarity (resemblyzer): loads offline, and tells the speaker's own held-out clip from a changed voice."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import soundfile as sf

from helpers.compare import similarity as SIM
from helpers.settings import REPO_ROOT

pytest.importorskip("resemblyzer")
WAVS = sorted((REPO_ROOT / "data" / "librivox" / "wavs").glob("*.wav"))


def _read(path):
    y, sr = sf.read(str(path), dtype="float32")
    return (y.mean(1) if y.ndim == 2 else y), sr


def test_encoder_loads_with_the_network_blocked(monkeypatch):
    def blocked(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(socket, "getaddrinfo", blocked)
    monkeypatch.setattr(socket, "create_connection", blocked)
    SIM.speaker_encoder.cache_clear()
    enc = SIM.speaker_encoder()
    y, sr = _read(WAVS[0])
    e = SIM.embed(y, sr)
    assert enc is not None and e.shape == (256,) and abs(np.linalg.norm(e) - 1) < 1e-4


def test_own_clip_scores_higher_than_a_changed_voice():
    from scipy.signal import resample_poly

    clips = [_read(p) for p in WAVS[:3]]
    sr = clips[0][1]
    refs = [y for y, _ in clips[:2]]
    held_out = clips[2][0]
    # same words played 4/3 as fast: pitch and formants a fourth higher (a smaller, different-sounding voice)
    changed = resample_poly(held_out, 3, 4).astype(np.float32)
    sims = SIM.speaker_similarity([held_out, changed], refs, sr)
    assert sims.shape == (2,)
    assert sims[0] > 0.75, sims  # the same reader, a clip the speaker embedding never saw
    assert sims[0] - sims[1] > 0.05, sims


def test_summary_and_table():
    s = SIM.similarity_summary([0.7, 0.8, 0.75, 0.9])
    assert s["n"] == 4 and s["lo"] <= s["mean"] <= s["hi"] and s["mean"] == pytest.approx(0.7875)
    y, sr = _read(WAVS[0])
    table = SIM.similarity_table({"a": [y], "b": [y, y]}, [y], sr)
    assert list(table.index) == ["a", "b"] and table.loc["a", "mean"] > 0.99 and table.loc["b", "n"] == 2


def test_bad_audio_is_refused():
    with pytest.raises(ValueError, match="finite, non-empty"):
        SIM.embed(np.zeros(0, dtype=np.float32), 24000)
    with pytest.raises(ValueError, match="at least one reference"):
        SIM.speaker_similarity([np.ones(24000, dtype=np.float32)], [], 24000)


@pytest.mark.slow
def test_systems_similarity_reads_the_clips_with_each_model(kokoro_offline):
    from types import SimpleNamespace

    from helpers.kokoro.g2p import phonemize

    y, sr = _read(WAVS[0])
    import librosa

    rec = librosa.resample(y, orig_sr=sr, target_sr=24000)
    item = SimpleNamespace(id="clip", phonemes=phonemize("Hello there, my old friend."), audio=rec)
    table = SIM.systems_similarity({"LSTM": kokoro_offline}, [item, item], voice="am_michael")
    assert list(table.index) == ["LSTM"] and table.loc["LSTM", "n"] == 2
    assert table.attrs["per_clip"].shape == (2, 1) and -1 <= table.loc["LSTM", "mean"] <= 1
    with pytest.raises(ValueError, match="no recording"):
        SIM.systems_similarity({"LSTM": kokoro_offline}, [SimpleNamespace(id="x", phonemes="a", audio=None)], "af_heart")
