"""The models being compared: the LSTM as loaded and its twins with an adapter applied (shared frozen weights).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch

from helpers.transplant.adapters import (  # noqa: F401
    FIXTURE_NOTE,
    adapter_info,
    adapter_paths,
    list_adapters,
    make_fixture_adapter,
)

MODELS = ("LSTM", "Mamba")


def pick_mamba(kokoro, runs_dir: str | Path, fixture: str | Path, seed: int = 0, prefer_shipped: bool = False):
    """(adapter path, Mamba twin of `kokoro`, messages): which Mamba to compare, and why.

    In order: the newest adapter under `runs_dir` that loads (the user's own training), then the adapter
    shipped with the workbook (`SHIPPED_ADAPTER`, trained by `python -m helpers.train.recipe`), then an
    UNTRAINED fixture at `fixture` (made when missing, made for other weights, or no longer fitting).
    `prefer_shipped=True` puts the shipped adapter first (CI mode: notebook 05's few-step demo adapters are
    not worth comparing). Adapters that do not fit this code's surgery are skipped with a message.
    """
    from helpers.transplant.adapters import SHIPPED_ADAPTER, AdapterMismatchError

    messages = []
    candidates = list_adapters(runs_dir)
    shipped = [SHIPPED_ADAPTER] if SHIPPED_ADAPTER.with_name(SHIPPED_ADAPTER.name + ".json").is_file() else []
    candidates = shipped + candidates if prefer_shipped else candidates + shipped
    for path in candidates:
        try:
            twin = mamba_twin(kokoro, path)
        except (AdapterMismatchError, KeyError, TypeError, ValueError) as e:
            messages.append(f"skipped {path}: {type(e).__name__}: {str(e)[:300]}")
            continue
        which = "the adapter shipped with the workbook" if path in shipped else "your newest trained adapter"
        messages.append(f"using {which}: {path}")
        return path, twin, messages
    fixture = Path(fixture)
    messages.append("no trained adapter loads: using an UNTRAINED fixture")
    try:
        if adapter_info(fixture)["metadata"].get("weights") != getattr(kokoro, "source", "unknown"):
            raise ValueError("fixture made for other weights")
        return fixture, mamba_twin(kokoro, fixture), messages
    except (OSError, ValueError, KeyError, TypeError, AdapterMismatchError):
        make_fixture_adapter(kokoro, fixture, seed=seed)
        return fixture, mamba_twin(kokoro, fixture), messages


def shallow_twin(model: torch.nn.Module, path: str | None = None) -> torch.nn.Module:
    """A second KModel that shares every module with `model` except along `path` (the DurationEncoder's).

    The root and each parent on the path get their own module table, so a surgery on the twin (e.g.
    `load_adapter`) swaps the twin's DurationEncoder only; ALBERT, the rest of the predictor and the
    decoder are the same objects in both (no second copy in memory, and no deepcopy, which weight_norm
    breaks). For inference side by side; do not train one twin while using the other.
    """
    from helpers.transplant.surgery import DURATION_ENCODER_PATH

    path = path or DURATION_ENCODER_PATH
    twin = copy.copy(model)
    twin._modules = dict(model._modules)
    node = twin
    for name in path.split(".")[:-1]:
        child = copy.copy(node._modules[name])
        child._modules = dict(child._modules)
        node._modules[name] = child
        node = child
    return twin


def mamba_twin(kokoro, adapter: str | Path):
    """`kokoro` (a LoadedKokoro) with the adapter's Mamba DurationEncoder, sharing all other weights.

    The original `kokoro` keeps its LSTM DurationEncoder. Same result as `load_mamba_kokoro`, without
    loading the weights a second time.
    """
    from helpers.transplant.adapters import load_adapter

    twin = shallow_twin(kokoro.model)
    cfg = load_adapter(twin, adapter)
    twin.eval()
    note = (
        f"{kokoro.note} + Mamba DurationEncoder ({cfg.design}) from adapter {adapter_paths(adapter)[0].with_suffix('')}"
    )
    return dataclasses.replace(kokoro, model=twin, note=note)


def load_mamba_kokoro(
    adapter: str | Path, source: str = "auto", device: str | torch.device = "cpu", **kwargs
):
    """A freshly loaded Kokoro with the adapter's Mamba DurationEncoder in place (eval mode)."""
    from helpers.kokoro.loading import load_kokoro
    from helpers.transplant.adapters import load_adapter

    kk = load_kokoro(source, device=device, verbose=False, **kwargs)
    cfg = load_adapter(kk.model, adapter)
    kk.model.eval()
    note = f"{kk.note} + Mamba DurationEncoder ({cfg.design}) from adapter {adapter_paths(adapter)[0].with_suffix('')}"
    return dataclasses.replace(kk, note=note)


