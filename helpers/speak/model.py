"""The model a person speaks with: Kokoro with an adapter's DurationEncoder (or its own LSTM), and
kokoro's own `KPipeline` wired to it, offline.

    kk = speaking_model("results/distill-cpu/adapter")   # LoadedKokoro, Mamba DurationEncoder in place
    kk = speaking_model(None)                            # Kokoro as shipped: the LSTM
    pipe = kpipeline(kk)                                 # kokoro.KPipeline(lang_code="a", model=kk.model)
    for r in pipe("Three sentences. Or more. Each a chunk.", voice="af_heart"): r.audio, r.pred_dur

`KPipeline` fetches voices from the hub and lets misaki download spaCy's model; `kpipeline` gives it the
workbook's offline voices instead (a name, several names joined by commas as Kokoro averages them, or a
pack file: `helpers.kokoro.voices`) and builds its G2P with downloads blocked (`helpers.kokoro.g2p`).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

from helpers.kokoro.loading import HUB_REPO, load_kokoro
from helpers.kokoro.voices import PACK_FILE_SUFFIXES, load_voice, read_pack_file

NO_ADAPTER = ("none", "lstm", "")


def is_pack_file(voice) -> bool:
    """A voice given as a file (by its suffix), not a name."""
    return isinstance(voice, Path) or (isinstance(voice, str) and voice.lower().endswith(PACK_FILE_SUFFIXES))


def voice_pack(voice, source: str = "offline-int8") -> torch.Tensor:
    """A voice pack [510, 1, 256] from a name ('af_heart'), a pack file, or a tensor; errors name the voice."""
    if isinstance(voice, torch.Tensor):
        return voice
    if is_pack_file(voice):
        return read_pack_file(voice)
    return load_voice(voice, source)


def speaking_model(adapter: str | Path | None, source: str = "auto", device: str = "cpu", verbose: bool = False):
    """A LoadedKokoro with `adapter`'s DurationEncoder in place, or Kokoro's own LSTM for None / "none".

    A missing adapter is a FileNotFoundError naming it; a damaged or foreign one the adapter loader's
    AdapterFormatError / AdapterMismatchError (both ValueErrors), raised before Kokoro's weights load; one
    that does not fit the model, an AdapterMismatchError once they have (the model untouched).
    """
    if adapter is None or str(adapter).strip().lower() in NO_ADAPTER:
        return load_kokoro(source, device=device, verbose=verbose)
    from helpers.compare.contenders import load_mamba_kokoro
    from helpers.transplant.adapters import adapter_paths, read_adapter

    st, js = adapter_paths(adapter)
    missing = [str(f) for f in (st, js) if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"adapter {adapter}: {' and '.join(missing)} not found (an adapter is a .safetensors + .json pair; "
            "give the name without suffix, e.g. results/distill-cpu/adapter, or 'none' for Kokoro's LSTM)"
        )
    read_adapter(adapter)  # damaged or foreign files are refused before Kokoro's weights load
    return load_mamba_kokoro(adapter, source=source, device=device)


def _pipeline_class():
    from kokoro import KPipeline

    class OfflinePipeline(KPipeline):
        """KPipeline whose voices come from the workbook (names, pack files), never from the hub."""

        source = "offline-int8"

        def load_single_voice(self, voice: str):
            if voice not in self.voices:
                self.voices[voice] = voice_pack(voice.strip(), self.source)
            return self.voices[voice]

    return OfflinePipeline


def kpipeline(kokoro, lang_code: str = "a"):
    """`kokoro.KPipeline(lang_code="a", model=<kokoro's KModel>)`, offline (voices and G2P as above)."""
    from helpers.kokoro.g2p import _spacy_offline, installed_spacy_model

    if lang_code not in ("a", "b"):
        raise ValueError(f"the workbook speaks English: lang_code 'a' (American) or 'b' (British), got {lang_code!r}")
    with _spacy_offline(installed_spacy_model()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "open_text is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", r"`torch.jit.script` is deprecated", DeprecationWarning)
        pipe = _pipeline_class()(lang_code=lang_code, repo_id=HUB_REPO, model=getattr(kokoro, "model", kokoro))
    pipe.source = getattr(kokoro, "source", "offline-int8")
    return pipe


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--adapter, --weights, --device: the model options shared by the speak and export commands."""
    p.add_argument("--adapter", required=True,
                   help="an adapter (name without suffix, e.g. results/distill-cpu/adapter), or 'none' for "
                        "Kokoro's own LSTM")  # fmt: skip
    p.add_argument("--weights", default="auto", choices=("auto", "hub", "offline-int8"),
                   help="Kokoro's weights (helpers.kokoro.loading; default auto)")  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, or auto")


def model_from_args(args, device: str | None = None):
    dev = device or args.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {dev}: CUDA is not available on this machine (use --device cpu)")
    return speaking_model(args.adapter, source=args.weights, device=dev)
