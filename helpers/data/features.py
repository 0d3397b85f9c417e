"""Acoustic features on Kokoro's frame grid: normalised log-mel, F0 and energy (N).

Kokoro (like StyleTTS2) works at 24 kHz on two nested grids:

* the **duration grid**: one frame = 600 samples = 25 ms. Token durations count these frames, and the
  decoder turns F duration frames into exactly 600 * F samples;
* the **F0/N grid**: one frame = 300 samples = 12.5 ms (80 Hz), two per duration frame. Kokoro's F0 and
  N predictors output 2F values; the mel spectrogram uses the same hop.

So a clip is first cut (or zero-padded) to a whole number F of duration frames (`fit_to_grid`), and then
every feature has exactly 2F frames: ``mel [80, 2F]``, ``f0 [2F]``, ``voiced_prob [2F]``, ``energy [2F]``.
Frame i is centred on sample 300 * i (the STFT is centred; the one extra frame a centred STFT makes at the
very end is dropped).

Definitions (StyleTTS2's training recipe, which Kokoro inherits):

* mel: power mel spectrogram, n_fft 2048, Hann window 1200, hop 300, 80 HTK-scale bands 0..12 kHz, no
  filter normalisation, reflect padding (what torchaudio's ``MelSpectrogram`` computes), then
  ``(log(1e-5 + mel) + 4) / 4`` (mean -4, std 4);
* f0: librosa's pYIN, 50..550 Hz, in Hz, 0 where unvoiced;
* energy (N): StyleTTS2's ``log_norm`` of the mel: ``log(|| 1e-5 + mel ||_2)`` over the 80 bands per frame,
  the curve Kokoro's N predictor was trained to reproduce.

`helpers.data.readers` supplies items; `helpers.data.audio` loads them; a later targets step adds per-token durations
(summing to `Features.n_frames`) on the same grid.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from helpers.data.audio import load_audio
from helpers.grid import F0_PER_FRAME, SAMPLE_RATE, SAMPLES_PER_F0_FRAME, SAMPLES_PER_FRAME


@dataclass(frozen=True)
class FeatureSettings:
    """The feature recipe; the defaults are StyleTTS2's / Kokoro's and should not need changing."""

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 2048
    win_length: int = 1200
    hop_length: int = SAMPLES_PER_F0_FRAME
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None  # None = sample_rate / 2
    htk: bool = True  # HTK mel scale, no filter normalisation (torchaudio's default, StyleTTS2's recipe)
    log_mel_mean: float = -4.0
    log_mel_std: float = 4.0
    f0_min: float = 50.0
    f0_max: float = 550.0
    f0_frame_length: int = 2048  # pYIN analysis window (85 ms: two periods of 50 Hz fit twice)


DEFAULT = FeatureSettings()


@dataclass
class Features:
    """All features of one clip on the 12.5 ms grid; `n_frames` counts 25 ms duration frames."""

    mel: np.ndarray  # [n_mels, 2F] normalised log-mel
    f0: np.ndarray  # [2F] Hz, 0 = unvoiced
    voiced_prob: np.ndarray  # [2F] pYIN voicing probability
    energy: np.ndarray  # [2F] log L2-norm of the mel frame (StyleTTS2's N)
    n_frames: int  # F, duration frames (25 ms)
    num_samples: int  # 600 * F, audio samples the features describe

    @property
    def voiced(self) -> np.ndarray:
        """[2F] bool, frames with an F0."""
        return self.f0 > 0


def n_duration_frames(num_samples: int) -> int:
    """Whole 25 ms duration frames in `num_samples` samples at 24 kHz (any remainder is cut)."""
    return int(num_samples) // SAMPLES_PER_FRAME


def n_mel_frames(num_samples: int) -> int:
    """Mel / F0 / N frames for a clip of `num_samples` samples: always 2 * n_duration_frames."""
    return F0_PER_FRAME * n_duration_frames(num_samples)


def frames_to_samples(n_frames: int) -> int:
    """Samples covered by `n_frames` duration frames (the length Kokoro's decoder produces)."""
    return int(n_frames) * SAMPLES_PER_FRAME


def fit_to_grid(y: np.ndarray, mode: str = "trim") -> np.ndarray:
    """[n] -> [600 * F]: cut the remainder (``"trim"``, F = n // 600) or zero-pad (``"pad"``, F = ceil)."""
    y = np.asarray(y, dtype=np.float32)
    if mode == "trim":
        return y[: frames_to_samples(n_duration_frames(len(y)))]
    if mode == "pad":
        target = frames_to_samples(-(-len(y) // SAMPLES_PER_FRAME))
        return np.pad(y, (0, target - len(y)))
    raise ValueError(f"mode must be 'trim' or 'pad', got {mode!r}")


def _check_grid(y: np.ndarray) -> int:
    if y.ndim != 1:
        raise ValueError(f"expected mono samples [n], got shape {y.shape}")
    if len(y) % SAMPLES_PER_FRAME:
        raise ValueError(
            f"{len(y)} samples is not a whole number of 600-sample frames: call fit_to_grid first"
        )
    return 2 * (len(y) // SAMPLES_PER_FRAME)


def mel_filterbank(settings: FeatureSettings = DEFAULT) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] mel filterbank: the one filterbank behind every log-mel in the workbook."""
    import librosa

    return librosa.filters.mel(
        sr=settings.sample_rate,
        n_fft=settings.n_fft,
        n_mels=settings.n_mels,
        fmin=settings.fmin,
        fmax=settings.fmax,
        htk=settings.htk,
        norm=None if settings.htk else "slaney",
    ).astype(np.float32)


def mel_power(y: np.ndarray, settings: FeatureSettings = DEFAULT) -> np.ndarray:
    """[600 F] samples -> [n_mels, 2F] linear power mel spectrogram (no log, no normalisation)."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    n = _check_grid(y)
    spec = librosa.stft(
        y,
        n_fft=settings.n_fft,
        hop_length=settings.hop_length,
        win_length=settings.win_length,
        window="hann",
        center=True,
        pad_mode="reflect",
    )  # [n_fft/2 + 1, 2F + 1] complex
    # einsum without optimize is numpy's own loop, not BLAS: the same bits on any number of threads, so a
    # preparation pool's workers (one thread each) write what one multi-threaded process writes
    mel = np.einsum("mk,kt->mt", mel_filterbank(settings), np.abs(spec) ** 2)  # [n_mels, 2F + 1]
    return mel[:, :n].astype(np.float32)  # [n_mels, 2F]


def normalize_log_mel(mel: np.ndarray, settings: FeatureSettings = DEFAULT) -> np.ndarray:
    """Linear power mel -> StyleTTS2's normalised log-mel, (log(1e-5 + mel) - mean) / std."""
    return ((np.log(1e-5 + mel) - settings.log_mel_mean) / settings.log_mel_std).astype(np.float32)


def log_mel(y: np.ndarray, settings: FeatureSettings = DEFAULT) -> np.ndarray:
    """[600 F] samples -> [n_mels, 2F] normalised log-mel: (log(1e-5 + mel) + 4) / 4 with the defaults."""
    return normalize_log_mel(mel_power(y, settings), settings)


@functools.lru_cache(maxsize=4)
def _mel_basis(settings: FeatureSettings, device: str) -> torch.Tensor:
    fb = mel_filterbank(settings)
    return torch.from_numpy(fb).float().to(device)  # (n_mels, n_fft // 2 + 1)


def torch_log_mel(audio: torch.Tensor, settings: FeatureSettings = DEFAULT) -> torch.Tensor:
    """Differentiable twin of `log_mel` (same filterbank, STFT and normalisation): (600 F,) or (B, 600 F) -> (…, n_mels, 2F)."""
    window = torch.hann_window(settings.win_length, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(
        audio.float(),
        n_fft=settings.n_fft,
        hop_length=settings.hop_length,
        win_length=settings.win_length,
        window=window.float(),
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )  # (…, n_fft/2+1, 2F+1)
    power = spec.real.pow(2) + spec.imag.pow(2)
    mel = _mel_basis(settings, str(audio.device)) @ power  # (…, n_mels, 2F+1)
    n = F0_PER_FRAME * (audio.shape[-1] // SAMPLES_PER_FRAME)
    return ((torch.log(1e-5 + mel) - settings.log_mel_mean) / settings.log_mel_std)[..., :n]


def energy_from_log_mel(mel_norm: np.ndarray, settings: FeatureSettings = DEFAULT) -> np.ndarray:
    """[n_mels, T] normalised log-mel -> [T] energy N = log(||exp(x * std + mean)||_2 over bands).

    This is StyleTTS2's ``log_norm``: the log of the L2 norm of (1e-5 + mel power) across the mel bands.
    """
    lin = np.exp(mel_norm.astype(np.float64) * settings.log_mel_std + settings.log_mel_mean)  # [n_mels, T]
    return np.log(np.linalg.norm(lin, axis=0)).astype(np.float32)  # [T]


def f0_pyin(y: np.ndarray, settings: FeatureSettings = DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """[600 F] samples -> (f0 [2F] in Hz with 0 where unvoiced, voiced_prob [2F]) from librosa's pYIN."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    n = _check_grid(y)
    f0, voiced, prob = librosa.pyin(
        y,
        fmin=settings.f0_min,
        fmax=settings.f0_max,
        sr=settings.sample_rate,
        frame_length=settings.f0_frame_length,
        hop_length=settings.hop_length,
        center=True,
    )  # each [2F + 1]
    f0 = np.where(voiced & np.isfinite(f0), f0, 0.0)
    return f0[:n].astype(np.float32), np.nan_to_num(prob[:n]).astype(np.float32)


def extract_features(
    y: np.ndarray, settings: FeatureSettings = DEFAULT, mode: str = "trim", with_f0: bool = True
) -> Features:
    """Mono samples at 24 kHz [n] -> Features on the grid (cut or padded to 600 F samples first).

    `with_f0=False` skips pYIN (the slow part) and leaves f0 and voiced_prob as zeros.
    """
    y = fit_to_grid(y, mode)  # [600 F]
    n_frames = n_duration_frames(len(y))
    mel = log_mel(y, settings)  # [n_mels, 2F]
    energy = energy_from_log_mel(mel, settings)  # [2F]
    if with_f0 and n_frames:
        f0, prob = f0_pyin(y, settings)  # [2F], [2F]
    else:
        f0 = prob = np.zeros(2 * n_frames, dtype=np.float32)
    return Features(mel, f0, prob, energy, n_frames, len(y))


def features_from_file(path: str | Path, settings: FeatureSettings = DEFAULT, **kwargs) -> Features:
    """Load a file (down-mixed, resampled to 24 kHz by `helpers.data.audio`) and extract its features."""
    audio = load_audio(path, settings.sample_rate)
    return extract_features(audio.samples, settings, **kwargs)
