"""Backend dispatch: the one place that decides between mamba-ssm's fused CUDA kernels and pure PyTorch.

`resolve_backend(device)` answers 'fused' or 'pure'; `set_backend` overrides it, `describe_backend` says which
one is active and why. mamba-ssm is imported lazily: it cannot even be imported on CPU machines.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

_BACKENDS = ("auto", "pure", "fused")
_backend_override = "auto"
_fused: SimpleNamespace | None = None  # lazily filled by _load_fused()


def _load_fused() -> SimpleNamespace:
    """Try (once) to import mamba-ssm's kernels; remember what worked and why not."""
    global _fused
    if _fused is not None:
        return _fused
    ns = SimpleNamespace(
        ok=False,
        reason="",
        version=None,
        selective_scan_fn=None,
        mamba_inner_fn=None,
        causal_conv1d_fn=None,
        causal_conv1d_version=None,
    )
    try:
        import mamba_ssm  # noqa: F401  (fails on machines without CUDA builds)
        from mamba_ssm.ops.selective_scan_interface import mamba_inner_fn, selective_scan_fn

        ns.ok = True
        ns.version = getattr(mamba_ssm, "__version__", "?")
        ns.selective_scan_fn = selective_scan_fn
        ns.mamba_inner_fn = mamba_inner_fn
    except Exception as e:  # ImportError, undefined-symbol OSError, ...: all mean "not usable"
        ns.reason = (
            f"mamba_ssm not importable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        )
    if ns.ok:
        try:
            import causal_conv1d
            from causal_conv1d import causal_conv1d_fn

            ns.causal_conv1d_fn = causal_conv1d_fn
            ns.causal_conv1d_version = getattr(causal_conv1d, "__version__", "?")
        except Exception:
            ns.causal_conv1d_fn = None  # mamba-ssm then uses nn.Conv1d + selective_scan_fn
    _fused = ns
    return ns


def fused_available() -> tuple[bool, str]:
    """(True, "") when mamba-ssm's kernels import, else (False, why not). Does not look at CUDA."""
    ns = _load_fused()
    return ns.ok, ns.reason


def set_backend(name: str = "auto") -> None:
    """Override the backend for every Mamba/BiMamba: "auto" (default), "pure" or "fused".

    "fused" raises RuntimeError right away when mamba-ssm cannot be imported.
    """
    global _backend_override
    if name not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {name!r}")
    if name == "fused":
        ok, why = fused_available()
        if not ok:
            raise RuntimeError(
                f"set_backend('fused'): the fused kernels are unavailable: {why}. "
                "They need a CUDA machine with mamba-ssm (and ideally causal-conv1d) built against the "
                "installed torch (pip install --no-build-isolation mamba-ssm causal-conv1d). "
                "Use set_backend('auto') or 'pure' to run the pure-PyTorch path."
            )
    _backend_override = name


def get_backend() -> str:
    """The current override: "auto", "pure" or "fused"."""
    return _backend_override


def resolve_backend(device: torch.device | str) -> str:
    """Return "fused" or "pure" for tensors on ``device`` under the current override."""
    device = torch.device(device)
    if _backend_override == "pure":
        return "pure"
    if _backend_override == "fused":
        ok, why = fused_available()
        if not ok:
            raise RuntimeError(f"backend forced to 'fused' but {why}")
        if device.type != "cuda":
            raise RuntimeError(
                f"backend forced to 'fused' but the tensor is on {device}: mamba-ssm's kernels are CUDA-only. "
                "Use set_backend('auto') to fall back to the pure path off-GPU."
            )
        return "fused"
    if device.type != "cuda":
        return "pure"
    return "fused" if fused_available()[0] else "pure"


def describe_backend(device: torch.device | str | None = None) -> str:
    """One line for the workbook: which backend runs on ``device`` (default: cuda if present) and why."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    try:
        backend = resolve_backend(device)
    except RuntimeError as e:
        return f"error: {e}"
    ok, why = fused_available()
    if backend == "fused":
        ns = _load_fused()
        conv = (
            f"causal_conv1d {ns.causal_conv1d_version} -> mamba_inner_fn"
            if ns.causal_conv1d_fn is not None
            else "no causal_conv1d -> nn.Conv1d + selective_scan_fn"
        )
        how = "forced by set_backend('fused')" if _backend_override == "fused" else "auto"
        return f"fused: mamba_ssm {ns.version} CUDA kernels on {device} ({conv}; {how})"
    if _backend_override == "pure":
        reason = "forced by set_backend('pure')"
    elif device.type != "cuda":
        reason = f"auto: tensors on {device.type}, the fused kernels are CUDA-only"
        if not ok:
            reason += f"; {why}"
    else:
        reason = f"auto: {why}"
    return f"pure: PyTorch selective scan with hand-written backward on {device} ({reason})"


