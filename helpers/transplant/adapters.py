"""Adapters: what the surgery added (the new DurationEncoder's state) plus the SurgeryConfig, in one place.

    save_adapter(model, "adapter", metadata)       # adapter.safetensors + adapter.json
    load_adapter(fresh_model, "adapter")           # re-applies the surgery, then loads the blocks
    adapter_info(path) / describe_adapter(path)    # provenance without loading the model
    list_adapters(runs_dir) / find_adapter(...)    # the newest adapter under a folder

An adapter is small (~10-30 MB in fp32) and re-applies onto any freshly loaded Kokoro-82M. Loading one
made for another design or size fails with a clear error.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from helpers.settings import REPO_ROOT
from helpers.transplant.surgery import (
    DURATION_ENCODER_PATH,
    MambaDurationEncoder,
    SurgeryConfig,
    replace_duration_encoder,
)

ADAPTER_FORMAT = "kokoro-mamba-adapter/1"
# the stage-1 adapter trained by `python -m helpers.train.recipe` and shipped with the workbook (fp16)
SHIPPED_ADAPTER = REPO_ROOT / "results" / "distill-cpu" / "adapter"
FIXTURE_NOTE = "untrained fixture: random-init Mamba blocks, pretrained AdaLayerNorms; no training at all"


class AdapterMismatchError(ValueError):
    """An adapter that does not fit the model it is loaded into."""

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


def encoder_from_adapter(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The adapter's DurationEncoder as a standalone module (eval mode), without touching any model."""
    info, tensors = read_adapter(path)
    enc = MambaDurationEncoder(SurgeryConfig(**info["surgery"]))
    enc.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    return enc.to(device).eval()


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





# ------------------------------------------------------------------------------------------ adapters


def adapter_info(path: str | Path) -> dict:
    """The adapter's JSON (surgery config, parameter count, metadata), plus its file paths and size."""
    from helpers.transplant.adapters import ADAPTER_FORMAT

    path = Path(path)
    st_path, js_path = path.with_suffix(".safetensors"), path.with_suffix(".json")
    info = json.loads(js_path.read_text())
    if info.get("format") != ADAPTER_FORMAT:
        raise ValueError(f"{js_path} is not a kokoro-mamba adapter (format {info.get('format')!r})")
    info["path"] = str(st_path.with_suffix(""))
    info["file_bytes"] = st_path.stat().st_size if st_path.exists() else None
    return info


def list_adapters(runs_dir: str | Path, include_fixtures: bool = False) -> list[Path]:
    """Every adapter under `runs_dir`, newest first (by modification time of its .safetensors).

    An adapter is a ``<name>.safetensors`` with a ``<name>.json`` beside it in the kokoro-mamba adapter
    format (what `helpers.transplant.adapters.save_adapter` writes). Fixtures (metadata ``fixture: true``) are skipped
    unless `include_fixtures`. Paths come without suffix, as `load_adapter` takes them.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = []
    for st in runs_dir.rglob("*.safetensors"):
        try:
            info = adapter_info(st)
        except (OSError, ValueError, json.JSONDecodeError):
            continue
        if info.get("metadata", {}).get("fixture") and not include_fixtures:
            continue
        found.append((st.stat().st_mtime, st.with_suffix("")))
    return [p for _, p in sorted(found, reverse=True)]


def find_adapter(runs_dir: str | Path, include_fixtures: bool = False) -> Path | None:
    """The newest adapter anywhere under `runs_dir` (see `list_adapters`), or None."""
    found = list_adapters(runs_dir, include_fixtures)
    return found[0] if found else None


def make_fixture_adapter(kokoro, path: str | Path, surgery=None, seed: int = 0) -> Path:
    """Save an *untrained* Mamba DurationEncoder as an adapter (the fallback when no run has trained one).

    The surgery is applied to `kokoro`'s model, saved with `save_adapter` and undone again, so `kokoro`
    comes back unchanged. Its metadata says ``fixture: true`` and how it was made.
    """
    from helpers.transplant.adapters import save_adapter
    from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder, restore

    model = getattr(kokoro, "model", kokoro)
    torch.manual_seed(seed)
    report = replace_duration_encoder(model, surgery or SurgeryConfig())
    try:
        meta = {
            "fixture": True,
            "trained": FIXTURE_NOTE,
            "steps": 0,
            "seed": seed,
            "weights": getattr(kokoro, "source", "unknown"),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        st, _ = save_adapter(model, path, meta)
    finally:
        restore(model, report)
    return st.with_suffix("")


def describe_adapter(path: str | Path) -> str:
    """A few lines for the notebook: which adapter, what surgery, how it was trained (from its metadata)."""
    info = adapter_info(path)
    meta = info.get("metadata", {})
    sur = info.get("surgery", {})
    size = info.get("file_bytes")
    lines = [
        f"adapter: {info['path']} ({size / 2**20:.1f} MB)" if size else f"adapter: {info['path']}",
        f"surgery: design={sur.get('design')}, d_state={sur.get('d_state')}, expand={sur.get('expand')}, "
        f"{info.get('parameters', 0):,} parameters",
    ]
    if meta.get("fixture"):
        lines.append(f"training: NONE - {meta.get('trained', FIXTURE_NOTE)}")
    else:
        keys = ("stage", "steps", "weights", "voice", "init", "trained", "note")
        known = {k: meta[k] for k in keys if k in meta}
        lines.append("training: " + (", ".join(f"{k}={v}" for k, v in known.items()) or "not recorded"))
        if isinstance(meta.get("val"), dict):
            val = ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in meta["val"].items()
            )
            lines.append(f"validation scores at save time: {val}")
        cfg = meta.get("config")
        if isinstance(cfg, dict):
            keep = {k: v for k, v in cfg.items() if not isinstance(v, dict | list)}
            lines.append("training config: " + ", ".join(f"{k}={v}" for k, v in list(keep.items())[:14]))
    return "\n".join(lines)
