"""BiMamba: a forward and a backward Mamba over right-padded batches, exact for every sequence length.

The backward direction reverses each sequence *within its own length* (pads stay at the end), so a padded
batch gives exactly what each sequence gives alone. On the pure path both directions share ONE scan
(stacked along channels), which halves the Python time loop.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from helpers.mamba.backend import _load_fused, resolve_backend
from helpers.mamba.block import Mamba, _f32
from helpers.mamba.scan import _scan_tm

# --------------------------------------------------------------------------------------------------
# Bidirectional wrapper for right-padded batches.
# --------------------------------------------------------------------------------------------------


def _valid_mask(lengths: torch.Tensor, L: int) -> torch.Tensor:
    """(B,) lengths -> (B, L) bool, True at valid (non-pad) positions."""
    return torch.arange(L, device=lengths.device)[None, :] < lengths[:, None]


def _reverse_index(lengths: torch.Tensor, L: int) -> torch.Tensor:
    """(B, L) gather index reversing each row within its length; pads keep their place. An involution."""
    t = torch.arange(L, device=lengths.device)[None, :]  # (1, L)
    return torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)  # (B, L)


def _zero_pads(x: torch.Tensor, lengths: torch.Tensor | None):
    """x (B, L, d) with pads set to 0 (even inf/nan garbage), lengths as long on x's device, mask (B, L) | None."""
    if lengths is None:
        return x, None, None
    lengths = lengths.to(device=x.device, dtype=torch.long)
    mask = _valid_mask(lengths, x.shape[1])  # (B, L) True on valid steps
    return torch.where(mask[..., None], x, x.new_zeros(())), lengths, mask


def _scan_both(f: Mamba, b: Mamba, ins_f: tuple, ins_b: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """Both directions through ONE scan: channels [fwd | bwd], B and C as two groups.

    ins_f, ins_b: (u, delta, B, C, z) time-major, as `Mamba._scan_inputs` returns them. -> y_f, y_b (L, B, d_inner).
    """
    uf, df, Bf, Cf, zf = ins_f
    ub, db, Bb, Cb, zb = ins_b
    y = _scan_tm(
        torch.cat([uf, ub], -1),  # (L, B, 2*d_inner)
        torch.cat([df, db], -1),
        torch.cat([f._A(), b._A()], 0),  # (2*d_inner, d_state)
        torch.stack([Bf, Bb], 2),  # (L, B, 2, d_state)
        torch.stack([Cf, Cb], 2),
        torch.cat([_f32(f.D), _f32(b.D)]),
        torch.cat([zf, zb], -1),
    )  # (L, B, 2*d_inner)
    return y.chunk(2, dim=-1)


class BiMamba(nn.Module):
    """Bidirectional Mamba over right-padded batches: forward(x (B, L, d_model), lengths (B,) | None)
    -> (B, L, d_out); pad positions are exactly zero and cannot influence valid ones.

    Two independent Mamba blocks (``mamba_fwd``, ``mamba_bwd``, built with ``**mamba_kwargs``); the
    backward one reads every sequence reversed within its own length, so pads stay at the end and
    never reach a valid step (with a plain flip they would come first and leak in through the conv
    window and the state; even zero pads leak, via the conv bias). Pads are zeroed on the way in, so
    garbage there cannot leak either. ``combine``:

    * ``"sum"`` (default): ``proj(fwd + bwd)``, ``proj = Linear(d_model, d_out)``, or nothing when
      d_out == d_model;
    * ``"concat"``: ``proj(cat(fwd, bwd))``, ``proj = Linear(2*d_model, d_out)``.

    Both can represent the same maps (each direction has its own out_proj before the combine), so the
    choice is about cost and training speed. Why sum: half the combine parameters (at 640 -> 512:
    328,192 vs 655,872; BiMamba 5,588,992 vs 5,916,672 parameters) and, on the toy bidirectional task
    of ``benchmarks/bench_mamba.py --combine`` (y[t] = x[t-3] + 0.5 x[t+3] on padded batches,
    d_model 32 -> 24, 6 seeds), it learned at least as fast: validation MSE 0.039 +- 0.022 vs
    0.082 +- 0.044 (concat) after 100 steps, 0.0028 vs 0.0031 after 200, 0.0012 vs 0.0013 after 300.
    Vim and Caduceus also sum their two directions.
    """

    def __init__(self, d_model: int, d_out: int | None = None, combine: str = "sum", **mamba_kwargs) -> None:
        super().__init__()
        if combine not in ("concat", "sum"):
            raise ValueError(f"combine must be 'concat' or 'sum', got {combine!r}")
        self.d_model = d_model
        self.d_out = d_model if d_out is None else d_out
        self.combine = combine
        self.mamba_fwd = Mamba(d_model, **mamba_kwargs)
        self.mamba_bwd = Mamba(d_model, **mamba_kwargs)
        factory_kwargs = {k: mamba_kwargs[k] for k in ("device", "dtype") if k in mamba_kwargs}
        if combine == "concat":
            self.proj = nn.Linear(2 * d_model, self.d_out, **factory_kwargs)
        elif self.d_out != d_model:
            self.proj = nn.Linear(d_model, self.d_out, **factory_kwargs)
        else:
            self.proj = nn.Identity()

    def _both_pure(self, x_f: torch.Tensor, x_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both directions through ONE scan: channels [fwd | bwd], B and C as two groups."""
        f, b = self.mamba_fwd, self.mamba_bwd
        y_f, y_b = _scan_both(f, b, f._pre_scan(x_f), b._pre_scan(x_b))  # (L, B, d_inner) each
        return f.out_proj(y_f), b.out_proj(y_b)  # (L, B, d_model) each

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, d_model), lengths (B,) valid lengths of right-padded rows (None: all L) -> (B, L, d_out)."""
        Bsz, L, _ = x.shape
        x, lengths, mask = _zero_pads(x, lengths)
        fused = resolve_backend(x.device) == "fused"
        if fused:
            idx = None if lengths is None else _reverse_index(lengths, L)[..., None].expand_as(x)  # (B, L, d)
            x_b = x.flip(1) if idx is None else torch.gather(x, 1, idx)
            y_f = self.mamba_fwd(x)  # (B, L, d_model)
            y_b = self.mamba_bwd(x_b)
            y_b = y_b.flip(1) if idx is None else torch.gather(y_b, 1, idx)  # back to original order
        else:
            x_f = x.transpose(0, 1)  # (L, B, d_model)
            if lengths is None:
                x_b = x_f.flip(0)
            else:
                idx = _reverse_index(lengths, L).t()[..., None].expand(L, Bsz, self.d_model)  # (L, B, d)
                x_b = torch.gather(x_f, 0, idx)
            y_f, y_b = self._both_pure(x_f, x_b)  # (L, B, d_model)
            y_b = y_b.flip(0) if lengths is None else torch.gather(y_b, 0, idx)
            y_f, y_b = y_f.transpose(0, 1), y_b.transpose(0, 1)  # (B, L, d_model) views
        if self.combine == "concat":
            out = self.proj(torch.cat([y_f, y_b], dim=-1))  # (B, L, d_out)
        else:
            out = self.proj(y_f + y_b)  # (B, L, d_out)
        if mask is not None:
            out = torch.where(mask[..., None], out, out.new_zeros(()))
        return out.contiguous()


class SharedBiMamba(nn.Module):
    """Vim-style bidirectional Mamba: ONE input and ONE output projection shared by both directions.

    forward(x (B, L, d_model), lengths (B,) | None) -> (B, L, d_out), exact on right-padded batches (same
    reversal within each length as ``BiMamba``). Per direction it keeps its own conv1d, x_proj, dt_proj,
    A_log and D (the selective part); the two gated scan outputs are summed before the shared out_proj:

        x, z = in_proj(x)                                        (L, B, d_inner) each, computed once
        y_f = scan_f(x, z);  y_b = reverse(scan_b(reverse(x), reverse(z)))   per-direction selectivity
        out = out_proj(y_f + y_b)                                (B, L, d_out)

    Against ``BiMamba`` it has about half the parameters and matmul FLOPs (the projections dominate both),
    which is what a parameter-matched replacement of a BiLSTM needs: at d_model 640 -> 512 and expand 1.5 it
    has 1.98M parameters per layer, the BiLSTM 1.84M. The direction cores are built by ``Mamba`` itself
    (same initialisation), with their own projections removed.
    """

    def __init__(self, d_model: int, d_out: int | None = None, **mamba_kwargs) -> None:
        super().__init__()
        self.d_model = d_model
        self.d_out = d_model if d_out is None else d_out
        fwd, bwd = Mamba(d_model, **mamba_kwargs), Mamba(d_model, **mamba_kwargs)
        self.in_proj = fwd.in_proj  # (d_model -> 2 * d_inner), shared
        fwd.in_proj = bwd.in_proj = None
        fwd.out_proj = bwd.out_proj = None
        self.mamba_fwd, self.mamba_bwd = fwd, bwd
        factory_kwargs = {k: mamba_kwargs[k] for k in ("device", "dtype") if k in mamba_kwargs}
        self.out_proj = nn.Linear(fwd.d_inner, self.d_out, bias=mamba_kwargs.get("bias", False), **factory_kwargs)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, d_model), lengths (B,) valid lengths of right-padded rows (None: all L) -> (B, L, d_out)."""
        Bsz, L, _ = x.shape
        x, lengths, mask = _zero_pads(x, lengths)
        xz = self.in_proj(x.transpose(0, 1))  # (L, B, 2*d_inner), projected once for both directions
        if lengths is None:
            xz_b = xz.flip(0)
        else:
            idx = _reverse_index(lengths, L).t()[..., None].expand_as(xz)  # (L, B, 2*d_inner)
            xz_b = torch.gather(xz, 0, idx)
        f, b = self.mamba_fwd, self.mamba_bwd
        if resolve_backend(x.device) == "fused":
            ops = _load_fused()
            xf, zf = xz.permute(1, 2, 0).chunk(2, dim=1)  # (B, d_inner, L) each
            xb, zb = xz_b.permute(1, 2, 0).chunk(2, dim=1)
            y_f = f._fused_core(ops, xf.contiguous(), zf.contiguous()).permute(2, 0, 1)  # (L, B, d_inner)
            y_b = b._fused_core(ops, xb.contiguous(), zb.contiguous()).permute(2, 0, 1)
        else:
            y_f, y_b = _scan_both(f, b, f._scan_inputs(xz), b._scan_inputs(xz_b))  # (L, B, d_inner) each
        y_b = y_b.flip(0) if lengths is None else torch.gather(y_b, 0, idx[..., : y_b.shape[-1]])
        out = self.out_proj((y_f + y_b).to(self.out_proj.weight.dtype)).transpose(0, 1)  # (B, L, d_out)
        if mask is not None:
            out = torch.where(mask[..., None], out, out.new_zeros(()))
        return out.contiguous()
