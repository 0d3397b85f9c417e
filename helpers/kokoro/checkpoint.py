"""Kokoro's checkpoint format, fetched from the hub and checked key by key before it is loaded.

The official `kokoro-v1_0.pth` (and the offline rebuild in helpers.kokoro.weights) is one dict::

    {"bert": state_dict, "bert_encoder": ..., "predictor": ..., "text_encoder": ..., "decoder": ...}

saved from a DataParallel model, so keys may carry a `module.` prefix. Kokoro's own loader strips it and,
when the strict load fails, retries with `strict=False`, which silently ignores any mismatch. Here the same
tolerance, said out loud: a key the model does not have (for example `bert.embeddings.position_ids`, a buffer
older transformers versions saved and newer ones no longer keep) is reported and skipped; only keys the model
needs and the file lacks stop the load.

    fetch(repo, file)        the file from the hub's cache (or the hub), with three distinct failures:
                             HubUnreachable (network / offline, not cached), HubFileMissing (the hub
                             answered, no such file), and, later, IncompatibleCheckpoint
    read_checkpoint(path)    torch.load(weights_only=True): never unpickles code; `module.` stripped
    load_components(model, components)
                             every KModel key must be present, except those matching
                             weights.ALLOWED_ABSENT_KEYS (each with its reason): they keep their init
                             value and are reported. Keys and components the model does not have are
                             skipped and reported (a warning names them). Any other missing key or
                             component, and any shape mismatch, is an IncompatibleCheckpoint that names it.

`hub_reachable` also tells scripts/colab_setup.py whether to install the offline payload.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from helpers.kokoro.weights import COMPONENTS, allowed_absent_reason

CHECKPOINT_FILE = "kokoro-v1_0.pth"
CONFIG_FILE = "config.json"


class HubError(RuntimeError):
    """The official checkpoint could not be used; the subclass says why."""


class HubUnreachable(HubError):
    """The hub did not answer (network, offline mode) and the file is not in the local cache."""


class HubFileMissing(HubError):
    """The hub (or the cache) answered, but the repository, revision or file is not there."""


class IncompatibleCheckpoint(HubError):
    """The file is there but is not Kokoro's {component: state_dict} for this model."""


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the hub's host answers a TCP connect within `timeout` (and HF_HUB_OFFLINE is not set)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        from huggingface_hub import constants

        host = urlparse(constants.ENDPOINT).hostname
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except (OSError, ImportError):
        return False


def fetch(repo: str, filename: str, local_only: bool) -> Path:
    """The local path of `filename` in `repo` (downloaded into the hub cache unless `local_only`)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        path = Path(hf_hub_download(repo, filename, local_files_only=local_only))
    except LocalEntryNotFoundError as e:  # before EntryNotFoundError: it is a subclass
        why = (
            "only the local cache was asked" if local_only else "the hub did not answer or offline mode is on"
        )
        cause = f" ({type(e.__cause__).__name__}: {e.__cause__})" if e.__cause__ else ""
        raise HubUnreachable(
            f"{filename} of {repo} is not in the local hub cache, and {why}{cause}. Connect to the network "
            "(HF_HUB_OFFLINE unset), or load the offline weights: load_kokoro('offline-int8')."
        ) from e
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as e:
        raise HubFileMissing(
            f"the hub answered, but {repo} has no {filename} ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from e
    except (HfHubHTTPError, OSError) as e:  # 5xx, connection resets, timeouts
        raise HubUnreachable(f"downloading {filename} of {repo} failed: {type(e).__name__}: {e}") from e
    if not path.is_file():
        raise HubFileMissing(f"the hub cache lists {filename} of {repo} but {path} is not a file: delete it")
    return path


def fetch_config(repo: str, local_only: bool = False) -> dict:
    """The repository's config.json as a dict (a file that is not JSON is an IncompatibleCheckpoint)."""
    path = fetch(repo, CONFIG_FILE, local_only)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IncompatibleCheckpoint(f"{path} is not a JSON config: {e}") from e


def read_checkpoint(path: str | Path) -> dict[str, dict]:
    """{component: state_dict} from a .pth, loaded weights-only, `module.` prefixes stripped."""
    import torch

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError (not weights-only), RuntimeError (not a torch file), ...
        raise IncompatibleCheckpoint(
            f"{path} cannot be read as a weights-only PyTorch checkpoint: {type(e).__name__}: {e}"
        ) from e
    if not isinstance(blob, dict) or not all(isinstance(v, dict) for v in blob.values()):
        raise IncompatibleCheckpoint(
            f"{path} is not Kokoro's {{component: state_dict}} layout (top level: {type(blob).__name__} "
            f"with keys {list(blob)[:6] if isinstance(blob, dict) else '-'})"
        )
    return {c: {k.removeprefix("module."): v for k, v in sd.items()} for c, sd in blob.items()}


@dataclass
class LoadReport:
    """What a load left out: keys the file lacks but may (kept at init, with the reason), and keys of the file
    the model does not have (skipped)."""

    absent: dict[str, str] = field(default_factory=dict)  # {model key: why it may be absent}
    skipped: list[str] = field(default_factory=list)  # file keys ('component.key') and components, unused


def check_components(reference: dict, components: dict[str, dict], source: str = "checkpoint") -> LoadReport:
    """Compare `components` with a KModel state_dict (`reference`, flat keys such as 'predictor.lstm.bias_ih_l0').

    Returns the report: the keys that are absent but allowed (weights.ALLOWED_ABSENT_KEYS), and the keys and
    components of the file the model does not have (to be skipped, as kokoro's own strict=False load does).
    Raises IncompatibleCheckpoint naming every other missing key or component and every shape mismatch.
    """
    problems = []
    missing_components = [c for c in COMPONENTS if c not in components]
    extra_components = [c for c in components if c not in COMPONENTS]
    if missing_components:
        problems.append(f"components missing: {missing_components}")
    flat = {f"{c}.{k}": v for c, sd in components.items() if c in COMPONENTS for k, v in sd.items()}
    report = LoadReport(skipped=[k for k in flat if k not in reference] + extra_components)
    missing = []
    for key in reference:
        if key in flat or key.split(".", 1)[0] in missing_components:
            continue
        reason = allowed_absent_reason(key)
        if reason is None:
            missing.append(key)
        else:
            report.absent[key] = reason
    shapes = [
        f"{k}: {tuple(flat[k].shape)} vs the model's {tuple(reference[k].shape)}"
        for k in flat
        if k in reference and tuple(flat[k].shape) != tuple(reference[k].shape)
    ]
    for what, keys in (("missing keys", missing), ("shape mismatches", shapes)):
        if keys:
            more = f" (and {len(keys) - 10} more)" if len(keys) > 10 else ""
            problems.append(f"{len(keys)} {what}: {', '.join(keys[:10])}{more}")
    if problems:
        raise IncompatibleCheckpoint(f"{source} does not fit this Kokoro model: " + "; ".join(problems))
    return report


def load_components(model, components: dict[str, dict], source: str = "checkpoint") -> LoadReport:
    """Check `components` (see check_components), then load them: allowed-absent keys keep their init value,
    keys the model does not have are skipped with a warning that names them.

    Returns the report, so callers can show it (LoadedKokoro.absent_keys, LoadedKokoro.skipped_keys).
    """
    current = model.state_dict()
    report = check_components(current, components, source)
    if report.skipped:
        more = f" (and {len(report.skipped) - 10} more)" if len(report.skipped) > 10 else ""
        warnings.warn(
            f"{source}: skipped {len(report.skipped)} entries this Kokoro model does not have: "
            f"{', '.join(report.skipped[:10])}{more}",
            stacklevel=2,
        )
    for comp in COMPONENTS:
        full = {k: v for k, v in components[comp].items() if f"{comp}.{k}" in current}
        for key in report.absent:
            c, rest = key.split(".", 1)
            if c == comp:
                full[rest] = current[key]
        getattr(model, comp).load_state_dict(full, strict=True)
    return report
