"""The Mamba (v1) block: mamba-ssm's parameter names, shapes and init; forward on the backend picked once.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from helpers.mamba.backend import _load_fused, resolve_backend
from helpers.mamba.scan import _scan_tm


def _f32(t: torch.Tensor) -> torch.Tensor:
    """At least float32 (float64 stays float64: the tests compare in double precision)."""
    return t if t.dtype == torch.float64 else t.float()


def _causal_conv_tm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Depthwise causal conv along time, time-major: x (L, B, D), weight (D, 1, K) -> (L, B, D).

    Same as ``nn.Conv1d(D, D, K, groups=D, padding=K-1)(x)[..., :L]`` in (B, D, L) layout:
    out[t] = bias + sum_j weight[:, 0, j] * x[t - (K-1) + j].
    """
    L = x.shape[0]
    K = weight.shape[-1]
    w = weight[:, 0, :]  # (D, K)
    xp = F.pad(x, (0, 0, 0, 0, K - 1, 0))  # (L + K - 1, B, D), zeros before t = 0
    out = xp[K - 1 :] * w[:, K - 1] if bias is None else torch.addcmul(bias, xp[K - 1 :], w[:, K - 1])
    for j in range(K - 1):
        out = torch.addcmul(out, xp[j : j + L], w[:, j])  # (L, B, D)
    return out


# --------------------------------------------------------------------------------------------------
# The Mamba block.
# --------------------------------------------------------------------------------------------------


class Mamba(nn.Module):
    """Mamba (v1) block, a drop-in for ``mamba_ssm.modules.mamba_simple.Mamba`` (same constructor,
    parameters, init, state_dict). forward(hidden_states (B, L, d_model)) -> (B, L, d_model).

    ``use_fast_path`` and ``layer_idx`` only matter on the fused backend (as in mamba-ssm); there is
    no incremental-decoding cache (``inference_params``).
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: str = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        use_fast_path: bool = True,
        layer_idx: int | None = None,
        device=None,
        dtype=None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(self.expand * self.d_model)
        self.dt_rank = math.ceil(self.d_model / 16) if dt_rank == "auto" else dt_rank
        self.use_fast_path = use_fast_path
        self.layer_idx = layer_idx

        # The statement order below is mamba-ssm's: it fixes both the state_dict order and the order
        # in which the initialisers draw from the RNG (same seed -> same weights).
        self.in_proj = nn.Linear(self.d_model, self.d_inner * 2, bias=bias, **factory_kwargs)
        self.conv1d = nn.Conv1d(
            in_channels=self.d_inner,
            out_channels=self.d_inner,
            bias=conv_bias,
            kernel_size=d_conv,
            groups=self.d_inner,
            padding=d_conv - 1,
            **factory_kwargs,
        )
        self.activation = "silu"
        self.act = nn.SiLU()
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + self.d_state * 2, bias=False, **factory_kwargs)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True, **factory_kwargs)

        # dt_proj.weight: constant or uniform in +-dt_rank^-0.5 * dt_scale (preserves variance)
        dt_init_std = self.dt_rank**-0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, dt_init_std)
        elif dt_init == "random":
            nn.init.uniform_(self.dt_proj.weight, -dt_init_std, dt_init_std)
        else:
            raise NotImplementedError(f"dt_init={dt_init!r}")
        # dt_proj.bias = softplus^-1(dt), dt log-uniform in [dt_min, dt_max], floored at dt_init_floor
        dt = torch.exp(
            torch.rand(self.d_inner, **factory_kwargs) * (math.log(dt_max) - math.log(dt_min))
            + math.log(dt_min)
        ).clamp(min=dt_init_floor)  # (d_inner,)
        inv_dt = dt + torch.log(-torch.expm1(-dt))  # inverse softplus: log(exp(dt) - 1)
        with torch.no_grad():
            self.dt_proj.bias.copy_(inv_dt)
        self.dt_proj.bias._no_reinit = True  # an outer init that zeroes Linear biases must skip this

        # S4D-real init: A[d, n] = -(n + 1), stored as A_log = log(n + 1), always float32
        A = torch.arange(1, self.d_state + 1, dtype=torch.float32, device=device).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A).contiguous())  # (d_inner, d_state)
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.d_inner, device=device))  # (d_inner,) skip, float32
        self.D._no_weight_decay = True

        self.out_proj = nn.Linear(self.d_inner, self.d_model, bias=bias, **factory_kwargs)

    # -- pure path, split in three so BiMamba can run both directions through one scan --------------

    def _pre_scan(self, x_tm: torch.Tensor):
        """(L, B, d_model) -> u, delta (fp32), B, C, z: the scan's inputs, time-major."""
        return self._scan_inputs(self.in_proj(x_tm))  # in_proj: (L, B, 2*d_inner)

    def _scan_inputs(self, xz: torch.Tensor):
        """(L, B, 2*d_inner) projected input -> u, delta (fp32), B, C, z (SharedBiMamba projects once)."""
        x, z = xz.chunk(2, dim=-1)  # (L, B, d_inner) each
        x = self.act(_causal_conv_tm(x, self.conv1d.weight, self.conv1d.bias))  # (L, B, d_inner)
        x_dbl = self.x_proj(x)  # (L, B, dt_rank + 2*d_state)
        dt, Bm, Cm = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        # as mamba-ssm: dt_proj without bias in the module dtype, bias + softplus in fp32
        delta = _f32(F.linear(dt, self.dt_proj.weight)) + _f32(self.dt_proj.bias)  # (L, B, d_inner)
        delta = F.softplus(delta)
        return x, delta, Bm, Cm, z

    def _A(self) -> torch.Tensor:
        return -torch.exp(_f32(self.A_log))  # (d_inner, d_state), < 0

    def _forward_pure(self, hidden_states: torch.Tensor) -> torch.Tensor:
        x_tm = hidden_states.transpose(0, 1)  # (L, B, d_model)
        u, delta, Bm, Cm, z = self._pre_scan(x_tm)
        y = _scan_tm(u, delta, self._A(), Bm, Cm, _f32(self.D), z)  # (L, B, d_inner)
        out = self.out_proj(y)  # (L, B, d_model)
        return out.transpose(0, 1).contiguous()  # (B, L, d_model)

    # -- fused path: mamba-ssm's own forward (mamba_simple.Mamba.forward, no inference cache) ---------

    def _forward_fused(self, hidden_states: torch.Tensor) -> torch.Tensor:
        ops = _load_fused()
        batch, seqlen, _ = hidden_states.shape
        # matmul and transpose at once: "b l d -> d (b l)", then "d (b l) -> b d l"
        xz = self.in_proj.weight @ hidden_states.reshape(batch * seqlen, -1).t()  # (2*d_inner, B*L)
        xz = xz.view(-1, batch, seqlen).permute(1, 0, 2)  # (B, 2*d_inner, L)
        if self.in_proj.bias is not None:
            xz = xz + self.in_proj.bias.to(dtype=xz.dtype)[:, None]
        A = self._A()
        if self.use_fast_path and ops.causal_conv1d_fn is not None:
            return ops.mamba_inner_fn(
                xz,
                self.conv1d.weight,
                self.conv1d.bias,
                self.x_proj.weight,
                self.dt_proj.weight,
                self.out_proj.weight,
                self.out_proj.bias,
                A,
                None,  # input-dependent B
                None,  # input-dependent C
                self.D.float(),
                delta_bias=self.dt_proj.bias.float(),
                delta_softplus=True,
            )
        x, z = xz.chunk(2, dim=1)  # (B, d_inner, L) each
        return self.out_proj(self._fused_core(ops, x, z).transpose(1, 2))  # (B, L, d_model)

    def _fused_core(self, ops, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """mamba-ssm's kernels from the projected input: x, z (B, d_inner, L) -> gated y (B, d_inner, L)."""
        batch, _, seqlen = x.shape
        A = self._A()
        if ops.causal_conv1d_fn is not None:
            x = ops.causal_conv1d_fn(
                x=x, weight=self.conv1d.weight[:, 0, :], bias=self.conv1d.bias, activation=self.activation
            )
        else:
            x = self.act(self.conv1d(x)[..., :seqlen])  # (B, d_inner, L)
        x_dbl = self.x_proj(x.transpose(1, 2).reshape(batch * seqlen, -1))  # (B*L, dt_rank + 2*d_state)
        dt, Bm, Cm = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = (self.dt_proj.weight @ dt.t()).view(-1, batch, seqlen).permute(1, 0, 2)  # (B, d_inner, L)
        Bm = Bm.view(batch, seqlen, -1).transpose(1, 2).contiguous()  # (B, d_state, L)
        Cm = Cm.view(batch, seqlen, -1).transpose(1, 2).contiguous()  # (B, d_state, L)
        return ops.selective_scan_fn(
            x,
            dt,
            A,
            Bm,
            Cm,
            self.D.float(),
            z=z,
            delta_bias=self.dt_proj.bias.float(),
            delta_softplus=True,
        )  # (B, d_inner, L)

    def forward(self, hidden_states: torch.Tensor, inference_params=None) -> torch.Tensor:
        """hidden_states (B, L, d_model) -> (B, L, d_model), on the backend ``resolve_backend`` picks.

        ``inference_params`` exists for call compatibility with mamba-ssm; step-by-step decoding with
        a cache is not implemented (the workbook never decodes token by token).
        """
        if inference_params is not None:
            raise NotImplementedError("helpers.mamba.Mamba has no incremental-decoding cache")
        if resolve_backend(hidden_states.device) == "fused":
            return self._forward_fused(hidden_states)
        return self._forward_pure(hidden_states)


