"""Robust audio I/O: read any file soundfile understands, down-mix, resample to 24 kHz, write wavs.

Everything downstream (validation in `helpers.data.readers`, features in `helpers.data.features`) sees audio
through this module, so there is one place that decides how a file becomes samples:

    file --read_audio--> [n, channels] float32 at the file's rate
         --to_mono-->    [n] (mean over channels)
         --resample-->   [n * 24000 / sr] (soxr, high quality)

`load_audio` runs the three steps and records what it changed (``notes``), so a caller can show that a
48 kHz stereo clip was converted rather than silently accepting it. Any failure to read a file becomes
an `AudioReadError` whose message names the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from helpers.grid import SAMPLE_RATE  # noqa: F401  (re-exported: the rate everything is resampled to)


class AudioReadError(RuntimeError):
    """A file that exists but cannot be decoded as audio (corrupt bytes, unknown format)."""


@dataclass
class AudioInfo:
    """What a file's header says, read without decoding the samples."""

    path: Path
    sample_rate: int
    channels: int
    num_samples: int  # per channel
    subtype: str  # e.g. "PCM_16", "FLOAT"

    @property
    def duration_s(self) -> float:
        return self.num_samples / self.sample_rate if self.sample_rate else 0.0


@dataclass
class LoadedAudio:
    """Mono float32 samples at `sample_rate`, plus where they came from."""

    samples: np.ndarray  # [n] float32
    sample_rate: int
    source_sample_rate: int
    source_channels: int
    notes: list[str] = field(default_factory=list)  # e.g. "resampled 48000 -> 24000 Hz"

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def probe(path: str | Path) -> AudioInfo:
    """Read only the header of an audio file. Raises FileNotFoundError or AudioReadError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises its own error types; all mean "cannot decode"
        raise AudioReadError(f"{path}: not a readable audio file ({exc})") from exc
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames), str(info.subtype))


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a file as-is: returns (samples [n, channels] float32, sample_rate). No conversion.

    Non-finite values in float files are kept (the validator wants to see them).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)  # [n, channels]
    except Exception as exc:
        raise AudioReadError(f"{path}: cannot decode audio ({exc})") from exc
    return y, int(sr)


def to_mono(y: np.ndarray) -> np.ndarray:
    """[n] or [n, channels] -> [n] float32, averaging the channels."""
    y = np.asarray(y, dtype=np.float32)
    return y if y.ndim == 1 else y.mean(axis=1, dtype=np.float32)


def resample(y: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """[n] -> [round(n * sr_out / sr_in)] with soxr's high-quality filter; a no-op when rates match.

    Upsampling adds no bandwidth: 16 kHz material resampled to 24 kHz still has nothing above 8 kHz.
    """
    if sr_in == sr_out:
        return np.asarray(y, dtype=np.float32)
    import soxr  # installed with librosa

    return soxr.resample(np.asarray(y, dtype=np.float32), sr_in, sr_out, quality="HQ").astype(np.float32)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> LoadedAudio:
    """Read, down-mix and resample one file; `notes` say which conversions happened."""
    y, sr = read_audio(path)  # [n, c]
    notes = []
    channels = y.shape[1]
    if channels != 1:
        notes.append(f"down-mixed {channels} channels to mono")
    mono = to_mono(y)  # [n]
    if sr != sample_rate:
        notes.append(f"resampled {sr} -> {sample_rate} Hz")
        mono = resample(mono, sr, sample_rate)
    return LoadedAudio(mono, sample_rate, sr, channels, notes)


def save_wav(
    path: str | Path, y: np.ndarray, sample_rate: int = SAMPLE_RATE, subtype: str = "PCM_16"
) -> Path:
    """Write [n] (or [n, channels]) samples in [-1, 1] as a wav; 16-bit PCM by default.

    Samples outside [-1, 1] are clipped for integer subtypes (libsndfile would wrap them otherwise).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y, dtype=np.float32)
    if subtype.startswith("PCM"):
        y = np.clip(y, -1.0, 1.0)
    sf.write(str(path), y, sample_rate, subtype=subtype)
    return path
