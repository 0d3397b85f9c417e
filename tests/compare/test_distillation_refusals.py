"""The distillation score names why sentences are left out (issue 27): "over 510 phonemes" is not hidden behind
"could not be phonemized"."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from torch import nn

from helpers.compare.distillation import evaluate_distillation

LONG = " ".join(["The quick brown fox jumps over the lazy dog and runs away."] * 12)


def test_the_reason_each_sentence_is_refused_is_named():
    kokoro = SimpleNamespace(model=nn.Linear(1, 1), voice=lambda v: None)
    with pytest.raises(ValueError, match=r"no sentence can be measured \(2 refused\): sentence 1: \d+ phonemes: over "
                                         r"Kokoro's limit of 510.*sentence 2: empty text"):  # fmt: skip
        evaluate_distillation(kokoro, nn.Identity(), [LONG, " "], ["af_heart"], teacher=nn.Identity(), progress=False)
