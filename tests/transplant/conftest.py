"""Shared inputs for the DurationEncoder contract tests (Mamba and CfC designs alike)."""

from __future__ import annotations

import pytest
import torch


def _encoder_inputs(lengths, seed=0):
    """x (B, 512, T) with garbage (1e3) in the pads, style (B, 128), lengths (B,), pad (B, T) True on padding."""
    g = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    x = torch.randn(B, 512, T, generator=g)
    style = torch.randn(B, 128, generator=g)
    lengths = torch.tensor(lengths)
    pad = torch.arange(T)[None, :] >= lengths[:, None]  # (B, T) True on padding
    return x.masked_fill(pad[:, None, :], 1e3), style, lengths, pad  # garbage in the pads must not matter


@pytest.fixture
def encoder_inputs():
    """The function above, as a fixture: `x, style, lengths, pad = encoder_inputs([5, 3])`."""
    return _encoder_inputs
