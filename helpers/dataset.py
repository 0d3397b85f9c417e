"""Speech datasets: read (text, wav) items from disk and validate them before training.

How the pieces fit:

    folder --read_ljspeech / read_wav_txt_folder / read_dataset--> [Item, ...]
           --validate_items(items, phonemize)--> ValidationReport
                 .kept      items that passed, with `phonemes`, `duration_s` and conversion `notes` filled
                 .rows      one ValidationRow per input item (kept or excluded, with reason + message)
                 .to_frame() / .summary() for display

Two layouts are read:

* LJSpeech-style: ``metadata.csv`` with ``id|text[|normalized]`` lines (no header, no quoting) and
  ``wavs/<id>.wav``;
* a flat folder of ``name.wav`` + ``name.txt`` pairs.

Audio is read through `helpers.audio`; phonemes come from a callable ``phonemize(text) -> str`` passed in
by the caller (the notebooks pass `helpers.g2p.phonemize`; tests pass a fake). Every threshold lives in
`ValidationSettings`. Nothing is dropped silently: an excluded item keeps its row with a reason code and a
message that names the file.

Later steps add to each kept `Item`: per-token durations in 25 ms frames (``durations``, BOS and EOS
included, summing to the clip's duration-frame count from `helpers.features`) and a style vector
(``style``, Kokoro's 256-dim ref_s).
"""

from __future__ import annotations

import dataclasses
import tarfile
import unicodedata
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from helpers.audio import SAMPLE_RATE, AudioReadError, read_audio, to_mono

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


# ------------------------------------------------------------------------------------------ validation


@dataclass
class ValidationSettings:
    """Every threshold the validator uses. Defaults suit single-speaker read speech (LJSpeech-like)."""

    sample_rate: int = SAMPLE_RATE  # other rates are kept and resampled later (a note, not an error)
    min_duration_s: float = 0.5
    max_duration_s: float = 30.0
    silence_dbfs: float = -60.0  # peak below this: the clip is silent
    clip_level: float = 0.999  # |x| at or above this counts as a clipped sample
    max_clip_fraction: float = 0.001  # more clipped samples than this fraction: excluded
    max_phonemes: int = 510  # Kokoro reads 512 positions: 510 phonemes + BOS + EOS
    min_phones_per_s: float = 5.0  # speaking rate over the speech span (leading/trailing silence cut)
    max_phones_per_s: float = 30.0
    speech_floor_db: float = 40.0  # speech span: frames within this many dB of the loudest frame
    check_rate: bool = True


# reason code -> what it means; the order is the priority used to pick an item's main reason
REASONS: dict[str, str] = {
    "missing_wav": "the wav file does not exist",
    "unreadable_wav": "the file exists but cannot be decoded as audio",
    "empty_audio": "the file holds no samples",
    "non_finite": "samples are NaN or infinite",
    "silent_audio": "the whole clip is (near) digital silence",
    "clipping": "too many samples at full scale",
    "too_short": "clip shorter than min_duration_s",
    "too_long": "clip longer than max_duration_s",
    "empty_text": "the transcript is empty",
    "no_phonemes": "the phonemizer found nothing to say",
    "phonemize_failed": "the phonemizer raised an error",
    "too_many_phonemes": "more phonemes than Kokoro reads (max_phonemes)",
    "implausible_rate": "phones per second outside the plausible range: likely a wrong transcript",
    "duplicate_id": "another item already has this id",
}
# note code -> meaning; notes are kept with the item ("code: details") and never exclude it
NOTES: dict[str, str] = {
    "resampled": "other sample rate: resampled to 24 kHz on load",
    "down_mixed": "several channels: averaged to mono on load",
    "no_transcript": "the reader found no transcript file for this wav",
}


@dataclass
class ValidationRow:
    """The validator's verdict on one item. `reason` is the main reason ("" when kept)."""

    id: str
    wav_path: str
    text: str
    kept: bool
    reason: str = ""
    message: str = ""
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    peak: float | None = None
    clip_fraction: float | None = None
    n_phonemes: int | None = None  # characters of the phoneme string (what Kokoro reads)
    n_phones: int | None = None  # phones only: no spaces, punctuation or stress marks
    phones_per_s: float | None = None


@dataclass
class ValidationReport:
    """Rows for every item, the kept items (with phonemes filled) and the settings used."""

    rows: list[ValidationRow]
    kept: list[Item]
    settings: ValidationSettings

    @property
    def excluded(self) -> list[ValidationRow]:
        return [r for r in self.rows if not r.kept]

    def summary(self) -> dict:
        """Counts: items, kept, excluded, excluded per main reason, all reasons, notes."""
        return {
            "items": len(self.rows),
            "kept": len(self.kept),
            "excluded": len(self.excluded),
            "excluded_by_reason": dict(Counter(r.reason for r in self.excluded)),
            "all_reasons": dict(Counter(code for r in self.rows for code in r.reasons)),
            "notes": dict(Counter(note.split(":", 1)[0] for r in self.rows for note in r.notes)),
        }

    def summary_frame(self):
        """A pandas DataFrame: one line per reason code with its count and meaning."""
        import pandas as pd

        counts = Counter(r.reason for r in self.excluded)
        return pd.DataFrame(
            [
                {"reason": code, "items": counts[code], "meaning": REASONS[code]}
                for code in REASONS
                if counts[code]
            ],
            columns=["reason", "items", "meaning"],
        )

    def to_frame(self):
        """A pandas DataFrame with one row per item (kept and excluded), for display."""
        import pandas as pd

        records = []
        for r in self.rows:
            d = dataclasses.asdict(r)
            d["reasons"] = ", ".join(r.reasons)
            d["notes"] = "; ".join(r.notes)
            records.append(d)
        df = pd.DataFrame(records, columns=[f.name for f in dataclasses.fields(ValidationRow)])
        int_cols = ["sample_rate", "channels", "n_phonemes", "n_phones"]
        return df.astype({c: "Int64" for c in int_cols})  # integers with gaps (NA), not floats

    def describe(self) -> str:
        """A short human summary: totals, then one line per excluded item."""
        s = self.summary()
        lines = [f"{s['items']} items: {s['kept']} kept, {s['excluded']} excluded"]
        lines += [f"  {code}: {n}" for code, n in s["excluded_by_reason"].items()]
        lines += [f"  note {code}: {n}" for code, n in s["notes"].items()]
        lines += [f"- {r.id} [{r.reason}] {r.message}" for r in self.excluded]
        return "\n".join(lines)

    def __repr__(self) -> str:
        s = self.summary()
        return f"ValidationReport(items={s['items']}, kept={s['kept']}, excluded={s['excluded_by_reason']})"


def count_phones(phonemes: str) -> int:
    """Number of phones in a Kokoro phoneme string (spaces, punctuation, stress and length marks skipped)."""
    return sum(
        1
        for ch in phonemes
        if ch not in _NOT_PHONES and not ch.isspace() and not unicodedata.category(ch).startswith("P")
    )


def speech_span_s(y: np.ndarray, sample_rate: int, floor_db: float = 40.0) -> float:
    """Seconds from the first to the last 12.5 ms frame whose RMS is within `floor_db` of the loudest."""
    hop = max(1, int(round(sample_rate * 0.0125)))
    n = len(y) // hop
    if n == 0:
        return len(y) / sample_rate
    rms = np.sqrt(np.mean(np.square(y[: n * hop].reshape(n, hop), dtype=np.float64), axis=1))  # [n]
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (-floor_db / 20))
    return (loud[-1] - loud[0] + 1) * hop / sample_rate


def _check_audio(item: Item, st: ValidationSettings, row: ValidationRow, problems: list[tuple[str, str]]):
    """Audio checks; returns (mono samples [n], the file's rate), or None when the audio is unusable."""
    path = Path(item.wav_path)
    name = path.name
    if not path.is_file():
        problems.append(("missing_wav", f"{path}: wav file not found"))
        return None
    try:
        y, sr = read_audio(path)  # [n, c]
    except (AudioReadError, OSError) as exc:
        cause = exc.__cause__ or exc
        problems.append(("unreadable_wav", f"{name}: cannot be decoded as audio ({cause})"))
        return None
    row.sample_rate, row.channels = sr, y.shape[1]
    row.duration_s = round(y.shape[0] / sr, 4)
    if sr != st.sample_rate:
        row.notes += (f"resampled: {sr} -> {st.sample_rate} Hz",)
    if y.shape[1] != 1:
        row.notes += (f"down_mixed: {y.shape[1]} channels to mono",)
    if y.shape[0] == 0:
        problems.append(("empty_audio", f"{name}: the file holds no samples"))
        return None
    finite = np.isfinite(y)
    if not finite.all():
        problems.append(("non_finite", f"{name}: {int((~finite).sum())} samples are NaN or infinite"))
        return None
    mono = to_mono(y)  # [n]
    row.peak = round(float(np.abs(y).max()), 5)
    row.clip_fraction = round(float(np.mean(np.abs(y) >= st.clip_level)), 6)
    if row.peak < 10 ** (st.silence_dbfs / 20):
        problems.append(("silent_audio", f"{name}: peak {row.peak:.2g} is below {st.silence_dbfs:.0f} dBFS"))
        return None
    if row.clip_fraction > st.max_clip_fraction:
        problems.append(
            (
                "clipping",
                f"{name}: {100 * row.clip_fraction:.2f}% of samples at |x| >= {st.clip_level} "
                f"(limit {100 * st.max_clip_fraction:.2f}%)",
            )
        )
    if row.duration_s < st.min_duration_s:
        problems.append(
            ("too_short", f"{name}: {row.duration_s:.2f} s is shorter than {st.min_duration_s} s")
        )
    if row.duration_s > st.max_duration_s:
        problems.append(("too_long", f"{name}: {row.duration_s:.2f} s is longer than {st.max_duration_s} s"))
    return mono, sr


def _check_text(item: Item, phonemize: Callable[[str], str], st: ValidationSettings, row, problems):
    """Text checks; returns the phoneme string or None."""
    text = item.tts_text or ""
    name = Path(item.wav_path).name
    if not text.strip():
        extra = f" ({'; '.join(item.notes)})" if item.notes else ""
        problems.append(("empty_text", f"{name}: empty transcript{extra}"))
        return None
    try:
        phonemes = phonemize(text)
    except ValueError as exc:  # helpers.g2p.G2PError is a ValueError: nothing pronounceable
        problems.append(("no_phonemes", f"{name}: no phonemes for {text[:60]!r} ({exc})"))
        return None
    except Exception as exc:
        problems.append(("phonemize_failed", f"{name}: phonemizer failed on {text[:60]!r}: {exc!r}"))
        return None
    phonemes = (phonemes or "").strip()
    row.n_phonemes, row.n_phones = len(phonemes), count_phones(phonemes)
    if row.n_phones == 0:
        problems.append(("no_phonemes", f"{name}: no phonemes for {text[:60]!r} (got {phonemes!r})"))
        return None
    if row.n_phonemes > st.max_phonemes:
        problems.append(
            (
                "too_many_phonemes",
                f"{name}: {row.n_phonemes} phonemes, Kokoro reads at most {st.max_phonemes}",
            )
        )
    return phonemes


def validate_item(
    item: Item, phonemize: Callable[[str], str], settings: ValidationSettings | None = None
) -> tuple[ValidationRow, Item | None]:
    """Check one item. Returns its row and, when kept, a copy with phonemes, duration and notes filled."""
    st = settings or ValidationSettings()
    row = ValidationRow(item.id, str(item.wav_path), item.text, kept=False, notes=tuple(item.notes))
    problems: list[tuple[str, str]] = []
    audio = _check_audio(item, st, row, problems)
    phonemes = _check_text(item, phonemize, st, row, problems)
    if st.check_rate and audio is not None and row.n_phones:
        mono, sr = audio
        span = speech_span_s(mono, sr, st.speech_floor_db)
        row.phones_per_s = round(float(row.n_phones / max(span, 1e-3)), 2)
        if not st.min_phones_per_s <= row.phones_per_s <= st.max_phones_per_s:
            problems.append(
                (
                    "implausible_rate",
                    f"{Path(item.wav_path).name}: {row.phones_per_s:.1f} phones/s over {span:.2f} s of speech "
                    f"(plausible {st.min_phones_per_s:g}..{st.max_phones_per_s:g}); transcript may not match",
                )
            )
    return _finish(item, row, problems, phonemes)


def _finish(item: Item, row: ValidationRow, problems: list[tuple[str, str]], phonemes: str | None):
    order = list(REASONS)
    problems.sort(key=lambda p: order.index(p[0]))
    row.reasons = tuple(code for code, _ in problems)
    if problems:
        row.reason = problems[0][0]
        row.message = "; ".join(msg for _, msg in problems)
        return row, None
    row.kept = True
    kept = dataclasses.replace(item, phonemes=phonemes, duration_s=row.duration_s, notes=list(row.notes))
    return row, kept


def validate_items(
    items: Iterable[Item],
    phonemize: Callable[[str], str],
    settings: ValidationSettings | None = None,
    progress: bool = True,
) -> ValidationReport:
    """Validate every item; the report has one row per item in input order and the kept items."""
    st = settings or ValidationSettings()
    items = list(items)
    rows, kept, seen = [], [], set()
    for item in tqdm(items, desc="validating", disable=not progress):
        if item.id in seen:
            row = ValidationRow(item.id, str(item.wav_path), item.text, kept=False, notes=tuple(item.notes))
            row, _ = _finish(
                item,
                row,
                [
                    (
                        "duplicate_id",
                        f"{Path(item.wav_path).name}: id {item.id!r} already used by an earlier item",
                    )
                ],
                None,
            )
        else:
            row, ok = validate_item(item, phonemize, st)
            if ok is not None:
                kept.append(ok)
        seen.add(item.id)
        rows.append(row)
    return ValidationReport(rows, kept, st)


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
