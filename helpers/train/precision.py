"""Which arithmetic the training step uses, decided once from the device, and printed.

    p = choose_precision("cuda", bf16_native=True)     # a pure function of what the device can do
    p = precision_for(device, requested="auto")         # the same, asking torch about a real device
    with p.autocast(device.type): loss = ...            # the student's forward under that dtype
    scaler = p.grad_scaler(device.type)                 # fp16 only: loss scaling, else None

The rules (`choose_precision`):

    requested "fp32", or a CPU/MPS device with "auto"   fp32, no autocast
    CUDA with native bf16 (Ampere and newer: A100, L4,   bf16 autocast, no scaler: bf16 has fp32's range
    H100; torch.cuda.is_bf16_supported(
    including_emulation=False))
    CUDA without it (T4, V100), "auto" or "fp16"         fp16 autocast with a GradScaler: fp16's range is
                                                         small, so the loss is scaled before backward and
                                                         steps with inf/nan gradients are skipped
    "bf16" asked for where it is not native             refused (emulated bf16 is slow and not what was asked)

Whatever is chosen, the teacher's forwards and the durations rounded from its logits run in fp32 outside the
autocast (helpers.train.trainer): the targets a student is trained against must not move with the student's
arithmetic. A 0.05-frame error in a duration logit sum flips its rounding, where the drift the project
measures needs 0.1 frame RMS.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

CHOICES = ("auto", "bf16", "fp16", "fp32")


@dataclass(frozen=True)
class Precision:
    """The decision: the autocast dtype (None: fp32, no autocast), whether a GradScaler is needed, and why."""

    dtype: torch.dtype | None
    scaler: bool
    reason: str

    @property
    def name(self) -> str:
        return {torch.bfloat16: "bf16", torch.float16: "fp16", None: "fp32"}[self.dtype]

    def autocast(self, device_type: str):
        """The context the student's forward runs in (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=self.dtype)

    def grad_scaler(self, device_type: str) -> torch.amp.GradScaler | None:
        return torch.amp.GradScaler(device_type) if self.scaler else None

    def describe(self) -> str:
        scaled = " with a GradScaler" if self.scaler else ""
        return f"precision: {self.name}{scaled} ({self.reason}); teacher targets in fp32"


def choose_precision(device_type: str, bf16_native: bool, requested: str = "auto") -> Precision:
    """The training arithmetic for a device (see the module docstring). `bf16_native`: the GPU computes bf16
    in hardware (ignored off CUDA). Raises ValueError for an unknown or impossible request."""
    if requested not in CHOICES:
        raise ValueError(f"precision must be one of {CHOICES}, got {requested!r}")
    if requested == "fp32":
        return Precision(None, False, "asked for")
    if device_type != "cuda":
        if requested != "auto":
            raise ValueError(f"precision {requested!r} needs a CUDA device (this one is {device_type!r}): use fp32")
        return Precision(None, False, f"{device_type}: mixed precision is used on CUDA only")
    if requested == "bf16" and not bf16_native:
        raise ValueError("precision 'bf16' asked for, but this GPU has no native bf16 (T4, V100): use fp16 or auto")
    if requested == "fp16":
        return Precision(torch.float16, True, "asked for")
    if bf16_native:
        return Precision(torch.bfloat16, False, "the GPU computes bf16 natively")
    return Precision(torch.float16, True, "the GPU has no native bf16")


def bf16_native(device: torch.device) -> bool:
    """True on a CUDA GPU with hardware bf16 (compute capability 8.0+); emulation does not count."""
    if device.type != "cuda":
        return False
    return bool(torch.cuda.is_bf16_supported(including_emulation=False))


def precision_for(device: str | torch.device, requested: str = "auto") -> Precision:
    """`choose_precision` for a real device, asking torch whether its bf16 is native."""
    device = torch.device(device)
    return choose_precision(device.type, bf16_native(device), requested)


def fp32(device: torch.device):
    """A block that runs in fp32 even inside the training step's autocast (the teacher, its durations)."""
    return torch.autocast(device.type, enabled=False)


def backward(loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> None:
    """loss.backward(), the loss scaled first under fp16 (its small gradients would underflow)."""
    (loss if scaler is None else scaler.scale(loss)).backward()


def clip_and_step(opt, params, max_norm: float, scaler: torch.amp.GradScaler | None) -> float:
    """Clip the (unscaled) gradients to `max_norm`, take the optimizer step; returns the gradient norm. With a
    scaler, a step whose fp16 gradients overflowed is skipped and the scale adapts."""
    if scaler is not None:
        scaler.unscale_(opt)
    gnorm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    if scaler is None:
        opt.step()
    else:
        scaler.step(opt)
        scaler.update()
    return gnorm
