"""Dataset readers: LJSpeech-style metadata.csv and folders of (wav, txt) pairs -> `Item`s.
"""

from __future__ import annotations

import tarfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

# LJSpeech 1.1 (13,100 clips, one reader, about 24 h, public domain), hosted by its author Keith Ito.
LJSPEECH_URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"

# Phoneme-string characters that are not phones: spaces, punctuation, stress/length marks, intonation
# arrows. Counting the rest gives the number of phones (misaki writes diphthongs as one letter).
_NOT_PHONES = set(' !"(),.:;?—“”…→↓↗↘ˈˌːʰʲ\u0303')


# ----------------------------------------------------------------------------------------------- items


@dataclass
class Item:
    """One utterance: an id, its transcript and its recording. Later steps fill the optional fields."""

    id: str
    text: str
    wav_path: Path
    normalized: str | None = None  # LJSpeech's third column (numbers/abbreviations spelled out)
    speaker: str | None = None
    notes: list[str] = field(default_factory=list)  # reader and validation remarks (kept, not errors)
    phonemes: str | None = None  # Kokoro phoneme string, filled by validation
    duration_s: float | None = None  # clip length, filled by validation
    durations: np.ndarray | None = None  # [T] int: 25 ms frames per token id, BOS/EOS included
    style: np.ndarray | None = None  # [256] ref_s: [:128] decoder timbre, [128:] prosody

    @property
    def tts_text(self) -> str:
        """The text to phonemize: the normalized column when there is one, else the raw text."""
        return self.normalized if self.normalized else self.text


def read_ljspeech(
    root: str | Path, metadata: str = "metadata.csv", wav_dir: str = "wavs", speaker: str | None = None
) -> list[Item]:
    """Items of an LJSpeech-style folder: ``metadata.csv`` lines ``id|text[|normalized]``, ``wavs/id.wav``.

    Blank lines are skipped; a line without a ``|`` raises ValueError naming the file and line.
    Missing wavs are not checked here (validation reports them).
    """
    root = Path(root)
    meta_path = root / metadata
    items = []
    with open(meta_path, encoding="utf-8-sig", newline="") as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.split("|")
            if len(parts) < 2 or not parts[0].strip():
                raise ValueError(f"{meta_path}:{line_no}: expected 'id|text[|normalized]', got {line[:80]!r}")
            item_id, text = parts[0].strip(), parts[1].strip()
            normalized = parts[2].strip() if len(parts) > 2 and parts[2].strip() else None
            items.append(Item(item_id, text, root / wav_dir / f"{item_id}.wav", normalized, speaker))
    return items


def read_wav_txt_folder(
    root: str | Path, recursive: bool = False, text_suffix: str = ".txt", speaker: str | None = None
) -> list[Item]:
    """Items of a folder of ``name.wav`` + ``name.txt`` pairs; the id is the relative path without suffix.

    A wav without a transcript becomes an item with empty text (and a note saying so); a transcript
    without a wav becomes an item whose wav is missing: validation reports both.
    """
    root = Path(root)
    pattern = "**/*" if recursive else "*"
    stems = {
        p.relative_to(root).with_suffix("").as_posix()
        for p in root.glob(pattern)
        if p.is_file() and p.suffix.lower() in (".wav", text_suffix)
    }
    items = []
    for stem in sorted(stems):
        wav, txt = root / f"{stem}.wav", root / f"{stem}{text_suffix}"
        notes = []
        if txt.is_file():
            text = " ".join(txt.read_text(encoding="utf-8-sig").split())  # one line, single spaces
        else:
            text = ""
            notes.append(f"no_transcript: {txt.name} not found")
        items.append(Item(stem, text, wav, speaker=speaker, notes=notes))
    return items


def read_dataset(root: str | Path, speaker: str | None = None) -> list[Item]:
    """Read either layout: LJSpeech-style when ``root/metadata.csv`` exists, else wav + txt pairs."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    if (root / "metadata.csv").is_file():
        return read_ljspeech(root, speaker=speaker)
    return read_wav_txt_folder(root, speaker=speaker)


def ljspeech_url() -> str:
    """Where LJSpeech 1.1 is downloaded from (a 2.6 GB tar.bz2). Nothing is fetched by this call."""
    return LJSPEECH_URL


def download_ljspeech(dest: str | Path, url: str = LJSPEECH_URL, progress: bool = True) -> Path:
    """Download and unpack LJSpeech 1.1 into `dest` (for Colab; only ever called on request).

    Skips the download when the archive is already there and the unpacking when the folder exists.
    Returns the dataset folder (``dest/LJSpeech-1.1``), readable with `read_ljspeech`.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / url.rsplit("/", 1)[-1]
    folder = dest / "LJSpeech-1.1"
    if (folder / "metadata.csv").is_file():
        return folder
    if not archive.is_file():
        tmp = archive.with_suffix(archive.suffix + ".part")
        with urllib.request.urlopen(url) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="LJSpeech", disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        tmp.rename(archive)
    with tarfile.open(archive) as tar:
        try:
            tar.extractall(dest, filter="data")  # refuses absolute paths and links out of dest
        except TypeError:  # Python < 3.10.12 has no `filter`
            tar.extractall(dest)
    return folder


def write_ljspeech_metadata(path: str | Path, rows: Sequence[tuple[str, str, str | None]]) -> Path:
    """Write ``id|text|normalized`` lines (no header, no quoting), the LJSpeech metadata format."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for item_id, text, normalized in rows:
        fields = [item_id, text, text if normalized is None else normalized]
        if any("|" in x or "\n" in x for x in fields):
            raise ValueError(f"{item_id}: '|' and newlines cannot appear in LJSpeech metadata")
        lines.append("|".join(fields) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path
