"""Parameter-efficient fine-tuning: freeze Kokoro, train only the transplanted blocks; reports that prove it.

    freeze_for_peft(model, PeftConfig())           # everything frozen, then the new blocks unfrozen
    print(trainable_summary(model))                # trainable params: N || all params: M || trainable%: P
    snapshot(model); ...; changed_tensors(before, model)   # which tensors an optimizer step changed

Adapters (saving and loading what the surgery added) live in `helpers.transplant.adapters`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from helpers.transplant.surgery import (
    DURATION_ENCODER_PATH,
    MambaDurationEncoder,
    is_lstm_encoder,
)


@dataclass
class PeftConfig:
    """What stays trainable after freezing."""

    train_mamba: bool = True  # the new blocks, Mamba or CfC (and the single design's projection); un-operated: the LSTMs
    train_norms: bool = False  # the DurationEncoder's AdaLayerNorms (layerwise design)
    extra: tuple[str, ...] = ()  # more module paths to unfreeze, e.g. ("predictor.lstm",)


def student_kind(model: nn.Module) -> str:
    """What the model's DurationEncoder is: "mamba" or "cfc" (transplanted), or "lstm" (Kokoro's own, un-operated)."""
    enc = model.get_submodule(DURATION_ENCODER_PATH)
    if isinstance(enc, MambaDurationEncoder):
        return enc.cfg.block
    if is_lstm_encoder(enc):
        return "lstm"
    raise TypeError(f"{DURATION_ENCODER_PATH} is a {type(enc).__name__}: neither transplanted nor Kokoro's own")


def trainable_prefixes(model: nn.Module, cfg: PeftConfig) -> list[str]:
    """The module paths that stay trainable. The student is the DurationEncoder: its new blocks when operated; on an
    un-operated model (the same-recipe LSTM control) the layers the blocks replace, its three BiLSTMs
    (`lstms.0/.2/.4`; `train_norms` adds the AdaLayerNorms `lstms.1/.3/.5`, as for the layerwise transplant)."""
    enc = model.get_submodule(DURATION_ENCODER_PATH)
    if student_kind(model) == "lstm":
        keep = [i for i, m in enumerate(enc.lstms) if (cfg.train_mamba if isinstance(m, nn.LSTM) else cfg.train_norms)]
        return [f"{DURATION_ENCODER_PATH}.lstms.{i}" for i in keep] + list(cfg.extra)
    prefixes = []
    if cfg.train_mamba:
        prefixes += [
            f"{DURATION_ENCODER_PATH}.{n}"
            for n in (("blocks",) if enc.cfg.design == "layerwise" else ("mamba", "proj"))
        ]
    if cfg.train_norms and enc.cfg.design == "layerwise":
        prefixes.append(f"{DURATION_ENCODER_PATH}.norms")
    return prefixes + list(cfg.extra)


def freeze_for_peft(model: nn.Module, cfg: PeftConfig | None = None) -> list[str]:
    """Freeze every parameter, then unfreeze exactly the configured ones. Returns their names."""
    prefixes = trainable_prefixes(model, cfg or PeftConfig())
    names = []
    for name, p in model.named_parameters():
        p.requires_grad_(any(name == q or name.startswith(q + ".") for q in prefixes))
        if p.requires_grad:
            names.append(name)
    if not names:
        raise ValueError(f"no parameter matched the trainable prefixes {prefixes}")
    return names


def trainable_summary(model: nn.Module) -> str:
    """'trainable params: N || all params: M || trainable%: P' (the form PEFT libraries print)."""
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"trainable params: {train:,} || all params: {total:,} || trainable%: {100 * train / total:.4f}"


def trainable_table(model: nn.Module, depth: int = 3) -> pd.DataFrame:
    """Per module (names cut to `depth` levels): trainable and frozen parameter counts."""
    rows: dict[str, list[int]] = {}
    for name, p in model.named_parameters():
        key = ".".join(name.split(".")[:depth])
        rows.setdefault(key, [0, 0])[0 if p.requires_grad else 1] += p.numel()
    df = pd.DataFrame([(k, a, b) for k, (a, b) in rows.items()], columns=["module", "trainable", "frozen"])
    return df.sort_values(["trainable", "frozen"], ascending=False).reset_index(drop=True)


def gradient_report(model: nn.Module) -> pd.DataFrame:
    """One row per parameter tensor: trainable?, gradient present?, gradient norm."""
    rows = []
    for name, p in model.named_parameters():
        rows.append(
            {
                "parameter": name,
                "trainable": p.requires_grad,
                "has grad": p.grad is not None,
                "grad norm": float(p.grad.norm()) if p.grad is not None else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every tensor in the state_dict, to check later what an optimizer step changed."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed_tensors(before: dict[str, torch.Tensor], model: nn.Module) -> list[str]:
    """Names of state_dict tensors that are no longer bit-identical to `before`."""
    return [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
