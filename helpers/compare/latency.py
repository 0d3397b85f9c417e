"""Latency of the DurationEncoder and of whole synthesis, any number of contenders interleaved per repeat,
load recorded. Contenders come as one mapping name -> model, the reference (the LSTM) first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from helpers.grid import SAMPLE_RATE, SAMPLES_PER_FRAME
from helpers.kokoro.forward import style_for, upstream_features
from helpers.kokoro.synth import as_pack

# ------------------------------------------------------------------------------------------ speed


def benchmark_ids(
    lengths: Sequence[int], text: str | None = None, phonemes: str | None = None
) -> dict[int, list[int]]:
    """Token ids (BOS + L phonemes + EOS) for each phoneme length L, cut from one long phonemized text.

    `phonemes` (repeated as needed) skips the G2P; `text` defaults to the first sentences of the corpus.
    """
    from helpers.kokoro.g2p import kokoro_vocab, phonemize
    from helpers.settings import REPO_ROOT

    if phonemes is not None:
        vocab = kokoro_vocab()
        ids = [vocab[p] for p in phonemes if p in vocab]
        ids = ids * (-(-max(lengths) // len(ids)))
        return {L: [0, *ids[:L], 0] for L in lengths}
    if text is None:
        lines = (REPO_ROOT / "data" / "text" / "sentences.txt").read_text(encoding="utf-8").splitlines()
        text = " ".join(lines[:40])
    vocab = kokoro_vocab()
    ids, need = [], max(lengths)
    for sentence in text.split(". "):
        ids += [vocab[p] for p in phonemize(sentence.strip() + ".") + " " if p in vocab]
        if len(ids) >= need:
            break
    if len(ids) < need:
        raise ValueError(f"the text gives only {len(ids)} phonemes, {need} needed")
    return {L: [0, *ids[:L], 0] for L in lengths}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_interleaved(fns, device: torch.device, repeats: int, warmup: int = 1) -> list[float]:
    """Best (minimum) wall times in ms of each fn(), timed in turn (a, b, c, a, b, c, ...) after `warmup`
    untimed calls of each. The minimum, as `timeit` recommends: other processes on a shared machine only ever
    add time, so the fastest run is the best estimate of the cost itself; interleaving makes a load spike hit
    every contender alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    _sync(device)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(max(1, repeats)):
        for fn, bucket in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            bucket.append(1000 * (time.perf_counter() - t0))
    return [float(np.min(t)) for t in times]


def _key(name: str) -> str:
    return name.lower()


def latency_models(df: pd.DataFrame) -> list[str]:
    """The contenders' keys in a `measure_latency` table ('lstm', 'mamba', 'cfc', ...), the reference first."""
    return [c[len("encoder_") : -len("_ms")] for c in df.columns if c.startswith("encoder_") and c.endswith("_ms")]


@torch.inference_mode()
def measure_latency(
    models,
    lengths: Sequence[int] = (16, 32, 64, 128, 256, 510),
    *,
    repeats: int = 5,
    synth_lengths: Sequence[int] | None = None,
    synth_repeats: int = 2,
    voice=None,
    speed: float = 1.0,
    phonemes: str | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """DurationEncoder and whole-utterance latency (best of `repeats`, ms) of every contender at each length.

    `models`: name -> model, the reference (the LSTM) first. Columns per contender, keyed by its lower-case
    name (``lstm``, ``mamba``, ``cfc``): ``encoder_<key>_ms``, and for every other contender
    ``encoder_<key>_ratio`` = its time / the reference's (> 1: slower); likewise ``synth_<key>_ms``,
    ``synth_<key>_ratio`` and ``rtf_<key>``. DurationEncoder: the module alone on the same ALBERT features
    (batch 1). Whole utterance: `synthesize_ids` (ALBERT -> ... -> decoder) with every model forced onto the
    reference's durations, so the decoder does identical work and the difference is the prosody path.
    `synth_lengths` (default: all; empty: none) limits the expensive whole-utterance runs; `speed` scales
    the shared durations. Inputs are cut from the corpus (or from `phonemes`, see `benchmark_ids`).
    ``cpu_load_1min`` records the machine's load average: on a shared machine, a load above its core count
    means other processes competed for the CPU and the times are inflated (and noisier).
    """
    from tqdm.auto import tqdm

    from helpers.compare.contenders import as_contenders
    from helpers.kokoro.forward import predict_durations, synthesize_ids
    from helpers.mamba.backend import describe_backend

    kks = as_contenders(models)
    nets = {_key(n): getattr(kk, "model", kk).eval() for n, kk in kks.items()}
    keys = list(nets)
    ref, others = nets[keys[0]], keys[1:]
    device = next(ref.parameters()).device
    synth_lengths = set(lengths if synth_lengths is None else synth_lengths)
    pack = as_pack(next(iter(kks.values())), voice)
    backend = describe_backend(device).split(":")[0]
    rows = []
    inputs = benchmark_ids(lengths, phonemes=phonemes)
    for L, ids in tqdm(inputs.items(), desc="latency", disable=not progress):
        x = torch.tensor([ids], device=device)  # (1, T)
        T = x.shape[1]
        ref_s = style_for(pack, L).to(device)
        d_en = upstream_features(ref, x, torch.zeros_like(x, dtype=torch.bool))  # (1, 512, T)
        s, lens, mask = (
            ref_s[:, 128:],
            torch.tensor([T], device=device),
            torch.zeros(1, T, dtype=torch.bool, device=device),
        )
        row = {"phonemes": L, "tokens": T, "device": str(device), "mamba_backend": backend}
        encoders = [partial(m.predictor.text_encoder, d_en, s, lens, mask) for m in nets.values()]
        for k, ms in zip(keys, _time_interleaved(encoders, device, repeats)):
            row[f"encoder_{k}_ms"] = ms
        for k in others:
            row[f"encoder_{k}_ratio"] = row[f"encoder_{k}_ms"] / row[f"encoder_{keys[0]}_ms"]
        if L in synth_lengths:
            dur = predict_durations(ref, x, ref_s, speed)[2]
            row["audio_s"] = float(dur.sum()) * SAMPLES_PER_FRAME / SAMPLE_RATE
            synths = [partial(synthesize_ids, m, ids, ref_s, durations=dur) for m in nets.values()]
            for k, ms in zip(keys, _time_interleaved(synths, device, synth_repeats)):
                row[f"synth_{k}_ms"] = ms
                row[f"rtf_{k}"] = ms / 1000 / row["audio_s"]
            for k in others:
                row[f"synth_{k}_ratio"] = row[f"synth_{k}_ms"] / row[f"synth_{keys[0]}_ms"]
        row["cpu_load_1min"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        rows.append(row)
    df = pd.DataFrame(rows)
    synth_cols = ["audio_s", *(f"synth_{k}_ms" for k in keys), *(f"synth_{k}_ratio" for k in others)]
    for col in synth_cols + [f"rtf_{k}" for k in keys]:
        if col not in df:
            df[col] = np.nan
    return df


def _state_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def parameter_table(models, adapters: Mapping[str, str | Path] | None = None) -> pd.DataFrame:
    """Parameter counts (millions) and sizes (MB) of every contender (name -> model, the reference first), in
    one table with ``<name> / <reference>`` ratios. `adapters`: name -> adapter path, for the file sizes."""
    from helpers.compare.contenders import as_contenders
    from helpers.transplant.adapters import adapter_paths
    from helpers.transplant.peft import PeftConfig, trainable_prefixes
    from helpers.transplant.surgery import DURATION_ENCODER_PATH, MambaDurationEncoder

    kks = as_contenders(models)
    count = lambda m: sum(p.numel() for p in m.parameters())
    mb = lambda n_bytes: n_bytes / 2**20
    columns = {}
    for name, kk in kks.items():
        model = getattr(kk, "model", kk)
        enc = model.get_submodule(DURATION_ENCODER_PATH)
        if isinstance(enc, MambaDurationEncoder):  # the new blocks PEFT trains
            prefixes = trainable_prefixes(model, PeftConfig())
            recurrent = sum(
                p.numel() for n, p in model.named_parameters() if any(n == q or n.startswith(q + ".") for q in prefixes)
            )  # fmt: skip
        else:  # Kokoro's own: its three BiLSTMs
            recurrent = sum(p.numel() for m in enc.modules() if isinstance(m, torch.nn.LSTM) for p in m.parameters())
        path = (adapters or {}).get(name)
        if path is not None:
            st = adapter_paths(path)[0]  # dots in the name are part of it
            file_mb = mb(st.stat().st_size) if st.exists() else float("nan")
        else:
            file_mb = mb(_state_bytes(enc)) if not isinstance(enc, MambaDurationEncoder) else float("nan")
        columns[name] = [count(enc) / 1e6, recurrent / 1e6, count(model) / 1e6, mb(_state_bytes(enc)), file_mb]
    what = [
        "DurationEncoder parameters (M)",
        "  of which recurrent: 3 BiLSTM / the new blocks PEFT trains (M)",
        "whole model parameters (M)",
        "DurationEncoder state, fp32 (MB)",
        "adapter file (MB; for the LSTM: its DurationEncoder state, same format)",
    ]
    df = pd.DataFrame({"what": what, **columns})
    ref = next(iter(kks))
    for name in list(kks)[1:]:
        df[f"{name} / {ref}"] = df[name] / df[ref]
    return df
