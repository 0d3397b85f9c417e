"""Adapters: what the surgery added (the new DurationEncoder's state) plus the SurgeryConfig, in one place.

    save_adapter(model, "adapter", metadata)       # adapter.safetensors + adapter.json
    load_adapter(fresh_model, "adapter")           # re-applies the surgery, then loads the blocks
    adapter_info(path) / describe_adapter(path)    # provenance without loading the model
    list_adapters(runs_dir) / find_adapter(...)    # the newest adapter under a folder

An adapter is small (~10-30 MB in fp32) and re-applies onto any freshly loaded Kokoro-82M.

An un-operated model's adapter holds Kokoro's own DurationEncoder (its fine-tuned BiLSTMs and AdaLayerNorms, fp32):
its JSON records ``surgery: {"block": "lstm", ...}`` (`adapter_block` -> "lstm"), and `load_adapter` loads it in
place into a freshly loaded Kokoro's DurationEncoder. That is how the same-recipe LSTM control of stage 2 is kept.

Names are used as given: "stage1.lr1e-3" is `stage1.lr1e-3.safetensors` + `stage1.lr1e-3.json` (a
trailing ".safetensors" or ".json" is accepted and dropped). Saving never replaces an existing adapter
unless `overwrite=True`. Loading checks everything (files, JSON, format version, surgery config, tensor
names and shapes) *before* the model is touched, so a refused adapter leaves the model as it was. Every
error names the file: `AdapterFormatError` for a file that cannot be read, `AdapterMismatchError` for
an adapter that does not fit.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from helpers.outputs import unique_tmp
from helpers.settings import REPO_ROOT
from helpers.transplant.surgery import (
    DURATION_ENCODER_PATH,
    LSTM_BLOCK,
    MambaDurationEncoder,
    SurgeryConfig,
    encoder_design,
    is_lstm_encoder,
    lstm_encoder,
    replace_duration_encoder,
)

ADAPTER_FORMAT = "kokoro-mamba-adapter/1"
# the stage-1 adapters trained by `python -m helpers.train.recipe` and shipped with the workbook (fp16), per
# block kind; the CfC one exists once its run has been shipped (pick_adapter falls back until then)
SHIPPED_ADAPTERS = {
    "mamba": REPO_ROOT / "results" / "distill-cpu" / "adapter",
    "cfc": REPO_ROOT / "results" / "distill-cfc-cpu" / "adapter",
}
SHIPPED_ADAPTER = SHIPPED_ADAPTERS["mamba"]
FIXTURE_NOTE = "untrained fixture: random-init blocks, pretrained AdaLayerNorms; no training at all"


class AdapterMismatchError(ValueError):
    """An adapter that does not fit the model it is loaded into."""


class AdapterFormatError(ValueError):
    """An adapter file that cannot be read (damaged, empty, not JSON, another program's, a newer version)."""


def adapter_paths(path: str | Path) -> tuple[Path, Path]:
    """(<name>.safetensors, <name>.json) for an adapter name; dots in the name are kept as they are."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The MambaDurationEncoder's full state (blocks, norms, projection): what the surgery added; on an
    un-operated model, Kokoro's own DurationEncoder (BiLSTMs and AdaLayerNorms) in fp32."""
    enc = model.get_submodule(DURATION_ENCODER_PATH)
    if is_lstm_encoder(enc):
        return {k: v.detach().cpu().float().contiguous() for k, v in enc.state_dict().items()}
    if not isinstance(enc, MambaDurationEncoder):
        raise TypeError("this model has no MambaDurationEncoder (nor Kokoro's own DurationEncoder) to save")
    return {k: v.detach().cpu().contiguous() for k, v in enc.state_dict().items()}


def save_adapter(
    model: nn.Module, path: str | Path, metadata: dict | None = None, overwrite: bool = False
) -> tuple[Path, Path]:
    """Write <path>.safetensors (tensors) and <path>.json (surgery config, shapes, metadata).

    An existing adapter of that name raises FileExistsError unless `overwrite=True`.
    """
    from safetensors.torch import save_file

    st_path, js_path = adapter_paths(path)
    existing = [f for f in (st_path, js_path) if f.exists()]
    if existing and not overwrite:
        raise FileExistsError(
            f"adapter {existing[0]} already exists: choose another name, or pass overwrite=True to replace it"
        )
    st_path.parent.mkdir(parents=True, exist_ok=True)
    enc = model.get_submodule(DURATION_ENCODER_PATH)
    tensors = adapter_state_dict(model)
    info = {
        "format": ADAPTER_FORMAT,
        "target": DURATION_ENCODER_PATH,
        "surgery": encoder_design(enc),  # a SurgeryConfig, or {"block": "lstm", ...}
        "shapes": {k: list(v.shape) for k, v in tensors.items()},
        "parameters": int(sum(v.numel() for v in tensors.values())),
        "metadata": metadata or {},
    }
    tmp_st, tmp_js = unique_tmp(st_path), unique_tmp(js_path)  # names of their own: two runs never share one
    try:
        save_file(tensors, str(tmp_st))
        tmp_js.write_text(json.dumps(info, indent=2))
    except BaseException:  # a full disk or an interrupt: no partial file stays behind
        tmp_st.unlink(missing_ok=True)
        tmp_js.unlink(missing_ok=True)
        raise
    tmp_st.replace(st_path)  # both written before either is replaced
    tmp_js.replace(js_path)
    return st_path, js_path


def read_adapter_json(path: str | Path) -> dict:
    """The adapter's JSON, checked: readable, a kokoro-mamba adapter, a format version this code reads."""
    _, js_path = adapter_paths(path)
    if not js_path.exists():
        raise FileNotFoundError(f"adapter file missing: {js_path}")
    try:
        info = json.loads(js_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise AdapterFormatError(f"{js_path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except (UnicodeDecodeError, OSError) as e:
        raise AdapterFormatError(f"{js_path}: cannot be read ({type(e).__name__}: {e})") from e
    fmt = info.get("format") if isinstance(info, dict) else None
    if isinstance(fmt, str) and fmt.startswith("kokoro-mamba-adapter/") and fmt != ADAPTER_FORMAT:
        raise AdapterFormatError(
            f"{js_path}: adapter format {fmt!r} is from another version of this workbook (this one reads "
            f"{ADAPTER_FORMAT!r}): update the workbook, or load it with the version that wrote it"
        )
    if fmt != ADAPTER_FORMAT:
        raise AdapterMismatchError(f"{js_path} is not a kokoro-mamba adapter (format {fmt!r})")
    return info


def adapter_block(info: dict) -> str:
    """The kind of block an adapter's JSON records ("mamba" | "cfc" | "lstm"); adapters older than the CfC are Mamba."""
    return (info.get("surgery") or {}).get("block", "mamba")


def adapter_surgery(info: dict, js_path: Path) -> SurgeryConfig:
    """The SurgeryConfig recorded in an adapter's JSON; keys this version does not know are named."""
    sur = info.get("surgery")
    if not isinstance(sur, dict):
        raise AdapterFormatError(f"{js_path}: no 'surgery' section")
    known = {f.name for f in dataclasses.fields(SurgeryConfig)}
    unknown = sorted(set(sur) - known)
    if unknown:
        raise AdapterFormatError(
            f"{js_path}: surgery settings {unknown} are unknown to this version of the workbook (a newer "
            f"version wrote this adapter?); it knows {sorted(known)}"
        )
    try:
        return SurgeryConfig(**sur)
    except (TypeError, ValueError) as e:
        raise AdapterFormatError(f"{js_path}: invalid surgery settings {sur}: {e}") from e


def read_adapter(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(info, tensors) of an adapter, with clear errors (naming the file) for missing or foreign files."""
    from safetensors.torch import load_file

    st_path, js_path = adapter_paths(path)
    for f in (st_path, js_path):
        if not f.exists():
            raise FileNotFoundError(f"adapter file missing: {f}")
    info = read_adapter_json(path)
    try:
        tensors = load_file(str(st_path))
    except Exception as e:  # SafetensorError (truncated, empty, not safetensors), OSError
        raise AdapterFormatError(
            f"{st_path}: not a readable safetensors file ({type(e).__name__}: {e}); damaged or incomplete copy?"
        ) from e
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:  # it would load, and fail much later with an unrelated error (negative repeats)
        raise AdapterFormatError(
            f"{st_path}: {len(bad)} tensor(s) hold NaN or infinite values ({', '.join(bad[:3])}): a diverged or "
            "damaged adapter; use an earlier checkpoint's adapter or train again"
        )
    return info, tensors


def _check_fits(path, expected: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> None:
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


def encoder_from_adapter(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The adapter's DurationEncoder as a standalone module (eval mode), without touching any model."""
    info, tensors = read_adapter(path)
    if adapter_block(info) == LSTM_BLOCK:
        enc = lstm_encoder(info["surgery"])
    else:
        enc = MambaDurationEncoder(adapter_surgery(info, adapter_paths(path)[1]))
    _check_fits(path, enc.state_dict(), tensors)
    enc.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    return enc.to(device).eval()


def _diff(a: dict, b: dict) -> dict:
    return {k: (v, b.get(k)) for k, v in a.items() if b.get(k) != v}


def _load_lstm(model: nn.Module, path, info: dict, tensors: dict[str, torch.Tensor]) -> dict:
    """An LSTM adapter into the model's own DurationEncoder, in place (a transplanted one is refused)."""
    enc = model.get_submodule(DURATION_ENCODER_PATH)
    if not is_lstm_encoder(enc):
        raise AdapterMismatchError(
            f"adapter {path} holds Kokoro's own (LSTM) DurationEncoder; this model's is a {type(enc).__name__}: "
            "load it into a freshly loaded, un-operated Kokoro"
        )
    _check_fits(path, enc.state_dict(), tensors)
    enc.load_state_dict(tensors, strict=True)  # copied into the model's tensors (their dtype and device)
    return info["surgery"]


def load_adapter(
    model: nn.Module, path: str | Path, strict_config: SurgeryConfig | None = None
) -> SurgeryConfig | dict:
    """Re-apply the adapter's surgery onto a freshly loaded Kokoro (or check an operated one) and load it.

    `strict_config`: when given, the adapter must have been made with exactly this config. Everything is
    checked before the model changes: a refused adapter leaves `model` untouched. An LSTM adapter (the
    same-recipe control) is loaded in place into the model's own DurationEncoder; its design dict is returned.
    """
    info, tensors = read_adapter(path)
    if adapter_block(info) == LSTM_BLOCK:
        if strict_config is not None:
            raise AdapterMismatchError(f"adapter {path} holds an LSTM DurationEncoder, not a {strict_config.block} one")
        return _load_lstm(model, path, info, tensors)
    cfg = adapter_surgery(info, adapter_paths(path)[1])
    if strict_config is not None and strict_config.to_dict() != cfg.to_dict():
        raise AdapterMismatchError(
            f"adapter {path} was made with another surgery config: "
            f"{_diff(cfg.to_dict(), strict_config.to_dict())} (adapter, expected)"
        )
    enc = model.get_submodule(DURATION_ENCODER_PATH)
    if isinstance(enc, MambaDurationEncoder):
        if enc.cfg.to_dict() != cfg.to_dict():
            raise AdapterMismatchError(
                f"adapter {path} does not fit this model's DurationEncoder: "
                f"{_diff(cfg.to_dict(), enc.cfg.to_dict())} (adapter, model)"
            )
        _check_fits(path, enc.state_dict(), tensors)
    else:
        with torch.device("meta"):  # shapes only: no memory, no draw from the global RNG
            expected = MambaDurationEncoder(cfg).state_dict()
        _check_fits(path, expected, tensors)  # before the surgery: a refused adapter changes nothing
        replace_duration_encoder(model, cfg)
        enc = model.get_submodule(DURATION_ENCODER_PATH)
    enc.load_state_dict(tensors, strict=True)
    return cfg


# ------------------------------------------------------------------------------------------ adapters


def adapter_info(path: str | Path) -> dict:
    """The adapter's JSON (surgery config, parameter count, metadata), plus its file paths and size."""
    st_path, _ = adapter_paths(path)
    info = read_adapter_json(path)
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
    """Save an *untrained* DurationEncoder (`surgery`, default Mamba) as an adapter (the fallback when no run
    has trained one).

    The surgery is applied to `kokoro`'s model, saved with `save_adapter` and undone again, so `kokoro`
    comes back unchanged. Its metadata says ``fixture: true`` and how it was made.
    """
    from helpers.transplant.surgery import restore

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
        st, _ = save_adapter(model, path, meta, overwrite=True)  # the fixture is ours to remake
    finally:
        restore(model, report)
    return st.with_suffix("")


def describe_adapter(path: str | Path) -> str:
    """A few lines for the notebook: which adapter, what surgery, how it was trained (from its metadata)."""
    info = adapter_info(path)
    meta = info.get("metadata", {})
    sur = info.get("surgery", {})
    size = info.get("file_bytes")
    if adapter_block(info) == LSTM_BLOCK:
        knobs = f"block=lstm (Kokoro's own DurationEncoder, fine-tuned), n_layers={sur.get('n_layers')}"
    elif adapter_block(info) == "cfc":
        knobs = (
            f"block=cfc, backbone={sur.get('cfc_backbone_units')}x{sur.get('cfc_backbone_layers')}, "
            f"mode={sur.get('cfc_mode')}, timespan={sur.get('cfc_timespan')}"
        )
    else:
        knobs = f"d_state={sur.get('d_state')}, expand={sur.get('expand')}"
    lines = [
        f"adapter: {info['path']} ({size / 2**20:.1f} MB)" if size else f"adapter: {info['path']}",
        f"surgery: design={sur.get('design', 'original')}, {knobs}, {info.get('parameters', 0):,} parameters",
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
        if meta.get("best_step") is not None:  # held-out checkpoint selection (helpers.train.selection)
            best = ", ".join(f"{k}={v:.3g}" for k, v in (meta.get("best_scores") or {}).items())
            lines.append(f"kept: step {meta.get('kept_step')} of {meta.get('steps')}; best by {meta.get('selected_by')}: "
                         f"step {meta['best_step']} ({best})")  # fmt: skip
        cfg = meta.get("config")
        if isinstance(cfg, dict):
            keep = {k: v for k, v in cfg.items() if not isinstance(v, dict | list)}
            lines.append("training config: " + ", ".join(f"{k}={v}" for k, v in list(keep.items())[:14]))
    return "\n".join(lines)
