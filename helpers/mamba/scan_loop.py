"""The selective scan as one exportable loop: what `helpers.mamba.scan._scan_tm` runs inside an ONNX export.

The training scan (`helpers.mamba.scan._SelectiveScan`) is a custom autograd Function whose Python loops over
chunks and time steps a tracer would unroll to the example's length, freezing the sequence length of the
exported graph. Here the same recurrence is one TorchScript-scripted loop, which the TorchScript ONNX
exporter turns into a single ONNX `Loop` whose trip count is the sequence length at run time:

    dA  = exp(delta * A)          (L, B, G, N, Dg)   per step and channel, in (0, 1]
    dBu = delta * u * B           (L, B, G, N, Dg)
    loop t:  h = dA[t] * h + dBu[t];  y[t] = sum_n C[t, n] h[n]      h (B, G, N, Dg), y (L, B, G, Dg)
    y = (y + D * u) * SiLU(z)     (L, B, D)

Same maths and the same float32 arithmetic order per step as the training scan (which fuses the update as
addcmul), so the exported model agrees with PyTorch to float32 rounding (`tests/mamba/test_scan_loop.py`, `tests/export/test_onnx.py`; the export itself: `helpers.export.onnx`).
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F


def _states_loop(dA: torch.Tensor, dBu: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """dA, dBu (L, B, G, N, Dg), C (L, B, G, N) -> y (L, B, G, Dg): the recurrence, one step at a time."""
    h = torch.zeros_like(dBu[0])  # (B, G, N, Dg)
    ys = []
    for t in range(dA.shape[0]):
        h = dA[t] * h + dBu[t]
        ys.append((h * C[t].unsqueeze(-1)).sum(-2))  # (B, G, Dg)
    return torch.stack(ys, 0)


@functools.cache
def scripted_loop():
    """`_states_loop` compiled by TorchScript (once), so the exporter sees a loop, not L copies of its body."""
    with warnings.catch_warnings():  # TorchScript is deprecated in recent torch; the ONNX Loop still needs it
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(_states_loop)


def scan_for_export(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    Bm: torch.Tensor,
    Cm: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
) -> torch.Tensor:
    """`_scan_tm`'s contract: u, delta, z (L, B, D); A (D, N); Bm, Cm (L, B, G, N) -> (L, B, D) in u's dtype."""
    dtype_in = u.dtype
    u, delta, Bm, Cm = (t.float() for t in (u, delta, Bm, Cm))
    Bsz, Dn = u.shape[1], u.shape[2]
    G, N = Bm.shape[2], A.shape[1]
    Dg = Dn // G
    At = A.float().reshape(G, Dg, N).transpose(1, 2)  # (G, N, Dg)
    dlt = delta.reshape(-1, Bsz, G, 1, Dg)  # (L, B, G, 1, Dg)
    dA = torch.exp(dlt * At)  # (L, B, G, N, Dg)
    dBu = (delta * u).reshape(-1, Bsz, G, 1, Dg) * Bm.unsqueeze(-1)  # (L, B, G, N, Dg)
    y = scripted_loop()(dA, dBu, Cm).reshape(-1, Bsz, Dn)  # (L, B, D)
    if D is not None:
        y = y + u * D.float()
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype_in)
