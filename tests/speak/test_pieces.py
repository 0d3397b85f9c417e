"""Long text -> pieces of at most 510 phonemes, at sentences, then clauses, then words; nothing lost."""

from __future__ import annotations

import re

import pytest

from helpers.kokoro.g2p import G2PError
from helpers.speak.pieces import sentences, split_text


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_sentences_and_paragraphs():
    text = "First one.  Second one?\nStill the second paragraph's line!\n\nNew paragraph without a stop\n\nLast."
    assert sentences(text) == ["First one.", "Second one?", "Still the second paragraph's line!",
                               "New paragraph without a stop", "Last."]  # fmt: skip


def test_each_sentence_is_a_piece_when_it_fits():
    pieces, skipped = split_text("The cat sat. The dog ran away quickly!")
    assert [p.text for p in pieces] == ["The cat sat.", "The dog ran away quickly!"] and skipped == []
    assert all(0 < p.n_phonemes <= 510 for p in pieces)


def test_long_sentence_is_cut_at_clauses_then_words():
    clause = "the old clock in the hallway ticked slowly through the long and quiet winter night"
    text = ", ".join([clause] * 12) + "."  # one sentence, far over 510 phonemes
    pieces, _ = split_text(text, limit=200)
    assert len(pieces) > 1 and all(p.n_phonemes <= 200 for p in pieces)
    assert all(p.text.rstrip(".").endswith(("night", "night,")) for p in pieces[:-1])  # cut after commas
    assert _words(" ".join(p.text for p in pieces)) == _words(text)  # every word kept, in order
    no_commas = " ".join([clause] * 6) + "."
    pieces, _ = split_text(no_commas, limit=120)
    assert len(pieces) > 1 and all(p.n_phonemes <= 120 for p in pieces)
    assert _words(" ".join(p.text for p in pieces)) == _words(no_commas)


def test_unspeakable_text():
    pieces, skipped = split_text("Hello there. *** \n\n — \n\nGoodbye.")
    assert [p.text for p in pieces] == ["Hello there.", "Goodbye."] and len(skipped) == 2
    with pytest.raises(G2PError, match="empty"):
        split_text("   \n ")
    with pytest.raises(G2PError, match="nothing pronounceable"):
        split_text("*** ---")
