"""Dataset readers: LJSpeech-style metadata.csv and folders of (wav, txt) pairs -> `Item`s.

One bad row or file never stops a read. Text is decoded as UTF-8 (a BOM is skipped), or as UTF-16 when
the file starts with a UTF-16 BOM; a line (or file) that still fails becomes an item refused with
`bad_encoding`, a row without ``id|text`` one refused with `malformed_row`, an id that would name a file outside
the audio folder (``../x``, ``/abs/path``) one refused with `bad_id`, all naming file:line; a row with more than
three columns is read with a note and a warning. Audio is .wav, .flac, .mp3 or .ogg (what soundfile decodes). The
validator (`helpers.data.validate`) puts them in the same report as every other refusal. Wav files are
found whatever the case of their name (``a.WAV``), unless two names differ in case only.
"""

from __future__ import annotations

import tarfile
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

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
    problem: tuple[str, str] | None = None  # (code, "file:line: message") the reader found: refused
    phonemes: str | None = None  # Kokoro phoneme string, filled by validation
    duration_s: float | None = None  # clip length, filled by validation
    durations: np.ndarray | None = None  # [T] int: 25 ms frames per token id, BOS/EOS included
    style: np.ndarray | None = None  # [256] ref_s: [:128] decoder timbre, [128:] prosody

    @property
    def tts_text(self) -> str:
        """The text to phonemize: the normalized column when there is one, else the raw text."""
        return self.normalized if self.normalized else self.text


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")  # what soundfile (libsndfile >= 1.1) decodes


class Line(NamedTuple):
    no: int  # 1-based line number
    text: str | None  # None when the line cannot be decoded
    error: str  # why not ("" when decoded)
    shown: str  # the line decoded with replacement characters (for ids and messages)


def decode_lines(path: Path) -> list[Line]:
    """Every line of a text file, decoded one by one so that a bad line costs that line only.

    UTF-16 (whole file) when it starts with a UTF-16 BOM; otherwise UTF-8 with a leading BOM skipped. A
    line that is not UTF-8, or holds NUL bytes (UTF-16 without a BOM), has text None and the reason.
    """
    data = path.read_bytes()
    if data.startswith(UTF16_BOMS):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as e:
            return [Line(1, None, f"starts with a UTF-16 BOM but is not valid UTF-16 ({e.reason})", "")]
        lines = [Line(n, t.removesuffix("\r"), "", t) for n, t in enumerate(text.split("\n"), start=1)]
    else:
        lines = []
        for n, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
            raw = raw.removesuffix(b"\r")
            shown = raw.decode("utf-8", "replace")
            try:
                text, error = raw.decode("utf-8"), ""
            except UnicodeDecodeError as e:
                text = None
                error = f"not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1}); save the file as UTF-8"
            if text is not None and "\x00" in text:
                text, error = None, "holds NUL bytes (UTF-16 without a BOM?); save the file as UTF-8"
            lines.append(Line(n, text, error, shown))
    if lines and lines[-1].shown in ("", "\x00"):
        lines.pop()  # after the final newline (in UTF-16LE without a BOM, its second byte)
    return lines


def _by_lower_name(folder: Path) -> dict[str, Path]:
    """{lower-case name: path} of the files in `folder`, leaving out names that differ in case only."""
    if not folder.is_dir():
        return {}
    seen: dict[str, list[Path]] = {}
    for p in folder.iterdir():
        seen.setdefault(p.name.lower(), []).append(p)
    return {k: v[0] for k, v in seen.items() if len(v) == 1}


def find_file(path: Path, index: dict[str, Path]) -> Path:
    """`path` when it exists, else the one file whose name matches it ignoring case, else the same name with
    another audio suffix (.flac, .mp3, .ogg), else `path` itself."""
    if path.is_file():
        return path
    for suffix in (path.suffix, *AUDIO_SUFFIXES):
        found = index.get(path.with_suffix(suffix).name.lower())
        if found is not None:
            return found
    return path


def outside(root: Path, path: Path) -> bool:
    """True when `path` (an id made into a file name) leaves `root`: '..', an absolute path, a drive."""
    return not path.resolve().is_relative_to(root.resolve())


def read_ljspeech(
    root: str | Path, metadata: str = "metadata.csv", wav_dir: str = "wavs", speaker: str | None = None
) -> list[Item]:
    """Items of an LJSpeech-style folder: ``metadata.csv`` lines ``id|text[|normalized]``, ``wavs/id.wav``.

    Blank lines are skipped. A line that cannot be decoded, or has no ``|``, becomes an item refused with
    `bad_encoding` / `malformed_row` (id: the id column when it can be read, else ``metadata.csv:LINE``);
    the other lines are read. Missing wavs are not checked here (validation reports them).
    """
    root = Path(root)
    meta_path = root / metadata
    index = _by_lower_name(root / wav_dir)
    items, extra = [], []
    for line in decode_lines(meta_path):
        where = f"{meta_path}:{line.no}"
        if line.text is not None and not line.text.strip():
            continue
        parts = (line.text if line.text is not None else line.shown).split("|")
        item_id = parts[0].strip()
        if len(parts) < 2 or not item_id or "\ufffd" in item_id or "\x00" in item_id:
            item_id = f"{meta_path.name}:{line.no}"  # no usable id column: the place names the item
        wav = find_file(root / wav_dir / f"{item_id}.wav", index)
        if outside(root / wav_dir, wav):  # '../x' or '/abs/path' would read audio from anywhere on disk
            msg = f"{where}: id {item_id!r} names a file outside {root / wav_dir}; ids are file names in that folder"
            items.append(Item(item_id, "", root / wav_dir / "(outside)", speaker=speaker, problem=("bad_id", msg)))
        elif line.text is None:
            items.append(Item(item_id, "", wav, speaker=speaker, problem=("bad_encoding", f"{where}: {line.error}")))
        elif len(parts) < 2 or not parts[0].strip():
            msg = f"{where}: expected 'id|text[|normalized]', got {line.text[:80]!r}"
            items.append(Item(item_id, "", wav, speaker=speaker, problem=("malformed_row", msg)))
        else:
            normalized = parts[2].strip() if len(parts) > 2 and parts[2].strip() else None
            items.append(Item(item_id, parts[1].strip(), wav, normalized, speaker))
            if len(parts) > 3:
                extra.append(line.no)
                items[-1].notes.append(f"extra_columns: {where} has {len(parts)} columns; only id|text|normalized "
                                       f"are read, {parts[3][:40]!r}... is ignored")  # fmt: skip
    if extra:
        warnings.warn(
            f"{meta_path}: {len(extra)} line(s) have more than 3 '|' columns (first: line {extra[0]}); only "
            "id|text|normalized are read and the rest is ignored. A '|' inside a transcript splits it too: "
            "check those lines",
            stacklevel=2,
        )
    return items


def read_text_file(path: Path) -> tuple[str | None, str]:
    """(text on one line with single spaces, "") or (None, "file:line: why") when it cannot be decoded."""
    lines = decode_lines(path)
    bad = next((line for line in lines if line.text is None), None)
    if bad is not None:
        return None, f"{path}:{bad.no}: {bad.error}"
    return " ".join(" ".join(line.text for line in lines).split()), ""


def read_wav_txt_folder(
    root: str | Path, recursive: bool = False, text_suffix: str = ".txt", speaker: str | None = None
) -> list[Item]:
    """Items of a folder of ``name.wav`` + ``name.txt`` pairs; the id is the relative path without suffix.

    A wav without a transcript becomes an item with empty text (and a note saying so); a transcript
    without a wav becomes an item whose wav is missing: validation reports both. Suffixes and names
    match ignoring case (``A.WAV`` + ``a.txt``) unless that would pair several files. A transcript that
    cannot be decoded makes its item refused with `bad_encoding` (file and line).
    """
    root = Path(root)
    pattern = "**/*" if recursive else "*"
    groups: dict[str, dict[str, list[Path]]] = {}
    for p in root.glob(pattern):
        kind = {**dict.fromkeys(AUDIO_SUFFIXES, "wav"), text_suffix.lower(): "txt"}.get(p.suffix.lower())
        if kind and p.is_file():
            stem = p.relative_to(root).with_suffix("").as_posix()
            groups.setdefault(stem.lower(), {"wav": [], "txt": []})[kind].append(p)
    pairs = []  # (id, wav or None, txt or None)
    for g in groups.values():
        if len(g["wav"]) <= 1 and len(g["txt"]) <= 1:
            wav, txt = (g["wav"] or [None])[0], (g["txt"] or [None])[0]
            pairs.append(((wav or txt).relative_to(root).with_suffix("").as_posix(), wav, txt))
        else:  # names that differ in case only: pair them exactly
            for stem in sorted({p.relative_to(root).with_suffix("").as_posix() for p in g["wav"] + g["txt"]}):
                wav = next((p for p in g["wav"] if p.relative_to(root).with_suffix("").as_posix() == stem), None)
                txt = next((p for p in g["txt"] if p.relative_to(root).with_suffix("").as_posix() == stem), None)
                pairs.append((stem, wav, txt))
    items = []
    for stem, wav, txt in sorted(pairs, key=lambda x: x[0]):
        wav = wav or root / f"{stem}.wav"
        item = Item(stem, "", wav, speaker=speaker)
        if txt is None:
            item.notes.append(f"no_transcript: {Path(stem).name}{text_suffix} not found")
        else:
            text, error = read_text_file(txt)
            if text is None:
                item.problem = ("bad_encoding", error)
            else:
                item.text = text
        items.append(item)
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
