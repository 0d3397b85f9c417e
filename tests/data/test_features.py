"""Features on Kokoro's grid: frame counts line up, log-mel matches the StyleTTS2 recipe, F0 is recovered."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from helpers.data.features import (
    energy_from_log_mel,
    extract_features,
    f0_pyin,
    features_from_file,
    fit_to_grid,
    frames_to_samples,
    log_mel,
    mel_power,
    n_duration_frames,
    n_mel_frames,
)
from helpers.grid import SAMPLES_PER_F0_FRAME, SAMPLES_PER_FRAME

SR = 24_000


def harmonic_tone(f0: float, seconds: float, sr: int = SR) -> np.ndarray:
    """A voiced-like tone: five harmonics with falling amplitude, [n] float32."""
    t = np.arange(int(seconds * sr)) / sr
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 6)).astype(np.float32)


def test_frame_counts():
    assert (SAMPLES_PER_F0_FRAME, SAMPLES_PER_FRAME) == (300, 600)
    assert n_duration_frames(0) == 0 and n_duration_frames(599) == 0 and n_duration_frames(1200) == 2
    assert n_mel_frames(24_000) == 80 and n_mel_frames(24_599) == 80 and frames_to_samples(40) == 24_000
    y = np.ones(1234, np.float32)
    assert len(fit_to_grid(y)) == 1200 and len(fit_to_grid(y, "pad")) == 1800
    assert fit_to_grid(y, "pad")[1234:].sum() == 0
    with pytest.raises(ValueError):
        fit_to_grid(y, "stretch")
    with pytest.raises(ValueError, match="fit_to_grid"):
        log_mel(y)


# a one-frame clip (600 samples) is shorter than the 2048-point FFT: librosa warns that it pads it, the edge
# this case is about
SHORTER_THAN_FFT = pytest.mark.filterwarnings("ignore:n_fft=2048 is too large for input signal:UserWarning")


@pytest.mark.parametrize("n", [pytest.param(600, marks=SHORTER_THAN_FFT), 24_000, 37_123, 61_234])
def test_shapes_line_up(n):
    y = np.random.default_rng(n).normal(0, 0.1, n).astype(np.float32)
    f = extract_features(y, with_f0=n < 30_000)
    frames = n // 600
    assert f.n_frames == frames and f.num_samples == 600 * frames
    assert f.mel.shape == (80, 2 * frames)
    assert f.f0.shape == f.voiced_prob.shape == f.energy.shape == (2 * frames,)
    assert f.mel.dtype == f.f0.dtype == f.energy.dtype == np.float32


def test_log_mel_matches_styletts2_recipe():
    """torch.stft (torchaudio's MelSpectrogram settings) + HTK mel bank, then (log(1e-5 + mel) + 4) / 4."""
    import librosa

    y = fit_to_grid(
        harmonic_tone(180.0, 0.5) + np.random.default_rng(0).normal(0, 0.01, 12_000).astype(np.float32)
    )
    spec = torch.stft(
        torch.from_numpy(y), 2048, hop_length=300, win_length=1200, window=torch.hann_window(1200),
        center=True, pad_mode="reflect", return_complex=True,
    ).abs() ** 2  # [1025, 2F + 1]  # fmt: skip
    bank = torch.from_numpy(librosa.filters.mel(sr=SR, n_fft=2048, n_mels=80, htk=True, norm=None))
    ref = ((torch.log(1e-5 + bank @ spec) + 4) / 4)[:, :-1].numpy()  # [80, 2F]
    np.testing.assert_allclose(log_mel(y), ref, atol=1e-3)
    # energy N: log of the L2 norm over mel bands of (1e-5 + mel power)
    expected = np.log(np.linalg.norm(1e-5 + mel_power(y).astype(np.float64), axis=0))
    np.testing.assert_allclose(energy_from_log_mel(log_mel(y)), expected, atol=1e-3)


@pytest.mark.parametrize("f0", [120.0, 220.0])
def test_f0_recovered_within_2_percent(f0):
    y = fit_to_grid(harmonic_tone(f0, 1.0))
    f0_track, prob = f0_pyin(y)  # [80], [80]
    assert f0_track.shape == prob.shape == (80,)
    voiced = f0_track[f0_track > 0]
    assert len(voiced) >= 0.8 * len(f0_track)
    assert abs(np.median(voiced) / f0 - 1) < 0.02
    assert np.mean(np.abs(voiced / f0 - 1) < 0.02) > 0.9  # frame by frame, not only on average


def test_silence_is_unvoiced_and_low_energy():
    f = extract_features(np.zeros(12_000, np.float32))
    assert not f.voiced.any() and (f.f0 == 0).all()
    loud = extract_features(harmonic_tone(150.0, 0.5), with_f0=False)
    assert f.energy.max() < loud.energy.min()


def test_features_from_file_resamples(tmp_path):
    path = tmp_path / "stereo.wav"
    y = harmonic_tone(150.0, 1.0, sr=48_000)
    sf.write(str(path), np.stack([y, y], axis=1), 48_000)
    f = features_from_file(path, with_f0=False)
    assert f.n_frames == 40 and f.mel.shape == (80, 80)


def test_training_loss_log_mel_is_the_features_log_mel():
    """The mel loss compares generated audio with targets made by `log_mel`: both must be one function."""
    from helpers.data.features import torch_log_mel

    rng = np.random.default_rng(1)
    y = fit_to_grid(harmonic_tone(140.0, 0.8) + rng.normal(0, 0.02, 19_200).astype(np.float32))
    a = log_mel(y)  # (80, 2F) NumPy, what notebook 04 caches
    b = torch_log_mel(torch.from_numpy(y)).numpy()  # (80, 2F) torch, what the loss computes
    assert a.shape == b.shape == (80, 2 * (len(y) // 600))
    np.testing.assert_allclose(a, b, atol=2e-4)
    batched = torch_log_mel(torch.from_numpy(np.stack([y, y[::-1].copy()])))  # (2, 80, 2F)
    np.testing.assert_allclose(batched[0].numpy(), a, atol=2e-4)
