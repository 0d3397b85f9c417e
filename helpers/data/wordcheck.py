"""The pocketsphinx cross-check of DTW durations: word edges from our durations vs its forced alignment.

Before aligning, the transcript is checked on its own (`transcript_doubt`): a URL, digits only, or fewer than 80%
of its words in an English dictionary (pocketsphinx's or misaki's) make the clip suspect, since a French or German
transcript on English audio would otherwise skip the alignment (its words are unknown) and pass unflagged.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

import numpy as np

from helpers.data.align import DTWSettings, silent_frames
from helpers.data.asr import decode, decoder, pocketsphinx_available, to_pcm16
from helpers.data.features import fit_to_grid
from helpers.grid import F0_FRAME_MS, FRAME_MS, SAMPLE_RATE
from helpers.kokoro.g2p import NON_SPEECH, kokoro_vocab


@dataclass(frozen=True)
class CheckSettings:
    """The independent check against pocketsphinx's forced word alignment."""

    enabled: bool = True
    max_junction_error_ms: float = (
        150.0  # any word edge this far off (speech only, after the offset): suspect
    )
    max_offset_ms: float = 300.0  # a constant offset larger than this: suspect too

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------ pocketsphinx word check


@dataclass
class WordCheck:
    """Our word edges vs pocketsphinx's forced alignment, after removing a constant offset (starts, ends)."""

    checked: bool
    suspect: bool = False
    reason: str = ""
    offset_start_ms: float = 0.0  # median (ours - pocketsphinx) over word starts
    offset_end_ms: float = 0.0  # the same over word ends
    mean_error_ms: float = float("nan")
    max_error_ms: float = float("nan")
    within_50ms: float = float("nan")  # fraction of junctions within 50 ms
    max_speech_error_ms: float = float("nan")  # the largest disagreement not explained by a pause
    words: list[dict] = field(default_factory=list)  # word, ours_start/end_ms, ps_start/end_ms, errors

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("words")
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in d.items()}

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.words)




# ------------------------------------------------------------------- is the transcript English at all?

MIN_ENGLISH_SHARE = 0.8  # English transcripts (names left out) measure 0.93-1.0; French and German 0.44-0.50
_URL = re.compile(r"\w+://|www\.|\S+@\S+\.\w|\w\.(com|org|net|html?)\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def english_lexicon_knows(word: str, dec=None) -> bool:
    """True when `word` is in an English dictionary: pocketsphinx's (`dec`, when given) or misaki's lexicon."""
    from helpers.kokoro.g2p import english_g2p

    lex = english_g2p(False).lexicon
    if any(w in lex.golds or w in lex.silvers for w in (word, word.lower(), word.capitalize())):
        return True
    return dec is not None and dec.lookup_word(word.lower()) is not None


def _name(text: str, m: re.Match) -> bool:
    """A capitalised word inside a sentence: a name, which no dictionary need know (left out of the share)."""
    before = text[: m.start()].rstrip()
    return m.group(0)[0].isupper() and bool(before) and before[-1] not in ".!?\"'“‘(—-:;"


def transcript_doubt(text: str, dec=None, min_share: float = MIN_ENGLISH_SHARE) -> str:
    """Why a transcript is likely not the English speech of its clip ("" when nothing is wrong): it holds a URL
    or e-mail address, it is digits only, or fewer than `min_share` of its words are in an English dictionary
    (French, German... on English audio). Numbers and capitalised words inside a sentence (names) are left out
    of the share: a year or a name is no foreign word."""
    if _URL.search(text):
        return f"the transcript holds a URL or e-mail address ({_URL.search(text).group(0)}...): write it as spoken"
    found = list(_WORD.finditer(text))
    if found and all(m.group(0).isdigit() for m in found):
        return "the transcript is digits only: spell the numbers out as they are spoken"
    lettered = [m.group(0) for m in found if not m.group(0).isdigit() and not _name(text, m)]
    if not lettered:
        return ""
    unknown = [w for w in lettered if not english_lexicon_knows(w, dec)]
    share = 1 - len(unknown) / len(lettered)
    if share < min_share:
        return (f"only {share:.0%} of its words are English dictionary words (limit {min_share:.0%}; not: "
                f"{', '.join(unknown[:6])}): is the transcript English, and of this clip?")  # fmt: skip
    return ""


PUNCTUATION = NON_SPEECH - set(" ˈˌː")  # marks with no sound of their own: commas, dashes, quotes...


def _word_units(text: str, phonemes: str):
    """Per misaki word token: (dictionary words, first token, last token, span start, span end) as token
    indices; the span also covers the punctuation marks right before and after the word. None if the
    phoneme string cannot be matched to misaki's tokens (then the check is skipped)."""
    from helpers.kokoro.g2p import english_g2p

    _, tokens = english_g2p(False)(text)
    vocab = kokoro_vocab()
    pieces, spans, pos = [], [], 0
    for tok in tokens:
        ph = tok.phonemes or ""
        spans.append((pos, pos + len(ph), tok))
        pieces.append(ph + (" " if tok.whitespace else ""))
        pos += len(pieces[-1])
    full = "".join(pieces)
    lead = len(full) - len(full.lstrip())
    if full.strip() != phonemes:
        return None
    tok_index = np.cumsum([1 if ch in vocab else 0 for ch in full])  # token id index (BOS = 0) per char
    units = []
    for a, b, tok in spans:
        phone_pos = [i for i in range(a, b) if full[i] in vocab and full[i] not in NON_SPEECH]
        if not phone_pos or a < lead:
            continue
        words = re.findall(r"[a-z0-9']+", tok.text.lower())
        onset = phone_pos[0]
        while onset > a and full[onset - 1] in "ˈˌ":  # "ˈɔl": Kokoro voices the vowel's onset in the stress mark
            onset -= 1
        first, last = onset, phone_pos[-1]
        while first > 0 and full[first - 1] in PUNCTUATION and full[first - 1] in vocab:
            first -= 1
        while last + 1 < len(full) and full[last + 1] in PUNCTUATION and full[last + 1] in vocab:
            last += 1
        t0, t1 = int(tok_index[onset]), int(tok_index[phone_pos[-1]])
        units.append((words, t0, t1, int(tok_index[first]), int(tok_index[last])))
    return units


def check_word_boundaries(
    text: str,
    phonemes: str,
    durations: np.ndarray,
    audio: np.ndarray,
    settings: CheckSettings = CheckSettings(),
    silent: np.ndarray | None = None,
) -> WordCheck:
    """Compare word starts/ends implied by `durations` with pocketsphinx's forced alignment of `text`.

    Both sets of edges are compared after removing a constant offset (the median difference, separately
    for word starts and ends: pocketsphinx starts words early). An edge counts against us only for the
    *speech* between the two positions: pocketsphinx often lets a word swallow the pause after it, and a
    disagreement over which side of a pause an edge sits is no error. Likewise for punctuation (which
    pocketsphinx never sees, and which has no sound of its own): an edge anywhere within the marks next to
    a word ("man," or "more—") counts as that word's edge. `silent` (2F,) are the recording's
    silent frames (computed with the default DTWSettings when not given). Suspect: more than
    `max_junction_error_ms` of speech at any edge, or an offset beyond `max_offset_ms`.

    First the transcript itself (`transcript_doubt`): a URL, digits only, or too few English dictionary words
    make the item suspect without alignment (checked=False, suspect=True). Skipped (checked=False, with the
    reason) when pocketsphinx is missing, a word is not in its dictionary, or the phoneme string does not come
    from misaki's tokens of `text`. When pocketsphinx finds no
    alignment at all for a transcript it knows every word of, the item is suspect (the text likely does
    not match the audio).
    """
    if not settings.enabled:
        return WordCheck(False, reason="check disabled")
    dec = decoder(align=True) if pocketsphinx_available() else None
    doubt = transcript_doubt(text, dec)  # its own check: a transcript pocketsphinx cannot align is no pass
    if doubt:
        return WordCheck(False, True, doubt)
    if dec is None:
        return WordCheck(False, reason="pocketsphinx not installed (pip install pocketsphinx)")
    units = _word_units(text, phonemes)
    if units is None:
        return WordCheck(False, reason="phonemes do not match the G2P tokens of the text")
    oov = sorted({w for ws, *_ in units for w in ws if dec.lookup_word(w) is None})
    if oov or any(not ws for ws, *_ in units):
        return WordCheck(
            False, reason=f"not in pocketsphinx's dictionary: {', '.join(oov) or '(no letters)'} (the text passed "
            f"the English-words check, {MIN_ENGLISH_SHARE:.0%}); word edges not cross-checked"
        )
    pcm = to_pcm16(audio, SAMPLE_RATE)
    words = [w for ws, *_ in units for w in ws]
    try:
        dec.set_align_text(" ".join(words))
        decode(dec, pcm)
        segs = [(re.sub(r"\(\d+\)$", "", s.word), s.start_frame, s.end_frame) for s in dec.seg()]
    except Exception:  # no segmentation: no path through the transcript's words reached the end
        segs = []
    segs = [s for s in segs if not s[0].startswith(("<", "["))]
    if [s[0] for s in segs] != words:  # every word is in the dictionary, so the audio disagrees
        return WordCheck(True, True, "pocketsphinx cannot align the transcript to the audio (wrong text?)")
    edges = np.concatenate([[0], np.cumsum(durations)]) * FRAME_MS  # (T + 1,) ms
    rows, k = [], 0
    spans = []  # per word: the instants its start and end may take (either side of adjacent punctuation)
    for ws, t0, t1, s0, s1 in units:
        first, last = segs[k], segs[k + len(ws) - 1]
        k += len(ws)
        rows.append(
            {
                "word": " ".join(ws),
                "ours_start_ms": float(edges[t0]),
                "ours_end_ms": float(edges[t1 + 1]),
                "ps_start_ms": first[1] * 10.0,
                "ps_end_ms": (last[2] + 1) * 10.0,
            }
        )
        spans.append(((float(edges[s0]), float(edges[t0])), (float(edges[t1 + 1]), float(edges[s1 + 1]))))
    ds = np.array([r["ours_start_ms"] - r["ps_start_ms"] for r in rows])
    de = np.array([r["ours_end_ms"] - r["ps_end_ms"] for r in rows])
    off_s, off_e = float(np.median(ds)), float(np.median(de))
    if silent is None:
        silent = silent_frames(fit_to_grid(audio), DTWSettings())
    speech_ms = np.concatenate([[0.0], np.cumsum(~silent) * F0_FRAME_MS])  # non-silent ms before frame i

    def speech_between(a_ms: float, b_ms: float) -> float:
        """Milliseconds of non-silent recording between two instants (a pause separates them for free)."""
        ia, ib = (int(np.clip(round(x / F0_FRAME_MS), 0, len(silent))) for x in sorted((a_ms, b_ms)))
        return float(speech_ms[ib] - speech_ms[ia])

    def speech_to_span(span: tuple[float, float], x_ms: float) -> float:
        """Speech between `x_ms` and the nearest instant of `span`: 0 inside it. A punctuation mark has no
        sound of its own, so an edge on either side of it is the same word edge."""
        lo, hi = span
        return 0.0 if lo <= x_ms <= hi else min(speech_between(lo, x_ms), speech_between(hi, x_ms))

    errs = []
    for r, a, b, (start_span, end_span) in zip(rows, ds, de, spans):
        r["start_error_ms"], r["end_error_ms"] = round(float(a - off_s), 1), round(float(b - off_e), 1)
        r["start_speech_ms"] = speech_to_span(start_span, r["ps_start_ms"] + off_s)
        r["end_speech_ms"] = speech_to_span(end_span, r["ps_end_ms"] + off_e)
        errs.append((r["start_speech_ms"], r["word"], "start"))
        errs.append((r["end_speech_ms"], r["word"], "end"))
    err = np.abs(np.concatenate([ds - off_s, de - off_e]))
    wc = WordCheck(
        True,
        offset_start_ms=off_s,
        offset_end_ms=off_e,
        mean_error_ms=float(err.mean()),
        max_error_ms=float(err.max()),
        within_50ms=float((err <= 50).mean()),
        max_speech_error_ms=max(e for e, _, _ in errs),
        words=rows,
    )
    problems = []
    worst, word, side = max(errs)
    if worst > settings.max_junction_error_ms:
        problems.append(
            f"word {word!r} {side}: {worst:.0f} ms of speech between our edge and pocketsphinx's "
            f"(limit {settings.max_junction_error_ms:g})"
        )
    if max(abs(off_s), abs(off_e)) > settings.max_offset_ms:
        problems.append(f"constant offset {off_s:.0f}/{off_e:.0f} ms (limit {settings.max_offset_ms:g})")
    wc.suspect, wc.reason = bool(problems), "; ".join(problems)
    return wc


