"""Is this English text? The screen every transcript and every synthesis request passes *before* G2P.

misaki's English G2P speaks whatever it is given: the emoji 🙂 becomes "slightly smiling face", a Chinese
character "Chinese letter", a control character a number. Once phonemized, those names look like words,
so the check has to run on the raw text:

    screen_text("Hello 🙂")  -> TextScreen(problems=(TextProblem("emoji", "'🙂' (U+1F642)"),), cleaned="Hello")
    screen_text("你好")      -> problems other_script and no_latin_letters; cleaned ""

Problem codes (in order of priority):

    emoji             emoji and pictographs (and their joiners, variation selectors, skin tones)
    control_chars     control and invisible format characters (tab, newline and carriage return are spaces)
    other_script      letters of another script (CJK, Arabic, Cyrillic, Greek...); accented Latin is fine
    no_latin_letters  nothing English left to say: no Latin letter and no digit

What the callers do with a problem (the one rule, stated once):

* validation (`helpers.data.validate`) and the text corpus **refuse** the item, with the code;
* synthesis (`helpers.kokoro.g2p.phonemize`, so `helpers.kokoro.synth.synthesize`) **warns and strips**
  the offending characters, and refuses only when nothing English is left (`no_latin_letters`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

PROBLEMS: dict[str, str] = {
    "emoji": "emoji or pictographs: the G2P would speak their names",
    "control_chars": "control or invisible format characters",
    "other_script": "letters of a script other than Latin: the English G2P cannot read them",
    "no_latin_letters": "no Latin letter or digit: nothing English to say",
}

_EMOJI_RANGES = ((0x2190, 0x2BFF), (0x1F000, 0x1FAFF), (0x1FC00, 0x1FFFD))  # arrows..symbols, pictographs
_EMOJI_PARTS = {0x200D, 0x20E3, 0xFE0E, 0xFE0F}  # zero-width joiner, keycap, text/emoji presentation
_SPACES = {"\t", "\n", "\r"}


@dataclass(frozen=True)
class TextProblem:
    code: str  # a key of PROBLEMS
    chars: str  # the offending characters, shown with their code points ("" for no_latin_letters)

    def __str__(self) -> str:
        return f"{self.code}: {self.chars}" if self.chars else self.code


@dataclass(frozen=True)
class TextScreen:
    """The verdict on one text: its problems (empty when fine) and the text with the offenders removed."""

    text: str
    problems: tuple[TextProblem, ...]
    cleaned: str

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(p.code for p in self.problems)

    def describe(self) -> str:
        """One line: 'emoji '🙂' (U+1F642); no_latin_letters' (empty when fine)."""
        return "; ".join(str(p) for p in self.problems)


def _kind(ch: str) -> str | None:
    """The problem code of one character, or None when English text may contain it."""
    cp, cat = ord(ch), unicodedata.category(ch)
    if cp in _EMOJI_PARTS or (0x1F3FB <= cp <= 0x1F3FF):
        return "emoji"
    if cat == "So" and any(a <= cp <= b for a, b in _EMOJI_RANGES):
        return "emoji"
    if ch in _SPACES:
        return None
    if cat in ("Cc", "Cf", "Cs", "Co", "Cn"):
        return "control_chars"
    if cat in ("Lu", "Ll", "Lt", "Lo") and "LATIN" not in unicodedata.name(ch, ""):
        return "other_script"
    return None


def _show(chars: list[str], limit: int = 4) -> str:
    uniq = list(dict.fromkeys(chars))
    shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in uniq[:limit])
    return shown + (f" and {len(uniq) - limit} more" if len(uniq) > limit else "")


def screen_text(text: str) -> TextScreen:
    """Check `text` for what an English G2P must not see (see the module docstring for the codes)."""
    text = unicodedata.normalize("NFC", text or "")
    found: dict[str, list[str]] = {}
    kept = []
    for ch in text:
        kind = _kind(ch)
        if kind is None:
            kept.append(" " if ch in _SPACES else ch)
        else:
            found.setdefault(kind, []).append(ch)
    cleaned = " ".join("".join(kept).split())
    if found:  # no space left hanging before a mark where a character was removed ("Hi 🙂." -> "Hi.")
        cleaned = re.sub(r"\s+([.,!?;:…])", r"\1", cleaned)
    problems = [TextProblem(code, _show(found[code])) for code in PROBLEMS if code in found]
    if not any(_is_latin_or_digit(c) for c in cleaned):
        problems.append(TextProblem("no_latin_letters", ""))
    return TextScreen(text, tuple(problems), cleaned)


def _is_latin_or_digit(ch: str) -> bool:
    return ("0" <= ch <= "9") or (ch.isalpha() and "LATIN" in unicodedata.name(ch, ""))
