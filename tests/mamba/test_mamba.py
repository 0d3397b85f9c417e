"""helpers.mamba: the pure selective scan against a float64 sequential reference, the hand-written
backward against autograd, padded batches in BiMamba, weight interchange with mamba-ssm, dispatch."""

from __future__ import annotations

import importlib.util
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import helpers.mamba as hm
from helpers.mamba.bidirectional import BiMamba
from helpers.mamba.block import Mamba
from helpers.mamba.scan import selective_scan, selective_scan_ref

# mamba_ssm.modules.mamba_simple.Mamba(640) state_dict, as mamba-ssm builds it: the block's own
# parameters (A_log, D) come first in a state_dict, then the children in registration order.
MAMBA_SSM_640_SCHEMA = [
    ("A_log", (1280, 16)),
    ("D", (1280,)),
    ("in_proj.weight", (2560, 640)),
    ("conv1d.weight", (1280, 1, 4)),
    ("conv1d.bias", (1280,)),
    ("x_proj.weight", (72, 1280)),  # dt_rank 40 + 2 * d_state
    ("dt_proj.weight", (1280, 40)),
    ("dt_proj.bias", (1280,)),
    ("out_proj.weight", (640, 1280)),
]
MAMBA_SSM_640_PARAMS = 2_630_400


@pytest.fixture(autouse=True)
def _auto_backend():
    hm.set_backend("auto")
    yield
    hm.set_backend("auto")


def _scan_inputs(b, d, n, L, dtype=torch.float64, delta_scale=1.0, groups=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, d, L, generator=g, dtype=dtype)
    delta = torch.rand(b, d, L, generator=g, dtype=dtype) * delta_scale + 0.1 * delta_scale
    A = -torch.exp(torch.randn(d, n, generator=g, dtype=dtype))  # < 0
    bc_shape = (b, n, L) if groups is None else (b, groups, n, L)
    B = torch.randn(*bc_shape, generator=g, dtype=dtype)
    C = torch.randn(*bc_shape, generator=g, dtype=dtype)
    D = torch.randn(d, generator=g, dtype=dtype)
    z = torch.randn(b, d, L, generator=g, dtype=dtype)
    return u, delta, A, B, C, D, z


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30)).item()


# ---------------------------------------------------------------------------------------------------------
# The scan: values, stability, gradients
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("L", [1, 7, 64, 513])
@pytest.mark.parametrize("delta_scale", [1e-4, 1.0, 10.0])
@pytest.mark.parametrize("with_dz", [False, True])
def test_scan_float32_matches_float64_reference(L, delta_scale, with_dz):
    u, delta, A, B, C, D, z = _scan_inputs(2, 8, 16, L, delta_scale=delta_scale)
    if not with_dz:
        D = z = None
    ref = selective_scan_ref(u, delta, A, B, C, D, z)  # float64, sequential
    f32 = [t.float() if t is not None else None for t in (u, delta, A, B, C, D, z)]
    out = selective_scan(*f32[:5], D=f32[5], z=f32[6])
    assert out.dtype == torch.float32
    assert _rel(out, ref) <= 1e-5


def test_scan_is_stable_for_huge_delta_and_keeps_input_dtype():
    u, delta, A, B, C, D, z = (t.float() for t in _scan_inputs(2, 8, 16, 50, delta_scale=500.0))
    out = selective_scan(u, delta, A, B, C, D, z)
    assert torch.isfinite(out).all()
    # bf16 in -> bf16 out, state in fp32: matches the fp32 result up to bf16 rounding of the output
    out_bf = selective_scan(
        *(t.bfloat16() for t in (u, delta)), A, B.bfloat16(), C.bfloat16(), D, z.bfloat16()
    )
    ref_bf = selective_scan_ref(
        *(t.bfloat16() for t in (u, delta)), A, B.bfloat16(), C.bfloat16(), D, z.bfloat16()
    )
    assert out_bf.dtype == torch.bfloat16
    assert _rel(out_bf.float(), ref_bf.float()) < 1e-2


def test_delta_bias_and_softplus_follow_mamba_ssm():
    u, delta, A, B, C, D, z = _scan_inputs(2, 6, 4, 20)
    bias = torch.randn(6, dtype=torch.float64)
    ref = selective_scan_ref(u, delta - 0.5, A, B, C, D, z, delta_bias=bias, delta_softplus=True)
    out = selective_scan(u, delta - 0.5, A, B, C, D, z, delta_bias=bias, delta_softplus=True)
    assert _rel(out, ref) < 1e-12
    out2, last = selective_scan_ref(u, delta, A, B, C, return_last_state=True)
    assert last.shape == (2, 6, 4) and out2.shape == (2, 6, 20)


@pytest.mark.parametrize("groups", [None, 2])
def test_custom_backward_passes_gradcheck(groups):
    u, delta, A, B, C, D, z = (
        t.requires_grad_() for t in _scan_inputs(2, 4, 3, 5, groups=groups, delta_scale=1.0)
    )
    # chunk_len=2 with L=5: three chunks, so the carries across chunk boundaries are checked too
    fn = lambda u, delta, A, B, C, D, z: selective_scan(u, delta, A, B, C, D, z, chunk_len=2)
    assert torch.autograd.gradcheck(fn, (u, delta, A, B, C, D, z))
    fn_plain = lambda u, delta, A, B, C: selective_scan(u, delta, A, B, C, chunk_len=3)  # no D, no z
    assert torch.autograd.gradcheck(fn_plain, (u, delta, A, B, C))


@pytest.mark.parametrize("chunk_len", [None, 1, 4, 37])
@pytest.mark.parametrize("groups", [None, 2])
def test_custom_backward_equals_autograd_through_reference(chunk_len, groups):
    inputs = [t.requires_grad_() for t in _scan_inputs(3, 6, 5, 37, groups=groups, seed=1)]
    bias = torch.randn(6, dtype=torch.float64, requires_grad=True)
    kw = dict(delta_bias=bias, delta_softplus=True)
    out = selective_scan(*inputs, **kw, chunk_len=chunk_len)
    ref = selective_scan_ref(*inputs, **kw)
    gout = torch.randn_like(ref)
    got = torch.autograd.grad(out, [*inputs, bias], gout)
    want = torch.autograd.grad(ref, [*inputs, bias], gout)
    for name, a, b in zip(["u", "delta", "A", "B", "C", "D", "z", "delta_bias"], got, want):
        assert a.shape == b.shape, name
        assert _rel(a, b) < 1e-10, name


# ---------------------------------------------------------------------------------------------------------
# The Mamba block
# ---------------------------------------------------------------------------------------------------------


def _mamba_ssm_slow_path(m: Mamba, u: torch.Tensor) -> torch.Tensor:
    """mamba_simple.Mamba.forward's non-fused path, (B, D, L) layout, nn.Conv1d, sequential scan."""
    batch, seqlen, _ = u.shape
    xz = m.in_proj(u).transpose(1, 2)  # (B, 2*d_inner, L)
    x, z = xz.chunk(2, dim=1)
    x = F.silu(m.conv1d(x)[..., :seqlen])
    x_dbl = m.x_proj(x.transpose(1, 2).reshape(batch * seqlen, -1))
    dt, B, C = torch.split(x_dbl, [m.dt_rank, m.d_state, m.d_state], dim=-1)
    dt = (m.dt_proj.weight @ dt.t()).view(-1, batch, seqlen).permute(1, 0, 2)
    B = B.view(batch, seqlen, -1).transpose(1, 2)
    C = C.view(batch, seqlen, -1).transpose(1, 2)
    A = -torch.exp(m.A_log.to(u.dtype))
    y = selective_scan_ref(x, dt, A, B, C, m.D.to(u.dtype), z, m.dt_proj.bias, delta_softplus=True)
    return m.out_proj(y.transpose(1, 2))


def test_mamba_block_equals_mamba_ssm_math_with_gradients():
    torch.manual_seed(0)
    m = Mamba(24, d_state=8).double()
    x = torch.randn(3, 29, 24, dtype=torch.float64, requires_grad=True)
    out = m(x)
    ref = _mamba_ssm_slow_path(m, x)
    assert out.shape == (3, 29, 24)
    assert _rel(out, ref) < 1e-10
    params = [x, *m.parameters()]
    gout = torch.randn_like(out)
    got = torch.autograd.grad(out, params, gout)
    want = torch.autograd.grad(ref, params, gout)
    for name, a, b in zip(["x", *(n for n, _ in m.named_parameters())], got, want):
        assert _rel(a, b) < 1e-9, name


def test_mamba_float32_and_bfloat16_run():
    torch.manual_seed(0)
    m = Mamba(32)
    x = torch.randn(2, 17, 32)
    ref = _mamba_ssm_slow_path(m.double(), x.double())
    m.float()
    assert _rel(m(x), ref) < 1e-5
    mb = Mamba(32, dtype=torch.bfloat16)
    assert mb.in_proj.weight.dtype == torch.bfloat16
    assert mb.A_log.dtype == torch.float32 and mb.D.dtype == torch.float32  # kept fp32, as mamba-ssm
    y = mb(x.bfloat16())
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()


def test_mamba_schema_matches_mamba_ssm():
    m = Mamba(640)
    sd = m.state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == MAMBA_SSM_640_SCHEMA
    assert all(v.dtype == torch.float32 for v in sd.values())
    assert [n for n, _ in m.named_parameters()] == [k for k, _ in MAMBA_SSM_640_SCHEMA]
    assert sum(p.numel() for p in m.parameters()) == MAMBA_SSM_640_PARAMS
    assert (m.d_inner, m.dt_rank, m.d_state, m.d_conv) == (1280, 40, 16, 4)
    # registration order of the submodules and the constructor's signature
    assert [n for n, _ in m.named_children()] == ["in_proj", "conv1d", "act", "x_proj", "dt_proj", "out_proj"]
    import inspect

    sig = inspect.signature(Mamba.__init__).parameters
    assert [(k, v.default) for k, v in sig.items()][1:] == [
        ("d_model", inspect.Parameter.empty),
        ("d_state", 16),
        ("d_conv", 4),
        ("expand", 2),
        ("dt_rank", "auto"),
        ("dt_min", 0.001),
        ("dt_max", 0.1),
        ("dt_init", "random"),
        ("dt_scale", 1.0),
        ("dt_init_floor", 1e-4),
        ("conv_bias", True),
        ("bias", False),
        ("use_fast_path", True),
        ("layer_idx", None),
        ("device", None),
        ("dtype", None),
    ]


def test_mamba_init_properties():
    torch.manual_seed(0)
    m = Mamba(640)
    assert torch.equal(m.A_log, torch.log(torch.arange(1, 17, dtype=torch.float32)).repeat(1280, 1))
    assert torch.equal(m.D, torch.ones(1280))
    assert m.A_log._no_weight_decay and m.D._no_weight_decay and m.dt_proj.bias._no_reinit
    dt = F.softplus(m.dt_proj.bias.double()).detach()
    assert dt.min() >= 0.001 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    assert math.log(dt.max() / dt.min()) > 0.8 * math.log(100)  # spread log-uniformly over the range
    bound = 40**-0.5
    assert m.dt_proj.weight.abs().max() <= bound and m.dt_proj.weight.abs().max() > 0.9 * bound
    c = Mamba(64, dt_init="constant", dt_scale=2.0)
    assert torch.allclose(c.dt_proj.weight, torch.full_like(c.dt_proj.weight, 4**-0.5 * 2.0))
    floored = Mamba(64, dt_min=1e-6, dt_max=1e-5, dt_init_floor=1e-4)
    assert torch.allclose(F.softplus(floored.dt_proj.bias), torch.full((128,), 1e-4), rtol=1e-4)
    with pytest.raises(NotImplementedError):
        Mamba(64, dt_init="bogus")
    # same seed -> same weights (mamba-ssm draws in the same order)
    torch.manual_seed(3)
    a = Mamba(64)
    torch.manual_seed(3)
    b = Mamba(64)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_state_dict_round_trip_strict():
    torch.manual_seed(0)
    a, b = Mamba(640), Mamba(640)
    b.load_state_dict(a.state_dict(), strict=True)
    x = torch.randn(1, 9, 640)
    assert torch.equal(a(x), b(x))
    a.load_state_dict(b.state_dict(), strict=True)
    # BiMamba's directions are plain Mamba blocks: their weights load into standalone ones
    bi = BiMamba(640, d_out=512)
    for prefix in ("mamba_fwd.", "mamba_bwd."):
        sub = {k[len(prefix) :]: v for k, v in bi.state_dict().items() if k.startswith(prefix)}
        Mamba(640).load_state_dict(sub, strict=True)


# ---------------------------------------------------------------------------------------------------------
# BiMamba: padded batches
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("combine", ["concat", "sum"])
def test_bimamba_padded_batch_equals_each_sequence_alone(combine):
    torch.manual_seed(0)
    d, d_out, L = 16, 12, 40
    bi = BiMamba(d, d_out=d_out, combine=combine, d_state=8)
    lengths = torch.tensor([40, 33, 5])
    x = torch.randn(3, L, d)
    pad = torch.arange(L)[None, :] >= lengths[:, None]
    x[pad] = 1e3 * torch.randn(int(pad.sum()), d)  # garbage in the pads
    x.requires_grad_()
    out = bi(x, lengths)
    assert out.shape == (3, L, d_out)
    assert (out[pad] == 0).all()  # exact zeros on padding
    for i, n in enumerate(lengths.tolist()):
        alone = bi(x[i : i + 1, :n].detach())
        assert _rel(out[i, :n], alone[0]) <= 1e-5, i
        # each direction alone, too: forward as is; backward on the reversed sequence
        xf = x[i : i + 1, :n].detach()
        yf = bi.mamba_fwd(xf)
        yb = bi.mamba_bwd(xf.flip(1)).flip(1)
        both = torch.cat([yf, yb], -1) if combine == "concat" else yf + yb
        assert _rel(out[i, :n], bi.proj(both)[0]) <= 1e-5, i
    out.square().sum().backward()
    assert (x.grad[pad] == 0).all()  # nothing flows into the pads
    assert torch.isfinite(x.grad).all()


def test_bimamba_sees_both_directions_and_defaults():
    torch.manual_seed(0)
    bi = BiMamba(16, d_state=4)
    assert bi.d_out == 16 and bi.combine == "sum"
    x = torch.randn(1, 12, 16, requires_grad=True)
    y0 = bi(x)
    # position 0 depends on the last token (backward direction), the last position on the first one
    (g_first,) = torch.autograd.grad(y0[0, 0].sum(), x, retain_graph=True)
    (g_last,) = torch.autograd.grad(y0[0, -1].sum(), x, retain_graph=True)
    assert g_first[0, -1].abs().max() > 0 and g_last[0, 0].abs().max() > 0
    # ... and the forward block alone is causal
    (g_causal,) = torch.autograd.grad(bi.mamba_fwd(x)[0, 0].sum(), x)
    assert (g_causal[0, 1:] == 0).all()
    assert torch.allclose(bi(x, torch.tensor([12])), y0, atol=1e-6)  # full lengths == no lengths
    assert isinstance(BiMamba(16).proj, torch.nn.Identity)
    assert BiMamba(16, d_out=8, combine="concat").proj.in_features == 32
    with pytest.raises(ValueError):
        BiMamba(16, combine="max")
    kokoro = BiMamba(640, d_out=512)
    n = sum(p.numel() for p in kokoro.parameters())
    assert n == 2 * MAMBA_SSM_640_PARAMS + 640 * 512 + 512  # "sum": Linear(640, 512)
    assert kokoro(torch.randn(2, 7, 640), torch.tensor([7, 3])).shape == (2, 7, 512)


# ---------------------------------------------------------------------------------------------------------
# Backend dispatch
# ---------------------------------------------------------------------------------------------------------


def test_backend_dispatch_on_cpu():
    assert hm.resolve_backend("cpu") == "pure"
    assert hm.resolve_backend(torch.device("cpu")) == "pure"
    text = hm.describe_backend("cpu")
    assert text.startswith("pure:") and "cpu" in text
    hm.set_backend("pure")
    assert hm.get_backend() == "pure" and "forced" in hm.describe_backend("cpu")
    with pytest.raises(ValueError):
        hm.set_backend("cuda")


@pytest.mark.skipif(importlib.util.find_spec("mamba_ssm") is not None, reason="mamba_ssm is installed here")
def test_forcing_fused_without_mamba_ssm_raises_clearly():
    ok, why = hm.fused_available()
    assert not ok and "mamba_ssm" in why
    with pytest.raises(RuntimeError, match="fused kernels are unavailable"):
        hm.set_backend("fused")
    assert hm.get_backend() == "auto"
    assert "mamba_ssm not importable" in hm.describe_backend("cpu")


def _fake_causal_conv1d_fn(x, weight, bias=None, activation=None):
    y = F.conv1d(x, weight[:, None, :], bias, padding=weight.shape[-1] - 1, groups=x.shape[1])[
        ..., : x.shape[-1]
    ]
    return F.silu(y) if activation in ("silu", "swish") else y


def _fake_mamba_inner_fn(
    xz, conv_w, conv_b, x_proj_w, dt_proj_w, out_w, out_b, A, B, C, D, delta_bias=None, delta_softplus=True
):
    """mamba-ssm's mamba_inner_ref semantics (input-dependent B and C), to check the call on CPU."""
    L = xz.shape[-1]
    rank, n = dt_proj_w.shape[1], A.shape[-1]
    x, z = xz.chunk(2, dim=1)
    x = _fake_causal_conv1d_fn(x, conv_w[:, 0, :], conv_b, "silu")
    x_dbl = F.linear(x.transpose(1, 2).reshape(-1, x.shape[1]), x_proj_w)
    delta = (dt_proj_w @ x_dbl[:, :rank].t()).view(-1, xz.shape[0], L).permute(1, 0, 2)
    B = x_dbl[:, rank : rank + n].view(xz.shape[0], L, n).transpose(1, 2)
    C = x_dbl[:, -n:].view(xz.shape[0], L, n).transpose(1, 2)
    y = selective_scan_ref(x, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return F.linear(y.transpose(1, 2), out_w, out_b)


@pytest.mark.parametrize("with_causal_conv1d", [True, False])
def test_fused_path_glue_on_cpu_with_reference_kernels(monkeypatch, with_causal_conv1d):
    """The fused branch's argument plumbing, checked on CPU by standing in reference 'kernels'."""
    fake = SimpleNamespace(
        ok=True,
        reason="",
        version="fake",
        selective_scan_fn=lambda *a, **k: selective_scan_ref(*a, **k),
        mamba_inner_fn=_fake_mamba_inner_fn,
        causal_conv1d_fn=_fake_causal_conv1d_fn if with_causal_conv1d else None,
        causal_conv1d_version="fake",
    )
    import helpers.mamba.backend as backend

    monkeypatch.setattr(backend, "_fused", fake)
    torch.manual_seed(0)
    for kw in ({}, {"use_fast_path": False}, {"bias": True}):
        m = Mamba(32, d_state=8, **kw).double()
        x = torch.randn(2, 13, 32, dtype=torch.float64)
        assert _rel(m._forward_fused(x), m._forward_pure(x)) < 1e-10
    assert hm.resolve_backend("cpu") == "pure"  # auto never picks fused kernels for CPU tensors
    hm.set_backend("fused")
    with pytest.raises(RuntimeError, match="CUDA-only"):
        hm.resolve_backend("cpu")


# ---------------------------------------------------------------------------------------------------------
# Against the real mamba-ssm (GPU machines only)
# ---------------------------------------------------------------------------------------------------------


def _mamba_ssm_or_skip():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    try:
        from mamba_ssm.modules.mamba_simple import Mamba as RefMamba
    except Exception as e:  # not installed, or built against another torch
        pytest.skip(f"mamba_ssm not importable: {e}")
    return RefMamba


@pytest.mark.gpu
def test_against_mamba_ssm_on_gpu():
    RefMamba = _mamba_ssm_or_skip()
    torch.manual_seed(0)
    ref = RefMamba(64).cuda()
    torch.manual_seed(0)
    ours = Mamba(64).cuda()
    # same constructor, same RNG draws: identical initial weights
    for k, v in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[k], v), k
    assert list(ours.state_dict()) == list(ref.state_dict())
    with torch.no_grad():  # move away from the init so the comparison means something
        for p in ref.parameters():
            p.add_(0.02 * torch.randn_like(p))
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.randn(2, 100, 64, device="cuda", requires_grad=True)
    for backend in ("pure", "fused"):
        hm.set_backend(backend)
        assert hm.resolve_backend("cuda") == backend
        y_ref, y = ref(x), ours(x)
        assert _rel(y, y_ref) < 1e-4, backend
        g = torch.randn_like(y)
        got = torch.autograd.grad(y, [x, *ours.parameters()], g)
        want = torch.autograd.grad(y_ref, [x, *ref.parameters()], g)
        for name, a, b in zip(["x", *(n for n, _ in ours.named_parameters())], got, want):
            assert _rel(a, b) < 1e-3, (backend, name)
    hm.set_backend("auto")
    assert hm.describe_backend("cuda").startswith("fused:")
    # BiMamba on the fused path equals the pure path, padded batch included
    bi = BiMamba(64, d_out=48).cuda()
    lengths = torch.tensor([100, 61], device="cuda")
    outs = {}
    for backend in ("pure", "fused"):
        hm.set_backend(backend)
        outs[backend] = bi(x, lengths)
    assert _rel(outs["fused"], outs["pure"]) < 1e-4


def test_scratch_buffers_survive_inference_mode_then_training():
    """A scan run under torch.inference_mode must not poison the reused CPU scratch for later autograd runs."""
    from helpers.mamba.block import Mamba

    torch.manual_seed(0)
    m = Mamba(16, d_state=4)
    x = torch.randn(2, 40, 16)
    with torch.inference_mode():
        y_inf = m(x)
    xg = x.clone().requires_grad_(True)
    y = m(xg)
    y.sum().backward()
    torch.testing.assert_close(y.detach(), y_inf.clone())
    assert xg.grad is not None and torch.isfinite(xg.grad).all()
