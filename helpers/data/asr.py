"""Offline English speech recognition: the workbook's one pocketsphinx set-up (its bundled en-us model).

Two uses, one decoder factory:

    transcribe(audio, sample_rate)      recognition with the bundled language model -> lower-case words
    decoder(align=True)                 the same acoustic model set up for forced alignment
                                        (helpers.data.wordcheck sets the transcript with set_align_text)
    decode(dec, pcm)                    one utterance through either, from a reset state (no history)

Pocketsphinx is a small 2010s-era HMM recogniser: weak in absolute terms (it misses words even on clean
read speech), so a WER from it is valid only as a relative check between two systems judged on the same
sentences, never as an intelligibility score to quote on its own.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from helpers.data.audio import resample
from helpers.grid import SAMPLE_RATE

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'"})
_NOT_WORD = re.compile(r"[^a-z0-9' ]+")
ASR_SAMPLE_RATE = 16_000  # pocketsphinx's English model is trained on 16 kHz audio


def pocketsphinx_available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=2)
def decoder(align: bool = False):
    """The bundled US English model at 16 kHz with quiet logs; `align=True` drops the language model
    (forced alignment needs none), `align=False` keeps it for free recognition."""
    from pocketsphinx import Decoder

    if align:
        return Decoder(lm=None, samprate=ASR_SAMPLE_RATE, logfn="/dev/null")
    return Decoder(loglevel="FATAL")  # acoustic model, dictionary and language model bundled on PyPI


def decode(dec, pcm: np.ndarray) -> None:
    """One whole utterance (int16 PCM at 16 kHz) through `dec`, from a reset feature state (cepstral mean, noise
    estimate): the result depends on this utterance alone, never on what the decoder heard before. Without the
    reset a clip's word edges change with the clips aligned before it in the same process (a word check can flip),
    so a process pool and the serial loop would disagree (helpers.data.pool)."""
    dec.reinit_feat()
    dec.start_utt()
    dec.process_raw(pcm.tobytes(), full_utt=True)
    dec.end_utt()


def to_pcm16(audio, sample_rate: int = SAMPLE_RATE, normalize: bool = False) -> np.ndarray:
    """Float samples at `sample_rate` -> int16 PCM at 16 kHz (optionally peak-normalised to 0.9)."""
    y = np.asarray(audio, dtype=np.float32).ravel()
    if sample_rate != ASR_SAMPLE_RATE:
        y = resample(y, sample_rate, ASR_SAMPLE_RATE)
    if normalize:
        peak = float(np.abs(y).max()) if y.size else 0.0
        y = y / peak * 0.9 if peak >= 1e-6 else y * 0.0
    return (np.clip(y, -1.0, 1.0) * 32767).astype(np.int16)


def normalize_text(text: str) -> str:
    """Lower case, curly apostrophes straightened, hyphens/dashes and punctuation to spaces, single spaces.

    Numbers are not spelled out: pick reference sentences without digits for WER (or normalise them).
    """
    text = (text or "").lower().translate(_APOSTROPHES)
    text = _NOT_WORD.sub(" ", text)
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)



def transcribe(audio, sample_rate: int = SAMPLE_RATE) -> str:
    """Recognise English speech offline; lower-case words ('' for silence). A relative check only."""
    pcm = to_pcm16(audio, sample_rate, normalize=True)
    if not pcm.any():
        return ""
    dec = decoder(align=False)
    decode(dec, pcm)
    hyp = dec.hyp()
    return normalize_text(hyp.hypstr) if hyp is not None else ""
