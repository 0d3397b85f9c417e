"""Fixtures of the training tests: tiny voice-fitting clips shared by test_fit_voice and test_fit_state."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.kokoro.g2p import phonemes_to_ids
from helpers.train.items import TrainItem

PHONEMES = ["ðə kˈæt sˈæt.", "wˈʌt ɪz ɪt?", "hˈɛlO wˈɜɹld."]


def _clips(seed: int = 0) -> list[TrainItem]:
    """Three tiny clips with random but plausible targets (unvoiced leading silence, log-mels)."""
    g = np.random.default_rng(seed)
    items = []
    for i, ph in enumerate(PHONEMES):
        ids = np.asarray(phonemes_to_ids(ph))
        dur = g.integers(2, 5, len(ids))
        F = int(dur.sum())
        f0 = np.abs(g.normal(120, 20, 2 * F)).astype(np.float32)
        f0[: 2 * int(dur[0])] = 0.0  # the leading silence is unvoiced
        mel = g.normal(-1, 0.5, (80, 2 * F)).astype(np.float32)
        items.append(
            TrainItem(f"c{i}", ids, np.zeros(256, np.float32), dur, f0, g.normal(-1, 0.3, 2 * F).astype(np.float32),
                      mel, len(ph))  # fmt: skip
        )
    return items


@pytest.fixture
def voice_clips():
    """`voice_clips(seed=0)` -> three TrainItems for fit_voice on the small random model."""
    return _clips
