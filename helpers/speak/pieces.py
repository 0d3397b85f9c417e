"""Long text -> pieces Kokoro can take: at most 510 phonemes each, cut at sentences, then clauses, then words.

    split_text("A long chapter ...") -> [Piece(text, phonemes), ...]

Kokoro reads at most 510 phonemes per call (512 positions with BOS/EOS: `helpers.kokoro.g2p.MAX_PHONEMES`).
A sentence is one piece (its own prosody, its own voice-pack row); a sentence longer than the limit is cut at
its clause punctuation (, ; : and dashes), clauses packed greedily back together while they fit; a clause that
is still too long is cut between words the same way. Paragraph breaks (blank lines) always end a sentence.
Text with nothing to say (a lone dash, "***") is skipped and reported, never spoken as noise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from helpers.kokoro.g2p import MAX_PHONEMES, G2PError, kokoro_vocab, phonemize

_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE = re.compile(r"(?<=[.!?…])[\"')\]”’]*\s+")
_CLAUSE = re.compile(r"(?<=[,;:])\s+|\s+(?=[—–-]{1,2}\s)|(?<=[—–])\s*")


@dataclass
class Piece:
    """One call's worth of text and its phonemes (n_phonemes <= 510)."""

    text: str
    phonemes: str

    @property
    def n_phonemes(self) -> int:
        return n_phonemes(self.phonemes)


def n_phonemes(phonemes: str) -> int:
    """Phonemes Kokoro keeps (symbols it does not know are dropped, as Kokoro drops them)."""
    vocab = kokoro_vocab()
    return sum(p in vocab for p in phonemes)


def sentences(text: str) -> list[str]:
    """Sentences, in order, whitespace normalised; paragraph breaks end a sentence."""
    out = []
    for para in _PARAGRAPH.split(text):
        para = " ".join(para.split())
        out += [s.strip() for s in _SENTENCE.split(para) if s.strip()]
    return out


def _pack(parts: list[str], limit: int, finer) -> list[Piece]:
    """Greedily join consecutive parts while the joined text fits `limit`; a part too long alone goes to `finer`."""
    pieces: list[Piece] = []
    cur: list[str] = []
    cur_piece: Piece | None = None
    for part in parts:
        trial = " ".join([*cur, part])
        ph = _phonemes_or_none(trial)
        if ph is not None and n_phonemes(ph) <= limit:
            cur, cur_piece = [*cur, part], Piece(trial, ph)
            continue
        if cur_piece is not None:
            pieces.append(cur_piece)
        cur, cur_piece = [], None
        ph = _phonemes_or_none(part)
        if ph is not None and n_phonemes(ph) <= limit:
            cur, cur_piece = [part], Piece(part, ph)
        elif ph is not None:
            pieces += finer(part, limit)
        # a part with nothing to say is dropped here (split_text reports the skipped text)
    if cur_piece is not None:
        pieces.append(cur_piece)
    return pieces


def _phonemes_or_none(text: str) -> str | None:
    try:
        return phonemize(text)
    except G2PError:
        return None


def _by_words(text: str, limit: int) -> list[Piece]:
    def too_long_word(word: str, limit: int) -> list[Piece]:
        raise G2PError(f"one word has over {limit} phonemes and cannot be spoken by Kokoro: {word[:60]!r}")

    return _pack(text.split(), limit, too_long_word)


def _by_clauses(sentence: str, limit: int) -> list[Piece]:
    clauses = [c for c in _CLAUSE.split(sentence) if c and c.strip()]
    if len(clauses) <= 1:
        return _by_words(sentence, limit)
    return _pack(clauses, limit, _by_words)


def split_text(text: str, limit: int = MAX_PHONEMES) -> tuple[list[Piece], list[str]]:
    """(pieces, skipped): every sentence as one piece, over-long ones cut at clauses, then words.

    `skipped` lists the sentences with nothing pronounceable. Empty or unspeakable text is a G2PError.
    """
    if not 1 <= limit <= MAX_PHONEMES:
        raise ValueError(f"limit must be in 1..{MAX_PHONEMES}, got {limit}")
    if text is None or not str(text).strip():
        raise G2PError("empty text: nothing to say")
    pieces: list[Piece] = []
    skipped: list[str] = []
    for s in sentences(str(text)):
        ph = _phonemes_or_none(s)
        if ph is None:
            skipped.append(s)
        elif n_phonemes(ph) <= limit:
            pieces.append(Piece(s, ph))
        else:
            pieces += _by_clauses(s, limit)
    if not pieces:
        raise G2PError(f"nothing pronounceable in the text: {str(text)[:60]!r}")
    return pieces, skipped
