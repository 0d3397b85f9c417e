"""Word spans from per-token durations (helpers.data.truth), scored against known word timing."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.data.truth import compare_words, summarize, word_spans
from helpers.data.wordcheck import _word_units
from helpers.kokoro.g2p import phonemes_to_ids

TEXT = "Owls eat, and all ants sleep."
PHONEMES = "ˈWlz ˈit, ænd ˈɔl ˈænts slˈip."  # misaki's phonemes of TEXT (its G2P is what prepare uses)


def _durations() -> np.ndarray:
    ids = phonemes_to_ids(PHONEMES)
    return np.arange(1, len(ids) + 1) % 3 + 1  # (T,) 1-3 frames each, no two neighbours equal


def _edge(d: np.ndarray, t: int) -> float:
    return float(d[:t].sum() * 25.0)  # start of token t, ms (token 0 is BOS; token t is character t - 1)


def test_a_stressed_vowel_starts_its_word_at_the_stress_mark():
    units = _word_units(TEXT, PHONEMES)
    assert [ws for ws, *_ in units] == [["owls"], ["eat"], ["and"], ["all"], ["ants"], ["sleep"]]
    assert all(PHONEMES[t0 - 1] in "ˈˌ" for _, t0, *_ in units[:2])  # "ˈWlz", "ˈit": the mark is the onset
    assert PHONEMES[units[2][1] - 1] == "æ"  # "ænd" has no mark: its first phone starts it


def test_word_spans_follow_the_token_edges_with_the_space_before_each_word():
    d = _durations()
    plain = word_spans(TEXT, PHONEMES, d, space=False)
    spaced = word_spans(TEXT, PHONEMES, d)
    assert [s.words for s in spaced] == [["owls"], ["eat"], ["and"], ["all"], ["ants"], ["sleep"]]
    assert plain[0].start_ms == _edge(d, 1) == spaced[0].start_ms  # the first word has no space before it
    eat = PHONEMES.index("ˈit") + 1  # token index of the stress mark of "eat"
    assert plain[1].start_ms == _edge(d, eat) and spaced[1].start_ms == _edge(d, eat - 1)  # the space joins
    assert [s.end_ms for s in plain] == [s.end_ms for s in spaced]
    assert plain[-1].end_ms == _edge(d, PHONEMES.index("p.") + 2)  # the last phone ends the word, not the "."
    assert word_spans("Something else entirely.", PHONEMES, d) is None  # phonemes of another text


def test_compare_words_scores_signed_errors_against_the_truth():
    spans = word_spans(TEXT, PHONEMES, _durations())
    truth = [[s.words[0].capitalize(), s.start_ms / 1000 - 0.02, s.end_ms / 1000 + 0.01] for s in spans]
    pau = [["pau", truth[1][2], truth[1][2] + 0.2]]  # a pause after "eat"
    cmp = compare_words(spans, truth, pau)
    assert np.allclose(cmp["start_ms"], 20.0) and np.allclose(cmp["end_ms"], -10.0)
    assert cmp["pause_after"].tolist() == [False, True, False, False, False, False]
    assert compare_words(spans, truth[:-1]) is None  # a word missing: not comparable
    s = summarize(np.concatenate([cmp["start_ms"], cmp["end_ms"]]))
    assert s["mean_ms"] == pytest.approx(15.0) and s["within_20"] == 100.0 and s["within_50"] == 100.0
    assert s["n"] == 12 and summarize([])["n"] == 0
