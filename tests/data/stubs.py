"""What the preparation tests' stand-in Kokoros share (imported by test_bad_input and test_targets)."""

from __future__ import annotations

import torch


def fixed_model() -> torch.nn.Module:
    """A model whose DurationEncoder is a fixed stand-in: the targets' cache key records its identity
    (helpers.transplant.surgery.encoder_identity), the same in every instance."""
    model = torch.nn.Module()
    model.predictor = torch.nn.Module()
    model.predictor.text_encoder = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.predictor.text_encoder.weight)
    return model


class StubKokoro:
    """Enough of a LoadedKokoro for preparation with a fake compute_targets: a source name, a default voice and a
    model whose DurationEncoder is a fixed stand-in (its identity is part of the targets' cache key). Each test
    module gives it the voice pack it needs (`voice`)."""

    source = "stub"

    def __init__(self):
        self.model = fixed_model()

    def default_voice(self):
        return "af_heart"

    def voice(self, name=None):
        raise NotImplementedError
