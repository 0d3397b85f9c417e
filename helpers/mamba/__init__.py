"""A Mamba block that runs everywhere: pure PyTorch on any device, mamba-ssm's fused kernels on CUDA.

What a Mamba (v1) block computes
--------------------------------
Input ``u`` of shape (B, L, d_model). With ``d_inner = expand * d_model`` and N = ``d_state``:

1. ``x, z = in_proj(u)``                       two (B, L, d_inner) streams: the signal and a gate
2. ``x = SiLU(causal_depthwise_conv(x))``       a short (``d_conv`` = 4) causal filter per channel
3. ``dt, B, C = x_proj(x)``                     per token: dt (dt_rank), B (N), C (N), shared by channels
4. ``delta = softplus(dt_proj(dt))``            (B, L, d_inner), a positive step size per channel
5. the *selective scan*, per channel d and state index n, with ``A = -exp(A_log)`` (so A < 0)::

       h_t[d, n] = exp(delta_t[d] * A[d, n]) * h_{t-1}[d, n] + delta_t[d] * B_t[n] * x_t[d]
       y_t[d]    = sum_n C_t[n] * h_t[d, n] + D[d] * x_t[d]

   exp(delta*A) is in (0, 1]: the state decays, and the input-dependent delta decides per token
   how much to forget (large delta) or to ignore the token (small delta). That selectivity is the
   difference to an S4/S4D layer, whose delta, B, C do not depend on the input.
6. ``out = out_proj(y * SiLU(z))``

The scan state h has shape (B, d_inner, N) and is always float32 (float64 for float64 inputs),
whatever the module's dtype, as in mamba-ssm.

How the pieces fit (one file each)
----------------------------------
* ``backend.py``: the dispatch; ``scan.py``: the selective scan; ``block.py``: ``Mamba``;
  ``bidirectional.py``: ``BiMamba``.
* ``Mamba`` has exactly ``mamba_ssm.modules.mamba_simple.Mamba``'s constructor, parameter names,
  shapes, registration order and initialisation (even the order in which the initialisers draw
  random numbers), so state_dicts load both ways with ``strict=True``.
* Its forward dispatches in ONE place, ``resolve_backend(device)``: ``"fused"`` calls mamba-ssm's
  CUDA kernels (``mamba_inner_fn``, or ``selective_scan_fn`` when causal-conv1d is missing), exactly
  as mamba-ssm does; ``"pure"`` runs the PyTorch path below. ``set_backend`` overrides the choice,
  ``describe_backend`` says which one is active and why. mamba-ssm is imported lazily (it cannot
  even be imported on CPU machines).
* The pure path works time-major, (L, B, channels): every time step is then one contiguous slab.
  The scan is a ``torch.autograd.Function`` (``_SelectiveScan``) with a hand-written backward:

  - forward, chunk by chunk along time (a few MB per chunk, so the temporaries stay in cache):
    ``dA = exp(delta*A)`` and ``dBu = delta*u*B`` for the whole chunk in one shot, then the only
    sequential part, ``h = dA[t]*h + dBu[t]`` (one fused ``addcmul_`` per step, in place), then
    ``y = <h, C>`` for the whole chunk as one batched matmul. Only the state at each chunk start is
    kept for backward (plus the (L, B, d_inner)-sized inputs), never the full (L, B, d_inner, N) history.
  - backward, chunks in reverse: recompute the chunk's states from its saved start state, then run
    the adjoint recurrence backwards in time, ``g_h[t] = C_t * g_y[t] + dA[t+1] * g_h[t+1]``, and
    read every gradient off ``g_h`` and ``h`` with whole-chunk tensor ops:
    ``g_(delta*A)[t] = g_h[t] * dA[t] * h[t-1]`` -> grads of delta and A;
    ``g_dBu = g_h`` -> grads of delta*u (-> u, delta) and of B; ``g_C[t] = <g_y[t], h[t]>``.
  - the D skip and the SiLU(z) gate are folded into the same Function.

  No cumulative sums or log-space tricks: each step multiplies by exp(delta*A) <= 1, so nothing can
  overflow for any delta. Where the CPU time goes, measured: benchmarks/README.md.
* ``BiMamba`` runs a second Mamba over each sequence reversed *within its own length* (right
  padding stays at the end), so padded batches give exactly what each sequence gives alone. On the
  pure path both directions go through ONE scan (stacked along channels, with per-direction B and
  C as two groups), which halves the Python time loop.
* ``selective_scan_ref`` is a plain sequential reference with mamba-ssm's signature and layout
  (used by the tests); ``selective_scan`` is the fast Function behind the same signature.
"""

from helpers.mamba.backend import describe_backend, fused_available, get_backend, resolve_backend, set_backend
from helpers.mamba.bidirectional import BiMamba, SharedBiMamba
from helpers.mamba.block import Mamba
from helpers.mamba.scan import selective_scan, selective_scan_ref

__all__ = [
    "Mamba",
    "BiMamba",
    "SharedBiMamba",
    "selective_scan",
    "selective_scan_ref",
    "set_backend",
    "get_backend",
    "resolve_backend",
    "describe_backend",
    "fused_available",
]
