"""DNSMOS (speechmos' onnx models, offline) ranks a clean recording above the same recording under noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.compare import metrics as M
from helpers.data.audio import load_audio

CLIP = Path(__file__).resolve().parents[2] / "data/librivox/wavs/sense_and_sensibility_01_austen_64kb-0880.wav"


def test_clean_speech_scores_higher_than_the_same_speech_in_heavy_noise(no_network):
    clean = load_audio(CLIP).samples  # 24 kHz, ~3 s of a LibriVox reader
    rms = float(np.sqrt(np.mean(clean**2)))
    noisy = clean + np.random.default_rng(0).normal(0, rms, clean.size).astype(np.float32)  # 0 dB SNR
    a, b = M.dnsmos(clean, 24_000), M.dnsmos(noisy, 24_000)
    assert set(a) == {"ovrl", "sig", "bak"} and all(1.0 <= v <= 5.0 for v in (*a.values(), *b.values()))
    assert a["ovrl"] > b["ovrl"] + 1.0 and a["bak"] > b["bak"] + 1.0, (a, b)
    assert M.dnsmos(clean, 24_000) == a  # deterministic


def test_dnsmos_refuses_what_it_cannot_score():
    import pytest

    with pytest.raises(ValueError, match="mono"):
        M.dnsmos(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="mono"):
        M.dnsmos(np.zeros(0, dtype=np.float32))
