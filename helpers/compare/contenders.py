"""The models being compared: the LSTM as loaded and its twins with an adapter applied (shared frozen weights).

Everything in this room takes the contenders as one mapping, name -> model, the reference first:

    {"LSTM": lstm, "Mamba": mamba_twin, "CfC": cfc_twin}

`pick_adapter(kind, ...)` chooses the adapter of one kind of block ("mamba" or "cfc") to listen to and compare: the
user's own, then the one shipped with the workbook, then an untrained fixture (notebook 06's CfC, notebook 07).
Notebook 06 takes its Mamba from `systems.four_systems` instead: the stage-1 adapter stage 2 started from, which
`helpers.train.pick.pick_stage1` chose on the dev half and the stage-2 adapter's JSON records.
`adapter_facts(path)` reads what an adapter's JSON says about its training: the adapter it started from, its
trainable parameters and dropout.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from pathlib import Path

import torch

from helpers.transplant.adapters import (  # noqa: F401
    FIXTURE_NOTE,
    adapter_block,
    adapter_info,
    adapter_paths,
    list_adapters,
    make_fixture_adapter,
)

MODELS = ("LSTM", "Mamba", "CfC")  # the contenders' names, in display order; the first is the reference
KINDS = {"mamba": "Mamba", "cfc": "CfC"}  # adapter block kind -> contender name


def as_contenders(models) -> dict:
    """`models` as a name -> model dict of at least two (the reference first), or a TypeError saying how."""
    if not isinstance(models, Mapping) or len(models) < 2:
        raise TypeError(
            "pass the contenders as a mapping name -> model, the reference first, e.g. "
            f"{{'LSTM': lstm, 'Mamba': mamba}} (got {type(models).__name__})"
        )
    return dict(models)


LSTM_DROPOUT = 0.0  # Kokoro's DurationEncoder calls F.dropout(..., training=False): its dropout never acts


def _recorded(info: dict, key: str):
    """`key` from an adapter's JSON: top level first, then its metadata; None when neither has it."""
    value = info.get(key, info.get("metadata", {}).get(key))
    return None if value in (None, "None", "") else value


def adapter_facts(path: str | Path | None) -> dict:
    """What an adapter's JSON says about how it was trained, for the four-system table.

    {"adapter": path or None, "block", "init_adapter": the adapter training started from (``init_adapter``, else
    the older metadata key ``init``; None when it started from Kokoro itself), "trainable_params" (``trainable_params``
    when recorded, else None), "dropout" (``dropout`` when recorded, else the surgery's; a LSTM's is
    `LSTM_DROPOUT`), "adapter_params" (tensors the adapter holds)}. `path` None: Kokoro as released (nothing
    trained, no adapter).
    """
    if path is None:
        return {"adapter": None, "block": "lstm", "init_adapter": None, "trainable_params": 0,
                "dropout": LSTM_DROPOUT, "adapter_params": 0}  # fmt: skip
    info = adapter_info(path)
    block = adapter_block(info)
    dropout = _recorded(info, "dropout")
    if dropout is None:
        dropout = LSTM_DROPOUT if block == "lstm" else info.get("surgery", {}).get("dropout")
    trainable = _recorded(info, "trainable_params")
    return {
        "adapter": str(path),
        "block": block,
        "init_adapter": _recorded(info, "init_adapter") or _recorded(info, "init"),
        "trainable_params": None if trainable is None else int(trainable),
        "dropout": None if dropout is None else float(dropout),
        "adapter_params": int(info.get("parameters", 0)),
    }


def fixture_surgery(kind: str):
    """The surgery of the untrained fixture for a kind of block: the default Mamba, or the default CfC."""
    from helpers.transplant.surgery import SurgeryConfig

    return SurgeryConfig(block=kind)


def pick_adapter(
    kind: str,
    kokoro,
    runs_dir: str | Path,
    fixture: str | Path,
    seed: int = 0,
    prefer_shipped: bool = False,
):
    """(adapter path, twin of `kokoro` with it, messages): which adapter of this `kind` to compare, and why.

    `kind` is the block ("mamba" | "cfc"; an adapter's JSON records it). In order: the newest adapter of that
    kind under `runs_dir` that loads (the user's own training), then the one shipped with the workbook
    (`SHIPPED_ADAPTERS[kind]`, trained by `python -m helpers.train.recipe [--block cfc]`), then an UNTRAINED
    fixture at `fixture` (made when missing, made for other weights or another block, or no longer fitting).
    `prefer_shipped=True` puts the shipped adapter first (CI mode: notebook 05's few-step demo adapters are not
    worth comparing). Adapters that do not fit this code's surgery are skipped with a message.
    """
    from helpers.transplant.adapters import SHIPPED_ADAPTERS, AdapterMismatchError

    if kind not in KINDS:
        raise ValueError(f"unknown kind of block {kind!r}; choose one of {tuple(KINDS)}")
    name = KINDS[kind]
    messages = []
    candidates = []
    for path in list_adapters(runs_dir):
        try:
            if adapter_block(adapter_info(path)) == kind:
                candidates.append(path)
        except (OSError, ValueError):
            continue
    ship = SHIPPED_ADAPTERS[kind]
    shipped = [ship] if ship.with_name(ship.name + ".json").is_file() else []
    if not shipped:
        messages.append(f"no {name} adapter shipped yet ({ship} absent)")
    candidates = shipped + candidates if prefer_shipped else candidates + shipped
    for path in candidates:
        try:
            twin = adapter_twin(kokoro, path)
        except (AdapterMismatchError, KeyError, TypeError, ValueError) as e:
            messages.append(f"skipped {path}: {type(e).__name__}: {str(e)[:300]}")
            continue
        which = "the adapter shipped with the workbook" if path in shipped else "your newest trained adapter"
        messages.append(f"{name}: using {which}: {path}")
        return path, twin, messages
    fixture = Path(fixture)
    messages.append(f"{name}: no trained adapter loads: using an UNTRAINED fixture ({fixture})")
    try:
        info = adapter_info(fixture)
        if info["metadata"].get("weights") != getattr(kokoro, "source", "unknown"):
            raise ValueError("fixture made for other weights")
        if adapter_block(info) != kind:
            raise ValueError("fixture of another block")
        return fixture, adapter_twin(kokoro, fixture), messages
    except (OSError, ValueError, KeyError, TypeError, AdapterMismatchError):
        make_fixture_adapter(kokoro, fixture, fixture_surgery(kind), seed=seed)
        return fixture, adapter_twin(kokoro, fixture), messages


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


def _note(cfg, adapter) -> str:
    where = f"from adapter {adapter_paths(adapter)[0].with_suffix('')}"
    if isinstance(cfg, dict):  # an LSTM adapter: Kokoro's own DurationEncoder, fine-tuned (the control)
        return f"fine-tuned LSTM DurationEncoder {where}"
    return f"{KINDS[cfg.block]} DurationEncoder ({cfg.design}) {where}"


def adapter_twin(kokoro, adapter: str | Path):
    """`kokoro` (a LoadedKokoro) with the adapter's DurationEncoder (Mamba, CfC or LSTM), sharing all other weights.

    The original `kokoro` keeps its LSTM DurationEncoder as it was. An LSTM adapter (stage 2's same-recipe control)
    is loaded into a copy of that DurationEncoder, the twin's own. Same result as `load_mamba_kokoro`, without
    loading the weights a second time.
    """
    from helpers.transplant.adapters import load_adapter
    from helpers.transplant.surgery import DURATION_ENCODER_PATH

    twin = shallow_twin(kokoro.model)
    if adapter_block(adapter_info(adapter)) == "lstm":  # loaded in place: not into the module both share
        parent, _, name = DURATION_ENCODER_PATH.rpartition(".")
        twin.get_submodule(parent)._modules[name] = copy.deepcopy(kokoro.model.get_submodule(DURATION_ENCODER_PATH))
    cfg = load_adapter(twin, adapter)
    twin.eval()
    return dataclasses.replace(kokoro, model=twin, note=f"{kokoro.note} + {_note(cfg, adapter)}")


mamba_twin = adapter_twin  # its name from before the CfC: any adapter, whatever its block


def load_mamba_kokoro(
    adapter: str | Path, source: str = "auto", device: str | torch.device = "cpu", **kwargs
):
    """A freshly loaded Kokoro with the adapter's DurationEncoder (Mamba, CfC or LSTM) in place (eval mode)."""
    from helpers.kokoro.loading import load_kokoro
    from helpers.transplant.adapters import load_adapter

    kk = load_kokoro(source, device=device, verbose=False, **kwargs)
    cfg = load_adapter(kk.model, adapter)
    kk.model.eval()
    return dataclasses.replace(kk, note=f"{kk.note} + {_note(cfg, adapter)}")
