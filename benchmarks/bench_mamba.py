"""Kokoro's BiLSTM vs Mamba vs BiMamba: time, parameters, memory.

    python benchmarks/bench_mamba.py                 # full CPU table (B 1/8/32 x L 32/128/512), 2 threads
    python benchmarks/bench_mamba.py --quick         # B 1/8 x L 32/128
    python benchmarks/bench_mamba.py --device cuda   # cuDNN LSTM vs fused mamba-ssm vs the pure path
    python benchmarks/bench_mamba.py --combine       # the toy task behind BiMamba's default combine rule

Models, as the surgery uses them: ``nn.LSTM(640, 256, batch_first=True, bidirectional=True)`` (Kokoro's
DurationEncoder LSTM, 512 out), ``Mamba(640)`` (one direction, 640 out) and ``BiMamba(640, d_out=512)``.
Full-length sequences, no padding. Times are medians of a few repeats after warm-up; "fwd" runs under
no_grad, "fwd+bwd" is forward + backward of ``out.sum()`` with the input requiring grad. The ratio
columns divide by the BiLSTM of the same (B, L).

Memory: on CUDA, the peak of ``torch.cuda.max_memory_allocated`` during forward+backward above what was
allocated before (parameters, input). On CPU there is no allocator peak to read, so the column is the
activation memory autograd keeps for backward (unique storages saved by the graph, parameters and the
input excluded), measured with ``torch.autograd.graph.saved_tensors_hooks``; transient buffers are not
in it (the pure scan adds about 4 x chunk x B x d_inner x d_state floats of scratch, ~32 MB at most).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import helpers.mamba as hm  # noqa: E402
from helpers.mamba.bidirectional import BiMamba  # noqa: E402
from helpers.mamba.block import Mamba  # noqa: E402


def _tune_malloc() -> str:
    """glibc only: keep freed memory in the heap instead of handing it back to the OS.

    On small VMs a fresh multi-MB CPU tensor pays page faults (~0.4 ms per MB measured here) every
    time it is allocated; with this, freed blocks are reused. Applies to every model alike."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        ok = libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1)
        return "glibc malloc tuned (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2^31-1)" if ok else "mallopt failed"
    except OSError as e:
        return f"malloc tuning unavailable ({e})"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _call(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out[0] if isinstance(out, tuple) else out  # nn.LSTM returns (out, (h, c))


def _fwd(model: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        _call(model, x)


def _fwd_bwd(model: nn.Module, x: torch.Tensor) -> None:
    for p in model.parameters():
        p.grad = None
    x.grad = None
    _call(model, x).sum().backward()


def _time_interleaved(fns: list, device: torch.device, repeats: int, budget_s: float = 30.0) -> list[float]:
    """Median wall time (ms) of each fn, after one warm-up each. The fns are timed round-robin
    (fn0, fn1, fn2, fn0, ...) so that a change of machine load hits all of them alike and the ratios
    stay fair on a shared machine; fewer rounds (at least 3) when a round is slow."""
    for fn in fns:
        fn()
    _sync(device)
    times: list[list[float]] = [[] for _ in fns]
    t_start = time.perf_counter()
    for r in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[i].append(time.perf_counter() - t0)
        if r >= 2 and time.perf_counter() - t_start > budget_s:
            break
    return [statistics.median(t) * 1e3 for t in times]


def _saved_activation_mb(model: nn.Module, x: torch.Tensor) -> float:
    """MB of unique storages autograd saves for backward (parameters and the input excluded)."""
    skip = {p.untyped_storage().data_ptr() for p in model.parameters()} | {x.untyped_storage().data_ptr()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        s = t.untyped_storage()
        if s.data_ptr() not in skip:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = _call(model, x)
    del out
    return sum(seen.values()) / 2**20


def _peak_cuda_mb(model: nn.Module, x: torch.Tensor) -> float:
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    _call(model, x).sum().backward()
    torch.cuda.synchronize()
    model.zero_grad(set_to_none=True)
    x.grad = None
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def _models(device: torch.device) -> list[tuple[str, nn.Module, str]]:
    """(row name, module, backend) for this device."""
    torch.manual_seed(0)
    lstm = nn.LSTM(640, 256, batch_first=True, bidirectional=True).to(device)
    mamba = Mamba(640).to(device)
    bimamba = BiMamba(640, d_out=512).to(device)
    rows = [("BiLSTM 640->2x256", lstm, "auto")]
    if device.type == "cuda":
        if hm.fused_available()[0]:
            rows += [("Mamba 640 (fused)", mamba, "fused"), ("BiMamba 640->512 (fused)", bimamba, "fused")]
        rows += [("Mamba 640 (pure)", mamba, "pure"), ("BiMamba 640->512 (pure)", bimamba, "pure")]
    else:
        rows += [("Mamba 640", mamba, "pure"), ("BiMamba 640->512", bimamba, "pure")]
    return rows


def run_table(device: torch.device, batches: list[int], lengths: list[int], repeats: int) -> None:
    rows = _models(device)
    mem_col = "peak MB" if device.type == "cuda" else "saved MB"
    head = f"{'model':<26} {'B':>3} {'L':>4} {'fwd ms':>9} {'x LSTM':>7} {'fwd+bwd ms':>11} {'x LSTM':>7} {'params':>10} {mem_col:>9}"
    print(head)
    print("-" * len(head))
    for B in batches:
        for L in lengths:
            x = torch.randn(B, L, 640, device=device, requires_grad=True)

            def with_backend(fn, backend):
                def run():
                    hm.set_backend(backend)
                    fn()

                return run

            fwds = [with_backend(functools.partial(_fwd, m, x), be) for _, m, be in rows]
            fbs = [with_backend(functools.partial(_fwd_bwd, m, x), be) for _, m, be in rows]
            t_f = _time_interleaved(fwds, device, repeats)
            t_fb = _time_interleaved(fbs, device, repeats)
            for i, (name, model, backend) in enumerate(rows):
                hm.set_backend(backend)
                mem = _peak_cuda_mb(model, x) if device.type == "cuda" else _saved_activation_mb(model, x)
                n_params = sum(p.numel() for p in model.parameters())
                print(
                    f"{name:<26} {B:>3} {L:>4} {t_f[i]:>9.1f} {t_f[i] / t_f[0]:>7.2f} {t_fb[i]:>11.1f} "
                    f"{t_fb[i] / t_fb[0]:>7.2f} {n_params:>10,} {mem:>9.1f}",
                    flush=True,
                )
            print(f"{'':<26} load average {os.getloadavg()[0]:.2f}\n" if hasattr(os, "getloadavg") else "")
    hm.set_backend("auto")


# -------------------------------------------------------------------------------------------------
# The combine-rule study: a toy task that needs both the past and the future
# -------------------------------------------------------------------------------------------------


class _Toy(nn.Module):
    def __init__(self, d_in: int, d_model: int, d_out: int, combine: str):
        super().__init__()
        self.inp = nn.Linear(d_in, d_model)
        self.bi = BiMamba(d_model, d_out=d_out, combine=combine, d_state=8)
        self.head = nn.Linear(d_out, d_in)

    def forward(self, x, lengths):
        return self.head(self.bi(self.inp(x), lengths))


def _toy_batch(B: int, L: int, d_in: int, k: int, g: torch.Generator):
    """Target at t: x[t-k] + 0.5 * x[t+k] (zero outside the sequence); random lengths, right padded."""
    lengths = torch.randint(L // 2, L + 1, (B,), generator=g)
    x = torch.randn(B, L, d_in, generator=g)
    valid = torch.arange(L)[None, :] < lengths[:, None]  # (B, L)
    x = x * valid[..., None]
    past = torch.zeros_like(x)
    past[:, k:] = x[:, :-k]
    fut = torch.zeros_like(x)
    fut[:, :-k] = x[:, k:]
    y = (past + 0.5 * fut) * valid[..., None]
    return x, lengths, y, valid


def run_combine_study(steps: int = 300, seeds: int = 6, k: int = 3, evals=(100, 200, 300)) -> None:
    d_in, d_model, d_out, B, L = 8, 32, 24, 16, 48
    print(
        f"toy task: y[t] = x[t-{k}] + 0.5 x[t+{k}], d_in {d_in}, in Linear -> BiMamba({d_model} -> {d_out},"
    )
    print(f"          d_state 8) -> out Linear; batch {B}, random lengths <= {L} (padded), Adam 3e-3,")
    print(
        f"          {seeds} seeds; validation MSE on 256 fresh sequences (a constant predictor scores ~1.25)"
    )
    print(f"{'combine':<8} {'params':>8} {'ms/step':>8} " + " ".join(f"{'MSE@' + str(e):>16}" for e in evals))
    for combine in ("concat", "sum"):
        curves = {e: [] for e in evals}
        times = []
        for seed in range(seeds):
            torch.manual_seed(seed)
            model = _Toy(d_in, d_model, d_out, combine)
            opt = torch.optim.Adam(model.parameters(), lr=3e-3)
            g = torch.Generator().manual_seed(100 + seed)
            t_train = 0.0
            for step in range(1, steps + 1):
                t0 = time.perf_counter()
                x, lengths, y, valid = _toy_batch(B, L, d_in, k, g)
                loss = ((model(x, lengths) - y) ** 2)[valid].mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                t_train += time.perf_counter() - t0
                if step in curves:
                    gv = torch.Generator().manual_seed(999)
                    with torch.no_grad():
                        xv, lv, yv, mv = _toy_batch(256, L, d_in, k, gv)
                        curves[step].append(((model(xv, lv) - yv) ** 2)[mv].mean().item())
            times.append(t_train / steps * 1e3)
        n = sum(p.numel() for p in model.bi.parameters())
        cells = " ".join(
            f"{statistics.mean(v):>7.4f} +-{statistics.stdev(v) if len(v) > 1 else 0.0:>6.4f}"
            for v in curves.values()
        )
        print(f"{combine:<8} {n:>8,} {statistics.median(times):>8.1f} {cells}", flush=True)
    print("(mean +- standard deviation over seeds)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="B 1/8 x L 32/128 only")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on CPU (default 2)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batches", type=int, nargs="+", default=None)
    ap.add_argument("--lengths", type=int, nargs="+", default=None)
    ap.add_argument("--combine", action="store_true", help="run the combine-rule toy study instead")
    ap.add_argument(
        "--malloc-tuned",
        action="store_true",
        help="keep freed CPU memory for reuse (glibc mallopt), to see the cost of page faults",
    )
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.combine:
        run_combine_study()
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: CUDA is not available here")
    batches = args.batches or ([1, 8] if args.quick else [1, 8, 32])
    lengths = args.lengths or ([32, 128] if args.quick else [32, 128, 512])
    repeats = 3 if args.quick and args.repeats == 5 else args.repeats
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}", end="")
    print(f", load average {load[0]:.2f}" if load else "")
    print(hm.describe_backend(device))
    if args.malloc_tuned:
        print(_tune_malloc())
    t0 = time.perf_counter()
    run_table(device, batches, lengths, repeats)
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"total {time.perf_counter() - t0:.0f} s" + (f", load average {load[0]:.2f}" if load else ""))


if __name__ == "__main__":
    main()
