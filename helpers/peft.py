"""Parameter-efficient fine-tuning: freeze Kokoro, train only the transplanted Mamba blocks.

    freeze_for_peft(model, PeftConfig())           # everything frozen, then the new blocks unfrozen
    print(trainable_summary(model))                # trainable params: N || all params: M || trainable%: P
    save_adapter(model, "adapter", surgery_cfg)    # adapter.safetensors + adapter.json (blocks only)
    load_adapter(fresh_model, "adapter")           # re-applies the surgery, then loads the blocks

An adapter holds only what the surgery added (the MambaDurationEncoder's state_dict) plus the
SurgeryConfig that built it, so it is small (~10-30 MB in fp32) and re-applies onto any freshly loaded
Kokoro-82M. Loading one made for another design or size fails with a clear error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from .surgery import DURATION_ENCODER_PATH, MambaDurationEncoder, SurgeryConfig, replace_duration_encoder

ADAPTER_FORMAT = "kokoro-mamba-adapter/1"


class AdapterMismatchError(ValueError):
    """An adapter that does not fit the model it is loaded into."""


@dataclass
class PeftConfig:
    """What stays trainable after freezing."""

    train_mamba: bool = True  # the new Mamba blocks (and the single design's projection)
    train_norms: bool = False  # the DurationEncoder's AdaLayerNorms (layerwise design)
    extra: tuple[str, ...] = ()  # more module paths to unfreeze, e.g. ("predictor.lstm",)


def trainable_prefixes(model: nn.Module, cfg: PeftConfig) -> list[str]:
    enc = model.get_submodule(DURATION_ENCODER_PATH)
    if not isinstance(enc, MambaDurationEncoder):
        raise TypeError("run the surgery first: the DurationEncoder is not a MambaDurationEncoder")
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


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The MambaDurationEncoder's full state (blocks, norms, projection): what the surgery added."""
    enc = model.get_submodule(DURATION_ENCODER_PATH)
    if not isinstance(enc, MambaDurationEncoder):
        raise TypeError("this model has no MambaDurationEncoder to save")
    return {k: v.detach().cpu().contiguous() for k, v in enc.state_dict().items()}


def save_adapter(model: nn.Module, path: str | Path, metadata: dict | None = None) -> tuple[Path, Path]:
    """Write <path>.safetensors (tensors) and <path>.json (surgery config, shapes, metadata)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    enc = model.get_submodule(DURATION_ENCODER_PATH)
    tensors = adapter_state_dict(model)
    st_path, js_path = path.with_suffix(".safetensors"), path.with_suffix(".json")
    tmp = st_path.with_suffix(".safetensors.tmp")
    save_file(tensors, str(tmp))
    tmp.replace(st_path)
    info = {
        "format": ADAPTER_FORMAT,
        "target": DURATION_ENCODER_PATH,
        "surgery": enc.cfg.to_dict(),
        "shapes": {k: list(v.shape) for k, v in tensors.items()},
        "parameters": int(sum(v.numel() for v in tensors.values())),
        "metadata": metadata or {},
    }
    js_path.write_text(json.dumps(info, indent=2))
    return st_path, js_path


def read_adapter(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(info, tensors) of an adapter, with clear errors for missing or foreign files."""
    from safetensors.torch import load_file

    path = Path(path)
    st_path, js_path = path.with_suffix(".safetensors"), path.with_suffix(".json")
    for f in (st_path, js_path):
        if not f.exists():
            raise FileNotFoundError(f"adapter file missing: {f}")
    info = json.loads(js_path.read_text())
    if info.get("format") != ADAPTER_FORMAT:
        raise AdapterMismatchError(f"{js_path} is not a kokoro-mamba adapter (format {info.get('format')!r})")
    return info, load_file(str(st_path))


def load_adapter(
    model: nn.Module, path: str | Path, strict_config: SurgeryConfig | None = None
) -> SurgeryConfig:
    """Re-apply the adapter's surgery onto a freshly loaded Kokoro (or check an operated one) and load it.

    `strict_config`: when given, the adapter must have been made with exactly this config.
    """
    info, tensors = read_adapter(path)
    cfg = SurgeryConfig(**info["surgery"])
    if strict_config is not None and strict_config.to_dict() != cfg.to_dict():
        diff = {
            k: (v, strict_config.to_dict()[k])
            for k, v in cfg.to_dict().items()
            if strict_config.to_dict()[k] != v
        }
        raise AdapterMismatchError(
            f"adapter {path} was made with another surgery config: {diff} (adapter, expected)"
        )
    enc = model.get_submodule(DURATION_ENCODER_PATH)
    if isinstance(enc, MambaDurationEncoder):
        if enc.cfg.to_dict() != cfg.to_dict():
            diff = {
                k: (v, enc.cfg.to_dict()[k]) for k, v in cfg.to_dict().items() if enc.cfg.to_dict()[k] != v
            }
            raise AdapterMismatchError(
                f"adapter {path} does not fit this model's DurationEncoder: {diff} (adapter, model)"
            )
    else:
        replace_duration_encoder(model, cfg)
        enc = model.get_submodule(DURATION_ENCODER_PATH)
    expected = enc.state_dict()
    wrong = {
        k: (tuple(tensors[k].shape), tuple(v.shape))
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    }
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if wrong or missing or unexpected:
        raise AdapterMismatchError(
            f"adapter {path} does not match: wrong shapes {dict(list(wrong.items())[:4])}, "
            f"missing {missing[:4]}, unexpected {unexpected[:4]}"
        )
    enc.load_state_dict(tensors, strict=True)
    return cfg


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
