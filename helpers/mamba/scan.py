"""The selective scan: a float64-checkable sequential reference and the fast pure-PyTorch Function.

    selective_scan_ref(u, delta, A, B, C, D, z, ...)  mamba-ssm's signature and layout, one step at a time
    selective_scan(...)                              the same maths, chunked, with a hand-written backward

Time-major inside: (L, B, channels), so every time step is one contiguous slab. The Function keeps only
the state at each chunk start for backward and recomputes the chunk's states there; the adjoint runs
g_h[t] = C_t * g_y[t] + dA[t+1] * g_h[t+1] backwards in time and every gradient is read off g_h and h
with whole-chunk tensor ops. Where the CPU time goes is measured in benchmarks/README.md.
"""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------------
# The selective scan.
# --------------------------------------------------------------------------------------------------


def selective_scan_ref(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Plain sequential selective scan, mamba-ssm's layout: u, delta, z (B, D, L); A (D, N);
    B, C (B, N, L) or grouped (B, G, N, L); D, delta_bias (D,). Returns (B, D, L) in u's dtype.

    Computes in float32, or float64 when any input is float64 (for tests). Autograd does the backward.
    """
    dtype_in = u.dtype
    ct = (
        torch.float64 if torch.float64 in (u.dtype, delta.dtype, A.dtype, B.dtype, C.dtype) else torch.float32
    )
    u, delta, A, B, C = (t.to(ct) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(ct)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, seqlen = u.shape
    dstate = A.shape[1]
    if B.dim() == 4:  # (B, G, N, L) -> one B per channel: (B, D, N, L)
        B = B.repeat_interleave(dim // B.shape[1], dim=1)
    if C.dim() == 4:
        C = C.repeat_interleave(dim // C.shape[1], dim=1)
    h = u.new_zeros(batch, dim, dstate)  # (B, D, N)
    ys = []
    for t in range(seqlen):
        dA = torch.exp(delta[:, :, t, None] * A)  # (B, D, N), <= 1 since A < 0
        Bt = B[:, None, :, t] if B.dim() == 3 else B[:, :, :, t]  # (B, 1|D, N)
        Ct = C[:, None, :, t] if C.dim() == 3 else C[:, :, :, t]
        h = dA * h + (delta[:, :, t] * u[:, :, t])[:, :, None] * Bt  # (B, D, N)
        ys.append((h * Ct).sum(-1))  # (B, D)
    y = torch.stack(ys, dim=2)  # (B, D, L)
    out = y if D is None else y + u * D.to(ct)[:, None]
    if z is not None:
        out = out * F.silu(z.to(ct))
    out = out.to(dtype_in)
    return (out, h) if return_last_state else out


_CHUNK_ELEMS = 1 << 20  # elements per (T, B, D, N) chunk temporary: 4 MB in fp32, cache-sized
_MIN_CHUNK = 4
_LOG2E = 1.4426950408889634  # exp(x) = exp2(x * log2(e)); torch's CPU exp2 is ~3x faster than exp


def _chunk_len(L: int, state_elems: int, chunk_len: int | None) -> int:
    """Time steps per chunk: cache-sized scratch, but at least _MIN_CHUNK steps, because one state per
    chunk is kept for backward (N/T times the size of an (L, B, D) activation)."""
    if chunk_len is not None:
        return max(1, min(L, int(chunk_len)))
    return max(1, min(L, max(_MIN_CHUNK, _CHUNK_ELEMS // max(1, state_elems))))


_workspaces: dict = {}  # (thread, dtype, inference mode) -> flat CPU scratch buffer, reused across calls
_WORKSPACE_CACHE_MAX = 1 << 24  # elements (64 MB fp32); bigger scratch is allocated per call


def _workspace(n_bufs: int, shape: tuple, like: torch.Tensor) -> list[torch.Tensor]:
    """``n_bufs`` scratch tensors of ``shape``. On CPU they come from one cached flat buffer: a fresh
    multi-MB allocation costs page faults on every call there (~0.4 ms per MB on a small VM), which
    was a third of the scan's time. On CUDA the caching allocator already does this."""
    numel = math.prod(shape)
    total = n_bufs * numel
    if like.device.type != "cpu" or total > _WORKSPACE_CACHE_MAX:
        return [like.new_empty(shape) for _ in range(n_bufs)]
    # inference tensors (made under torch.inference_mode) cannot be written outside it: separate buffers
    key = (threading.get_ident(), like.dtype, torch.is_inference_mode_enabled())
    buf = _workspaces.get(key)
    if buf is None or buf.numel() < total:
        buf = like.new_empty(total)
        _workspaces[key] = buf
    return [buf[i * numel : (i + 1) * numel].view(shape) for i in range(n_bufs)]


# Internal layout. Channels come in G groups (G = 1 for one Mamba, 2 for BiMamba's two directions);
# B and C are per group. The state is kept as (Bt, G, N, Dg), channels innermost, so that every
# reduction over n or over channels runs along contiguous memory:
#   u, delta, z  (L, Bt, G*Dg)      A2 = A^T * log2(e)  (G, N, Dg)      B, C  (L, Bt, G, N)
#   dA, dBu, h, g_h   (Tc, Bt, G, N, Dg) per chunk of Tc time steps


def _chunk_states(dlt, du, A2, Bm, h0, dA, hs):
    """States h_t of one chunk, written into ``hs`` (Tc, Bt, G, N, Dg), from start state h0 (Bt, G, N, Dg).

    dlt, du: (Tc, Bt, G, 1, Dg) views of delta and delta*u; Bm: (Tc, Bt, G, N). ``dA`` and ``hs`` are
    preallocated buffers (fresh multi-MB allocations cost page faults on CPU); dA receives exp(delta*A).
    """
    torch.mul(dlt, A2, out=dA).exp2_()  # exp(delta*A): (Tc, Bt, G, N, Dg), every entry in (0, 1]
    torch.mul(du, Bm[..., None], out=hs)  # dBu = delta*u*B; the loop turns it into h in place
    hs_s, dA_s = hs.unbind(0), dA.unbind(0)
    hs_s[0].addcmul_(dA_s[0], h0)
    for t in range(1, hs.shape[0]):
        hs_s[t].addcmul_(dA_s[t], hs_s[t - 1])  # h_t = dA_t * h_{t-1} + dBu_t


class _SelectiveScan(torch.autograd.Function):
    """Time-major selective scan with D skip and SiLU(z) gate, hand-written backward.

    u, delta, z: (L, Bt, D); A: (D, N); Bm, Cm: (L, Bt, G, N) with D = G * Dg (channel groups that
    share B and C); Dskip: (D,) or None; z may be None. Returns (L, Bt, D) in u's dtype.
    """

    @staticmethod
    def forward(ctx, u, delta, A, Bm, Cm, Dskip, z, chunk_len, save):  # noqa: D102
        ct = torch.float64 if u.dtype == torch.float64 else torch.float32
        in_dtypes = (u.dtype, delta.dtype, A.dtype, Bm.dtype, Cm.dtype)
        u, delta, Bm, Cm = (t.to(ct).contiguous() for t in (u, delta, Bm, Cm))
        L, Bt, Dn = u.shape
        N = A.shape[1]
        G = Bm.shape[2]
        Dg = Dn // G
        T = _chunk_len(L, Bt * Dn * N, chunk_len)
        n_chunks = -(-L // T)
        A2 = (A.to(ct) * _LOG2E).view(G, Dg, N).transpose(1, 2).contiguous()  # (G, N, Dg)

        du = delta * u  # (L, Bt, D)
        dlt5 = delta.view(L, Bt, G, 1, Dg)
        du5 = du.view(L, Bt, G, 1, Dg)
        y = torch.empty_like(u)  # (L, Bt, D)
        dA_buf, hs_buf = _workspace(2, (T, Bt, G, N, Dg), u)
        # the state at the start of every chunk (kept for the backward's recomputation), or just a carry
        starts = u.new_empty(n_chunks if save else 1, Bt, G, N, Dg)
        starts[0].zero_()
        for ci in range(n_chunks):
            c0, c1 = ci * T, min(L, ci * T + T)
            Tc = c1 - c0
            hs = hs_buf[:Tc]
            h0 = starts[ci] if save else starts[0]
            _chunk_states(dlt5[c0:c1], du5[c0:c1], A2, Bm[c0:c1], h0, dA_buf[:Tc], hs)
            if ci + 1 < n_chunks:
                (starts[ci + 1] if save else starts[0]).copy_(hs[-1])
            # y_t[d] = sum_n C_t[n] h_t[n, d]: one batched (1, N) @ (N, Dg) matmul per chunk
            TBG = Tc * Bt * G
            torch.bmm(Cm[c0:c1].view(TBG, 1, N), hs.view(TBG, N, Dg), out=y[c0:c1].view(TBG, 1, Dg))
        del dA_buf, hs_buf
        if Dskip is not None:
            y.addcmul_(u, Dskip.to(ct))  # y += D * u
        out = y
        if z is not None:
            out = y * F.silu(z.to(ct))  # gate
        if save:
            ctx.chunk = T
            ctx.in_dtypes = in_dtypes
            ctx.D_dtype = Dskip.dtype if Dskip is not None else None
            ctx.z_dtype = z.dtype if z is not None else None
            ctx.save_for_backward(
                u,
                delta,
                A,
                Bm,
                Cm,
                Dskip,
                z.to(ct).contiguous() if z is not None else None,
                y if z is not None else None,  # the pre-gate output, for g_z
                starts,
            )
        return out.to(in_dtypes[0])

    @staticmethod
    def backward(ctx, gout):  # noqa: D102
        u, delta, A, Bm, Cm, Dskip, z, ypre, starts = ctx.saved_tensors
        ct = u.dtype
        L, Bt, Dn = u.shape
        N = A.shape[1]
        G = Bm.shape[2]
        Dg = Dn // G
        T = ctx.chunk
        A2 = (A.to(ct) * _LOG2E).view(G, Dg, N).transpose(1, 2).contiguous()  # (G, N, Dg)
        At = A.to(ct).view(G, Dg, N).transpose(1, 2).contiguous()  # A^T per group (G, N, Dg)
        gout = gout.to(ct)

        gz = None
        if z is not None:  # few full-size temporaries: each one is a fresh allocation
            sz = torch.sigmoid(z)
            gy = torch.mul(z, sz).mul_(gout)  # d out / d y = SiLU(z)
            # d SiLU(z)/dz = s(z) (1 + z (1 - s(z)))
            gz = torch.rsub(sz, 1).mul_(z).add_(1).mul_(sz).mul_(gout).mul_(ypre)
            del sz
        else:
            gy = gout
        gy = gy.contiguous()
        gD = None
        if Dskip is not None:
            gD = torch.zeros_like(Dskip, dtype=ct)  # sum_{t,b} g_y * u, accumulated per chunk below
            gu = torch.mul(gy, Dskip.to(ct))
        else:
            gu = torch.zeros_like(u)

        du = delta * u  # (L, Bt, D)
        dlt5 = delta.view(L, Bt, G, 1, Dg)
        du5 = du.view(L, Bt, G, 1, Dg)
        gy5 = gy.view(L, Bt, G, 1, Dg)
        g_du = torch.empty_like(u)  # grad w.r.t. delta*u
        g_dlt = torch.empty_like(u)  # grad w.r.t. delta through exp(delta*A)
        gA2 = torch.zeros_like(A2)  # (G, N, Dg), grad w.r.t. A^T
        gB = torch.empty_like(Bm)
        gC = torch.empty_like(Cm)
        dA_buf, hs_buf, gh_buf, tmp_buf = _workspace(4, (T, Bt, G, N, Dg), u)
        carry = u.new_zeros(Bt, G, N, Dg)  # dA[first step of the later chunk] * g_h[same step]
        n_chunks = starts.shape[0]
        for ci in range(n_chunks - 1, -1, -1):
            c0, c1 = ci * T, min(L, ci * T + T)
            Tc = c1 - c0
            TBG = Tc * Bt * G
            h0 = starts[ci]  # (Bt, G, N, Dg)
            dA, hs, gh, tmp = dA_buf[:Tc], hs_buf[:Tc], gh_buf[:Tc], tmp_buf[:Tc]
            if gD is not None:  # (an einsum here would transpose both full tensors: 10x slower)
                gD.add_(
                    torch.mul(gy[c0:c1], u[c0:c1], out=tmp.view(-1)[: Tc * Bt * Dn].view(Tc, Bt, Dn)).sum(
                        (0, 1)
                    )
                )
            _chunk_states(dlt5[c0:c1], du5[c0:c1], A2, Bm[c0:c1], h0, dA, hs)  # recompute the states
            # g_C[t, n] = sum_d g_y[t, d] h_t[n, d]
            torch.bmm(
                gy[c0:c1].view(TBG, 1, Dg), hs.view(TBG, N, Dg).transpose(1, 2), out=gC[c0:c1].view(TBG, 1, N)
            )
            # adjoint state, backwards in time: g_h[t] = C_t g_y[t] + dA[t+1] g_h[t+1]
            torch.mul(gy5[c0:c1], Cm[c0:c1, ..., None], out=gh)  # (Tc, Bt, G, N, Dg)
            gh[-1].add_(carry)
            gh_s, dA_s = gh.unbind(0), dA.unbind(0)
            for t in range(Tc - 2, -1, -1):
                gh_s[t].addcmul_(dA_s[t + 1], gh_s[t + 1])
            torch.mul(dA_s[0], gh_s[0], out=carry)
            # g_(delta*A)[t] = g_h[t] * dA[t] * h[t-1]   (d exp(x)/dx = exp(x))
            w = dA.mul_(gh)  # dA is not needed any more: reuse its memory
            if Tc > 1:
                w[1:].mul_(hs[:-1])
            w[0].mul_(h0)
            torch.sum(torch.mul(w, At, out=tmp), -2, out=g_dlt[c0:c1].view(Tc, Bt, G, Dg))  # sum over n
            gA2.add_(w.mul_(dlt5[c0:c1]).sum((0, 1)))  # sum over t, b
            # dBu[t] = (delta*u)[t, d] B_t[n]:  g_(delta*u) = sum_n g_h B,  g_B = sum_d g_h (delta*u)
            torch.bmm(Bm[c0:c1].view(TBG, 1, N), gh.view(TBG, N, Dg), out=g_du[c0:c1].view(TBG, 1, Dg))
            torch.bmm(
                du[c0:c1].view(TBG, 1, Dg), gh.view(TBG, N, Dg).transpose(1, 2), out=gB[c0:c1].view(TBG, 1, N)
            )
        gu.addcmul_(g_du, delta)
        gdelta = g_dlt.addcmul_(g_du, u)
        gA = gA2.transpose(1, 2).reshape(Dn, N)  # back to (D, N)

        dt_u, dt_d, dt_A, dt_B, dt_C = ctx.in_dtypes
        return (
            gu.to(dt_u),
            gdelta.to(dt_d),
            gA.to(dt_A),
            gB.to(dt_B),
            gC.to(dt_C),
            gD.to(ctx.D_dtype) if gD is not None else None,
            gz.to(ctx.z_dtype) if gz is not None else None,
            None,
            None,
        )


def _scan_tm(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    Bm: torch.Tensor,
    Cm: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    chunk_len: int | None = None,
) -> torch.Tensor:
    """Time-major entry: u, delta, z (L, B, D); A (D, N); Bm, Cm (L, B, G, N) or (L, B, N)."""
    if Bm.dim() == 3:
        Bm = Bm.unsqueeze(2)
    if Cm.dim() == 3:
        Cm = Cm.unsqueeze(2)
    if Bm.shape[2] != Cm.shape[2] or u.shape[-1] % Bm.shape[2]:
        raise ValueError(f"B groups {Bm.shape[2]} and C groups {Cm.shape[2]} must be equal and divide D")
    if torch.onnx.is_in_onnx_export():  # one ONNX Loop over time instead of an unrolled trace (scan_loop.py)
        from helpers.mamba.scan_loop import scan_for_export

        return scan_for_export(u, delta, A, Bm, Cm, D, z)
    tensors = [t for t in (u, delta, A, Bm, Cm, D, z) if t is not None]
    save = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    return _SelectiveScan.apply(u, delta, A, Bm, Cm, D, z, chunk_len, save)


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    chunk_len: int | None = None,
) -> torch.Tensor:
    """The fast pure-PyTorch scan (custom autograd Function) behind mamba-ssm's ``selective_scan_fn``
    signature: u, delta, z (B, D, L); A (D, N); B, C (B, N, L) or (B, G, N, L). Returns (B, D, L).

    ``chunk_len`` (time steps per chunk) is for tests; by default it is sized to stay in cache.
    """
    delta = delta.float() if delta.dtype != torch.float64 else delta
    if delta_bias is not None:
        delta = delta + delta_bias.to(delta.dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)

    def tm_bc(t: torch.Tensor) -> torch.Tensor:  # (B, N, L) / (B, G, N, L) -> (L, B, G, N)
        return t.permute(2, 0, 1).unsqueeze(2) if t.dim() == 3 else t.permute(3, 0, 1, 2)

    y = _scan_tm(
        u.permute(2, 0, 1),
        delta.permute(2, 0, 1),
        A,
        tm_bc(B),
        tm_bc(C),
        D,
        z.permute(2, 0, 1) if z is not None else None,
        chunk_len,
    )  # (L, B, D)
    return y.permute(1, 2, 0)

