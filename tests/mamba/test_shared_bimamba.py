"""SharedBiMamba (Vim-style shared projections): exact on padded batches, right maths, fused glue, size."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import helpers.mamba as hm
from helpers.mamba import BiMamba, SharedBiMamba, selective_scan_ref


@pytest.fixture(autouse=True)
def _pure_backend():
    hm.set_backend("auto")
    yield
    hm.set_backend("auto")


def _reference(m: SharedBiMamba, x: torch.Tensor) -> torch.Tensor:
    """One unpadded sequence, written out step by step with mamba-ssm's reference scan: (1, L, d) -> (1, L, d_out)."""
    xz = m.in_proj(x)  # (1, L, 2 d_inner)

    def direction(core, xz_dir):
        xi, z = xz_dir.transpose(1, 2).chunk(2, dim=1)  # (1, d_inner, L)
        L = xi.shape[-1]
        xi = F.silu(F.conv1d(xi, core.conv1d.weight, core.conv1d.bias, padding=core.d_conv - 1, groups=core.d_inner)[..., :L])
        dbl = core.x_proj(xi.transpose(1, 2))  # (1, L, r + 2n)
        dt, B, C = torch.split(dbl, [core.dt_rank, core.d_state, core.d_state], dim=-1)
        delta = (dt @ core.dt_proj.weight.t()).transpose(1, 2)  # (1, d_inner, L)
        A = -torch.exp(core.A_log.double()).to(x.dtype)
        return selective_scan_ref(xi, delta, A, B.transpose(1, 2), C.transpose(1, 2), core.D.to(x.dtype), z,
                                  core.dt_proj.bias.to(x.dtype), True)  # (1, d_inner, L)  # fmt: skip

    y = direction(m.mamba_fwd, xz) + direction(m.mamba_bwd, xz.flip(1)).flip(-1)
    return m.out_proj(y.transpose(1, 2))


def test_matches_the_written_out_maths_and_padded_equals_single():
    torch.manual_seed(0)
    m = SharedBiMamba(24, d_out=20, d_state=8, expand=1.5).double()
    lengths = torch.tensor([11, 5, 8])
    x = torch.randn(3, 11, 24, dtype=torch.float64)
    x_garbage = x.clone()
    for b, n in enumerate(lengths.tolist()):
        x_garbage[b, n:] = 1e6  # pads must not matter
    out = m(x_garbage, lengths)  # (3, 11, 20)
    for b, n in enumerate(lengths.tolist()):
        alone = m(x[b : b + 1, :n])
        ref = _reference(m, x[b : b + 1, :n])
        assert (out[b, :n] - alone[0]).abs().max() < 1e-10
        assert (alone - ref).abs().max() < 1e-9
        assert (out[b, n:] == 0).all()


def test_gradients_reach_every_parameter_and_size_is_matched():
    torch.manual_seed(0)
    m = SharedBiMamba(640, d_out=512, expand=1.5)
    n_params = sum(p.numel() for p in m.parameters())
    lstm = sum(p.numel() for p in torch.nn.LSTM(640, 256, batch_first=True, bidirectional=True).parameters())
    bi = sum(p.numel() for p in BiMamba(640, d_out=512, expand=1.5).parameters())
    assert 0.9 * lstm < n_params < 1.15 * lstm, (n_params, lstm)  # parameter-matched to the BiLSTM
    assert n_params < 0.6 * bi  # about half a BiMamba of the same width
    small = SharedBiMamba(16, d_out=12, d_state=4)
    small(torch.randn(2, 6, 16), torch.tensor([6, 3])).square().sum().backward()
    missing = [n for n, p in small.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    assert "mamba_fwd.in_proj.weight" not in small.state_dict() and "in_proj.weight" in small.state_dict()


def test_fused_glue_on_cpu_with_reference_kernels(monkeypatch):
    import helpers.mamba.backend as backend

    def conv(x, weight, bias=None, activation=None):
        y = F.conv1d(x, weight[:, None, :], bias, padding=weight.shape[-1] - 1, groups=x.shape[1])[..., : x.shape[-1]]
        return F.silu(y) if activation == "silu" else y

    fake = SimpleNamespace(ok=True, reason="", version="fake", selective_scan_fn=selective_scan_ref,
                           mamba_inner_fn=None, causal_conv1d_fn=conv, causal_conv1d_version="fake")  # fmt: skip
    torch.manual_seed(0)
    m = SharedBiMamba(16, d_out=12, d_state=4).double()
    x, lengths = torch.randn(2, 9, 16, dtype=torch.float64), torch.tensor([9, 4])
    pure = m(x, lengths)
    monkeypatch.setattr(backend, "_fused", fake)
    monkeypatch.setattr(backend, "resolve_backend", lambda device: "fused")
    import helpers.mamba.bidirectional as bd

    monkeypatch.setattr(bd, "resolve_backend", lambda device: "fused")
    assert (m(x, lengths) - pure).abs().max() < 1e-10
