"""Word boundaries from per-token durations, measured against a speaker whose timing is known.

The workbook's durations are per Kokoro token (BOS, phones, stress marks, spaces, punctuation, EOS). A word's
span is that of its phonemized tokens: from the start of its first token to the end of its last
(`helpers.data.wordcheck`'s mapping of misaki's word tokens to token indices, stress marks included, widened to
the space before the word); punctuation belongs to no word. The truth is Festival's word starts and ends
(`helpers.data.festival`): a word starts where its first phone starts and ends where its last phone ends, pauses
being `pau` phones between words.

    word_spans(text, phonemes, durations, space=True) -> list[WordSpan] | None   # None: not misaki's of text
    compare_words(spans, truth_words) -> dict | None                  # None: the word lists differ
        {"start_ms": (W,) signed errors (ours - truth), "end_ms": (W,), "words": [...], "pause_after": (W,) bool}
    score_clips(items, folder) -> (rows, unscored)   # prepared clips against the timing Festival saved beside them
    summarize(errors_ms) -> dict(mean_ms, median_ms, p95_ms, within_20, within_50, n)   # on |errors|
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from helpers.data.festival import read_timing
from helpers.data.wordcheck import _word_units
from helpers.grid import FRAME_MS
from helpers.kokoro.g2p import kokoro_vocab


@dataclass
class WordSpan:
    words: list[str]  # the dictionary words of one misaki token (usually one)
    start_ms: float
    end_ms: float


def _norm(word: str) -> str:
    return "".join(re.findall(r"[a-z0-9']+", word.lower()))


def word_spans(text: str, phonemes: str, durations: np.ndarray, space: bool = True) -> list[WordSpan] | None:
    """Each word's start and end (ms) implied by per-token `durations` (T,) in 25 ms frames.

    The word check's spans (first token: the stress mark before a stressed first vowel, ``ˈɔl``; last: the last
    phone), plus, with `space`, the space token right before the word: Kokoro voices the next word's onset in it
    (benchmarks/README.md, "Alignment against a speaker with known timing")."""
    units = _word_units(text, phonemes)
    if units is None:
        return None
    vocab = kokoro_vocab()
    chars = ["BOS"] + [c for c in phonemes if c in vocab] + ["EOS"]  # token t's character
    edges = np.concatenate([[0], np.cumsum(durations)]) * FRAME_MS  # (T + 1,) ms
    spans = []
    for ws, t0, t1, _, _ in units:
        if space and t0 > 1 and chars[t0 - 1] == " ":
            t0 -= 1
        spans.append(WordSpan(list(ws), float(edges[t0]), float(edges[t1 + 1])))
    return spans


def compare_words(spans: list[WordSpan], truth_words: list, truth_phones: list | None = None) -> dict | None:
    """Signed start/end errors (ms, ours - truth) per word; `truth_words` [[word, start_s, end_s], ...].

    A span holding several dictionary words is compared with the first one's start and the last one's end.
    None when the two word sequences differ (then the clip cannot be scored)."""
    truth = [(_norm(w), float(a) * 1000, float(b) * 1000) for w, a, b in truth_words]
    ours = [_norm(w) for s in spans for w in s.words]
    if ours != [w for w, _, _ in truth]:
        return None
    pauses = [(float(a) * 1000, float(b) * 1000) for p, a, b in (truth_phones or []) if p == "pau"]
    start, end, names, pause_after, k = [], [], [], [], 0
    for s in spans:
        first, last = truth[k], truth[k + len(s.words) - 1]
        k += len(s.words)
        start.append(s.start_ms - first[1])
        end.append(s.end_ms - last[2])
        names.append(" ".join(s.words))
        pause_after.append(any(abs(a - last[2]) < 1.0 and b - a > 0 for a, b in pauses))
    return {
        "start_ms": np.asarray(start),
        "end_ms": np.asarray(end),
        "words": names,
        "pause_after": np.asarray(pause_after, dtype=bool),
    }


def score_clips(items, folder, space: bool = True) -> tuple[list[dict], list[str]]:
    """Each prepared clip (`ItemTargets`) against the truth saved in `folder` (`helpers.data.festival.read_timing`):
    rows ``{"id", "suspect", "checked", **compare_words(...)}``, and the ids whose words could not be matched."""
    rows, unscored = [], []
    for tg in items:
        truth = read_timing(folder, tg.id)
        spans = word_spans(tg.text, tg.phonemes, tg.durations, space=space)
        cmp = compare_words(spans, truth["words"], truth["phones"]) if spans else None
        if cmp is None:
            unscored.append(tg.id)
            continue
        rows.append({"id": tg.id, "suspect": tg.suspect, "checked": bool(tg.check.get("checked")), **cmp})
    return rows, unscored


def summarize(errors_ms) -> dict:
    """Mean, median and 95th percentile of |error| (ms), % within 20 and 50 ms, and n."""
    e = np.abs(np.asarray(errors_ms, dtype=float))
    if e.size == 0:
        return {"mean_ms": float("nan"), "median_ms": float("nan"), "p95_ms": float("nan"),
                "within_20": float("nan"), "within_50": float("nan"), "n": 0}  # fmt: skip
    return {
        "mean_ms": float(e.mean()),
        "median_ms": float(np.median(e)),
        "p95_ms": float(np.percentile(e, 95)),
        "within_20": float(100 * (e <= 20).mean()),
        "within_50": float(100 * (e <= 50).mean()),
        "n": int(e.size),
    }
