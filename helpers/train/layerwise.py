"""Layer-by-layer distillation: each new block learns its own LSTM layer's job, on the teacher's inputs.

The layerwise surgery keeps the teacher's structure: 3 x (bidirectional block -> AdaLayerNorm(s) ->
concat style). So every student block has a counterpart in the teacher, and can be taught directly:

    teacher:  h_0 = [d_en ; s]  ->  y_i = AdaLN_i(BiLSTM_i(h_{i-1}))  ->  h_i = [y_i ; s]      (B, T, 512 / 640)
    student:  y'_i = AdaLN'_i(Block_i(h_{i-1}))       on the TEACHER's h_{i-1} ("teacher forcing")
    loss   =  mean_i  masked MSE(y'_i, y_i)

No gradient has to travel through the frozen duration LSTM, the F0/N branch or the other blocks, and the
three regressions are learned at once: each step is a third of the cost of an end-to-end step, and the
signal is per layer instead of through three untrained blocks. The end-to-end losses (helpers.train.losses)
then close the remaining gap, where the student's own inputs differ slightly from the teacher's.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


@torch.no_grad()
def teacher_trace(
    teacher: nn.Module, d_en: torch.Tensor, s: torch.Tensor, lengths: torch.Tensor, pad: torch.Tensor
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Kokoro's LSTM DurationEncoder, layer by layer: [(h_in (B, T, 640), y (B, T, 512)), ...].

    d_en (B, 512, T), s (B, 128), lengths (B,), pad (B, T) True on padding. `h_in` is zero on padding; the
    last layer's [y ; s] (masked) equals the teacher's output (tests/train/test_layerwise.py checks it).
    """
    B, _, T = d_en.shape
    keep = (~pad)[..., None]  # (B, T, 1)
    sx = s[:, None, :].expand(B, T, s.shape[-1])  # (B, T, 128)
    h = torch.cat([d_en.transpose(1, 2), sx], dim=-1) * keep  # (B, T, 640)
    trace = []
    for lstm, norm in zip(teacher.lstms[0::2], teacher.lstms[1::2]):
        packed = pack_padded_sequence(h, lengths.cpu(), batch_first=True, enforce_sorted=False)
        y, _ = lstm(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=T)  # (B, T, 512)
        y = norm(y, s)  # (B, T, 512)
        trace.append((h, y))
        h = torch.cat([y, sx], dim=-1) * keep  # (B, T, 640)
    return trace


def layer_match_loss(
    student: nn.Module,
    trace: list[tuple[torch.Tensor, torch.Tensor]],
    s: torch.Tensor,
    lengths: torch.Tensor,
    pad: torch.Tensor,
    chained: bool = False,
) -> torch.Tensor:
    """Mean over layers of the masked MSE between the student's and the teacher's normalised layer outputs.

    chained=False: every block reads the teacher's input to its layer (teacher forcing). chained=True: blocks
    after the first read the student's own previous output, as at inference, so errors that compound from layer
    to layer are trained against too (gradients then run through the earlier blocks).
    """
    if getattr(student.cfg, "design", None) != "layerwise":
        raise ValueError("layer matching needs the layerwise design (one block per teacher LSTM)")
    keep = (~pad)[..., None].to(s.dtype)  # (B, T, 1)
    n = keep.sum() * trace[0][1].shape[-1]
    total, h_own = s.new_zeros(()), None
    sx = s[:, None, :].expand(-1, keep.shape[1], -1)  # (B, T, 128)
    for (h_in, y_t), block, norm in zip(trace, student.blocks, student.norms):
        h = h_in if h_own is None or not chained else h_own  # (B, T, 640)
        y = norm(student.dropout(block(h, lengths)), s)  # (B, T, 512)
        total = total + ((y - y_t).square() * keep).sum() / n
        h_own = torch.cat([y, sx], dim=-1) * keep  # (B, T, 640) the student's own input to the next block
    return total / len(trace)


def chain_start_step(layer_steps: int, chain_fraction: float) -> int | None:
    """The first chained layer-matching step: the last `chain_fraction` of `layer_steps` are chained.
    None when nothing is chained (chain_fraction 0, or no layer matching)."""
    if not 0.0 <= chain_fraction <= 1.0:
        raise ValueError(f"chain_fraction must be in [0, 1], got {chain_fraction}")
    if chain_fraction == 0 or layer_steps <= 0:
        return None
    return math.ceil((1 - chain_fraction) * layer_steps)
