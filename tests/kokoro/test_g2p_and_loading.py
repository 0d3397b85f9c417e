"""G2P runs with the network off; bad input gets a clear error naming the problem."""

from __future__ import annotations

import pytest
import torch

from helpers.kokoro import g2p
from helpers.kokoro.voices import JAPANESE_VOICES, VoiceError, load_voice


def test_g2p_works_with_network_off(no_network):
    ps = g2p.phonemize("Hello world, this is a test.")
    assert ps == "həlˈO wˈɜɹld, ðɪs ɪz ɐ tˈɛst."
    # an out-of-vocabulary word goes through the espeak fallback, still offline
    assert len(g2p.phonemize("Zorblaxian quibbets")) > 8


def test_ids_have_bos_eos_and_known_symbols():
    ps, ids = g2p.text_to_ids("Good morning.")
    assert ids[0] == 0 and ids[-1] == 0
    assert all(1 <= i <= 177 for i in ids[1:-1])
    assert len(ids) == len([p for p in ps if p in g2p.kokoro_vocab()]) + 2


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_refused(text):
    with pytest.raises(g2p.G2PError, match="empty text"):
        g2p.phonemize(text)


@pytest.mark.parametrize("text", ["---", "... !!! ???"])
def test_text_without_pronounceable_symbols_is_refused(text):
    with pytest.raises(g2p.G2PError, match="no pronounceable"):
        g2p.phonemize(text)


def test_unknown_phoneme_symbols_are_reported():
    with pytest.raises(g2p.G2PError, match="does not know"):
        g2p.phonemes_to_ids("həlˈO 你", strict=True)


def test_over_limit_is_a_clear_error_that_says_how_to_split():
    long_text = " ".join(["The rain in Spain stays mainly in the plain."] * 20)
    ps = g2p.phonemize(long_text)
    with pytest.raises(g2p.G2PError, match=r"over Kokoro's limit of 510.*[Ss]plit"):
        g2p.phonemes_to_ids(ps)
    from helpers.kokoro.synth import split_sentences

    for sentence in split_sentences(long_text):
        assert len(g2p.phonemes_to_ids(g2p.phonemize(sentence))) <= 512


def test_missing_voice_names_the_alternatives():
    with pytest.raises(VoiceError, match="af_heart.*jf_alpha"):
        load_voice("af_nonexistent", "offline-int8")
    with pytest.raises(VoiceError, match="need the hub"):
        load_voice("af_sarah", "offline-int8")


def test_japanese_voice_packs_have_kokoro_shape():
    for name in JAPANESE_VOICES:
        pack = load_voice(name)
        assert pack.shape == (510, 1, 256) and pack.dtype == torch.float32


def test_random_source_says_it_is_random(kokoro_small_random):
    assert kokoro_small_random.source == "random"
    assert "RANDOM" in kokoro_small_random.note and "unit tests" in kokoro_small_random.note


def test_unknown_source_is_refused():
    from helpers.kokoro.loading import load_kokoro

    with pytest.raises(ValueError, match="unknown weights source"):
        load_kokoro("pretrained-please")
