"""Metrics on cases whose answer is known: identical inputs, a pitch shift, shifted durations, gains."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.compare import metrics as M

SR = 24_000


def _speechlike(seconds: float = 1.2, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A voiced harmonic tone with vibrato, an unvoiced noise burst and a pause: enough spectral change."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.1
    y[int(0.5 * SR) : int(0.65 * SR)] = 0.05 * rng.standard_normal(int(0.15 * SR))  # a fricative
    y[int(0.9 * SR) : int(1.0 * SR)] = 0.0  # a pause
    return y.astype(np.float32)


# ------------------------------------------------------------------------------------------ durations


def test_identical_durations_are_perfect():
    d = np.array([2, 5, 3, 7, 1, 4])
    assert M.duration_mae(d, d) == 0
    assert M.duration_within(d, d) == 100
    assert M.boundary_mae_ms(d, d) == 0
    assert M.duration_agreement(d, d) == 100


def test_shifted_durations_give_the_expected_errors():
    ref = np.array([3, 4, 5, 6])
    pred = ref + np.array([1, 0, -1, 2])
    assert M.duration_mae(pred, ref) == pytest.approx(1.0)  # (1 + 0 + 1 + 2) / 4
    assert M.duration_within(pred, ref) == pytest.approx(75.0)  # 3 of 4 within one frame
    assert M.duration_within(pred, ref, tol=0) == pytest.approx(25.0)
    # one frame moved from token 1 to token 0: only the first inner edge moves, by 25 ms (1 of 3 edges)
    moved = np.array([4, 3, 5, 6])
    assert M.boundary_mae_ms(moved, ref) == pytest.approx(25.0 / 3)
    # every token one frame longer: token errors 1 frame, inner edges drift by 1, 2, 3 frames
    longer = ref + 1
    errs = M.duration_errors(longer, ref)
    # tempo-normalised: [4, 5, 6, 7] scaled by 18/22 puts the inner edges 3/11, 4/11, 3/11 frames off
    expected = {"dur_mae_frames": 1.0, "dur_within1_pct": 100.0, "boundary_mae_ms": 50.0,
                "boundary_tempo_ms": 25.0 * 10 / 33}  # fmt: skip
    assert errs == pytest.approx(expected)


def test_duration_length_mismatch_raises():
    with pytest.raises(ValueError, match="differ in length"):
        M.duration_mae([1, 2, 3], [1, 2])


# ------------------------------------------------------------------------------------------------ F0


def test_f0_identical_and_scaled():
    t = np.arange(400) / 80.0
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.7 * t)  # all voiced
    assert M.f0_rmse(f0, f0) == 0
    assert M.voicing_error(f0, f0) == 0
    expected = 0.1 * math.sqrt(np.mean(f0**2))  # (1.1 f0 - f0) = 0.1 f0
    assert M.f0_rmse(1.1 * f0, f0) == pytest.approx(expected, rel=1e-9)
    assert M.f0_rmse(f0 + 12.0, f0) == pytest.approx(12.0)
    assert M.f0_rmse(f0 + 12.0, f0, remove_mean=True) == pytest.approx(0.0, abs=1e-9)  # offset only


def test_f0_voicing_decisions():
    f0 = np.full(100, 200.0)
    other = f0.copy()
    other[:10] = 0.0  # unvoiced in one curve only
    other[10:20] = 230.0
    assert M.voicing_error(other, f0) == pytest.approx(10.0)
    # RMSE only over the 90 frames voiced in both: 10 frames off by 30 Hz
    assert M.f0_rmse(other, f0) == pytest.approx(math.sqrt(10 * 30**2 / 90))
    assert math.isnan(M.f0_rmse(np.zeros(5), np.zeros(5)))
    with pytest.raises(ValueError, match="one grid"):
        M.f0_rmse(np.ones(4), np.ones(5))


# ----------------------------------------------------------------------------------------------- MCD


def test_mcd_zero_for_identical_audio_and_gain_invariant():
    y = _speechlike()
    assert M.mcd(y, y) == 0
    assert M.mcd(y, y, use_dtw=False) == 0
    assert M.mcd(y, 0.5 * y) == pytest.approx(0.0, abs=1e-6)  # c0 (loudness) is excluded


def test_mcd_grows_with_distortion():
    y = _speechlike()
    noise = np.random.default_rng(1).standard_normal(len(y)).astype(np.float32)
    small, large = M.mcd(y + 0.002 * noise, y), M.mcd(y + 0.02 * noise, y)
    assert 0 < small < large
    other = _speechlike(f0=220.0, seed=2)
    assert M.mcd(other, y) > 0
    with pytest.raises(ValueError, match="equal lengths"):
        M.mcd(y, y[: len(y) // 2], use_dtw=False)


def test_mel_cepstrum_shape_and_bandwidth():
    y = _speechlike()
    c = M.mel_cepstrum(y, order=24)
    assert c.shape == (2 * (-(-len(y) // 600)), 25)
    assert M.effective_bandwidth(y) <= SR / 2


# ----------------------------------------------------------------------------------------------- WER


def test_wer_known_cases():
    assert (
        M.wer("He might even have been made amiable himself.", "he might even have been made amiable himself")
        == 0
    )
    assert M.wer("the cat sat down", "the cat sat down") == 0
    assert M.wer("the cat sat down", "the dog sat down") == pytest.approx(25.0)
    assert M.wer("ill-disposed young man", "ill disposed young man") == 0
    with pytest.raises(ValueError):
        M.wer("...", "anything")


def test_transcribe_real_clip_and_silence():
    from helpers.data.audio import load_audio
    from helpers.settings import REPO_ROOT

    clip = REPO_ROOT / "data/librivox/wavs/sense_and_sensibility_01_austen_64kb-0930.wav"
    audio = load_audio(clip).samples
    score, hyp = M.asr_wer(audio, "He might even have been made amiable himself.")
    assert hyp and score < 80, hyp  # pocketsphinx is weak, but not hopeless on clean read speech
    assert M.transcribe(np.zeros(SR, dtype=np.float32)) == ""
