"""The validation report: every item checked (audio, text, length), each refusal with a code, the value and the limit.

Every item gets a row, whatever went wrong: rows the reader could not read (`malformed_row`,
`bad_encoding`), audio problems, and transcripts that are not English speech. The text is screened
*before* G2P (`helpers.kokoro.textscreen`: emoji, control characters, other scripts, no Latin letter),
and such items are refused; synthesis instead strips those characters with a warning.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from helpers.data.audio import AudioReadError, read_audio, to_mono
from helpers.data.readers import _NOT_PHONES, Item
from helpers.grid import SAMPLE_RATE
from helpers.kokoro.textscreen import PROBLEMS, screen_text

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
    "malformed_row": "the metadata line is not 'id|text[|normalized]' (file:line in the message)",
    "bad_encoding": "the transcript is neither UTF-8 nor UTF-16 with a BOM (file:line in the message)",
    "bad_id": "the id names a file outside the dataset's audio folder ('..', an absolute path)",
    "missing_wav": "the audio file does not exist (.wav, .flac, .mp3 or .ogg)",
    "unreadable_wav": "the file exists but cannot be decoded as audio",
    "empty_audio": "the file holds no samples",
    "non_finite": "samples are NaN or infinite",
    "silent_audio": "the whole clip is (near) digital silence",
    "clipping": "too many samples at full scale",
    "too_short": "clip shorter than min_duration_s",
    "too_long": "clip longer than max_duration_s",
    "empty_text": "the transcript is empty",
    **PROBLEMS,  # emoji, control_chars, other_script, no_latin_letters: checked on the text before G2P
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
    "extra_columns": "the metadata line has more than id|text|normalized: the rest is ignored",
    "no_punctuation": "no punctuation: Kokoro times speech by it, so DTW targets are less reliable",
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
        problems.append(("missing_wav", f"{path}: audio file not found (looked for .wav, .flac, .mp3, .ogg)"))
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
    screen = screen_text(text)  # before G2P: spelled-out emoji names must never pass as words
    for i, p in enumerate(screen.problems):
        said = f"transcript {text[:60]!r}: " if i == 0 else ""
        problems.append((p.code, f"{name}: {said}{PROBLEMS[p.code]} ({p})"))
    if screen.problems:
        return None
    if not any(unicodedata.category(ch).startswith("P") for ch in text):  # benchmarks/bench_wordcheck.py
        row.notes += ("no_punctuation: the transcript has none; keep the original punctuation if you can",)
    try:
        phonemes = phonemize(text)
    except ValueError as exc:  # helpers.kokoro.g2p.G2PError is a ValueError: nothing pronounceable
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
    if item.problem is not None:  # the reader could not read this row or file: nothing else to check
        return _finish(item, row, [item.problem], None)
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


