"""Speak a text of any length with one model and one voice: pieces -> audio -> one wav (or one per piece).

    speech = speak(kk, text, voice="af_heart")          # Speech: audio (24 kHz), pieces, per-piece audio
    write_speech(speech, "out.wav", per_piece=False)    # refuses to replace an existing file unless asked
    text = read_text_file("chapter.txt")               # clear errors for missing, empty, binary, non-UTF-8

Each piece (`helpers.speak.pieces`) is synthesized by `helpers.kokoro.synth.synthesize` (the workbook's one
forward path) with the voice-pack row for its own length, then the pieces are joined in order. Kokoro's own
leading and trailing silences (BOS/EOS) already separate them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.grid import SAMPLE_RATE
from helpers.kokoro.synth import synthesize
from helpers.speak.model import voice_pack
from helpers.speak.pieces import Piece, split_text


class TextFileError(ValueError):
    """A text file that cannot be read as text (missing, empty, binary, not UTF-8)."""


@dataclass
class Speech:
    audio: np.ndarray  # (samples,) float32 at 24 kHz
    pieces: list[Piece]
    piece_audio: list[np.ndarray] = field(repr=False)
    skipped: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    sample_rate: int = SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate

    def summary(self) -> str:
        return (f"{len(self.pieces)} pieces, {self.seconds:.1f} s of audio in {self.wall_s:.1f} s "
                f"(real-time factor {self.wall_s / max(self.seconds, 1e-9):.2f})"
                + (f"; skipped {len(self.skipped)} with nothing to say" if self.skipped else ""))  # fmt: skip


def read_text_file(path: str | Path) -> str:
    """The file's text (UTF-8, a BOM allowed), or a TextFileError saying what is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise TextFileError(f"text file not found: {path}")
    if not path.is_file():
        raise TextFileError(f"{path} is not a file")
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise TextFileError(f"{path} looks binary (it holds NUL bytes), not a text file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise TextFileError(
            f"{path} is not UTF-8 text: byte {raw[e.start]:#04x} at offset {e.start} (line {line}); "
            "save it as UTF-8"
        ) from None
    if not text.strip():
        raise TextFileError(f"{path} is empty: nothing to say")
    return text


def speak(
    kokoro,
    text: str,
    voice="af_heart",
    speed: float = 1.0,
    seed: int | None = 0,
    progress: bool = True,
) -> Speech:
    """Any length of English text -> Speech, with `kokoro` (a LoadedKokoro, e.g. `speaking_model(...)`).

    `voice`: a name, a pack file or a pack tensor. Each piece's decoder noise is seeded with `seed`.
    """
    from tqdm.auto import tqdm

    pack = voice_pack(voice, getattr(kokoro, "source", "offline-int8"))
    t0 = time.perf_counter()
    pieces, skipped = split_text(text)
    audio = []
    for piece in tqdm(pieces, desc="speaking", unit="piece", disable=not progress):
        audio.append(synthesize(kokoro, phonemes=piece.phonemes, voice=pack, speed=speed, seed=seed).audio)
    joined = np.concatenate(audio).astype(np.float32)
    return Speech(joined, pieces, audio, skipped, wall_s=time.perf_counter() - t0)


def piece_paths(out: str | Path, n: int) -> list[Path]:
    """out.wav -> out-001.wav, out-002.wav, ... (one per piece)."""
    out = Path(out)
    width = max(3, len(str(n)))
    return [out.with_name(f"{out.stem}-{i + 1:0{width}d}{out.suffix}") for i in range(n)]


def check_out(out: str | Path, overwrite: bool = False, n_pieces: int = 0) -> Path:
    """The output path, checked before any work: a .wav, and no existing file replaced unless `overwrite`."""
    out = Path(out)
    if out.suffix.lower() != ".wav":
        raise ValueError(f"--out must be a .wav file, got {out}")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; name a .wav file")
    targets = [out, *piece_paths(out, n_pieces)]
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"{existing[0]} already exists{f' (and {len(existing) - 1} more)' if len(existing) > 1 else ''}: "
            "choose another --out, or pass --overwrite to replace it"
        )
    return out


def write_speech(speech: Speech, out: str | Path, per_piece: bool = False, overwrite: bool = False) -> list[Path]:
    """Write the joined wav (and, with `per_piece`, out-001.wav, ...); returns the paths written."""
    import soundfile as sf

    out = check_out(out, overwrite, len(speech.pieces) if per_piece else 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = []
    items = [(out, speech.audio)]
    if per_piece:
        items += list(zip(piece_paths(out, len(speech.pieces)), speech.piece_audio))
    for path, audio in items:
        tmp = path.with_name(path.name + ".tmp.wav")
        sf.write(str(tmp), audio, speech.sample_rate, subtype="PCM_16")
        tmp.replace(path)
        written.append(path)
    return written
