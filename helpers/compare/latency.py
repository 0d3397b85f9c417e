"""Latency of the DurationEncoder and of whole synthesis, models interleaved per repeat, load recorded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
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


def _time_pair(fn_a, fn_b, device: torch.device, repeats: int, warmup: int = 1) -> tuple[float, float]:
    """Best (minimum) wall times in ms of fn_a() and fn_b(), timed alternately (a, b, a, b, ...) after
    `warmup` untimed calls of each. The minimum, as `timeit` recommends: other processes on a shared machine
    only ever add time, so the fastest run is the best estimate of the cost itself; alternating makes a
    load spike hit both alike."""
    for _ in range(warmup):
        fn_a(), fn_b()
    _sync(device)
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(max(1, repeats)):
        for fn, bucket in ((fn_a, times[0]), (fn_b, times[1])):
            t0 = time.perf_counter()
            fn()
            _sync(device)
            bucket.append(1000 * (time.perf_counter() - t0))
    return float(np.min(times[0])), float(np.min(times[1]))


@torch.inference_mode()
def measure_latency(
    lstm_kokoro,
    mamba_kokoro,
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
    """DurationEncoder and whole-utterance latency (best of `repeats`, ms) for both models at each phoneme length.

    DurationEncoder: the module alone on the same ALBERT features (batch 1). Whole utterance:
    `synthesize_ids` (ALBERT -> ... -> decoder) with BOTH models forced onto the LSTM's durations, so the
    decoder does identical work and the difference is the prosody path. `synth_lengths` (default: all)
    limits the expensive whole-utterance runs; `speed` scales the shared durations. Inputs are cut from
    the corpus (or from `phonemes`, see `benchmark_ids`). Ratios are Mamba / LSTM (> 1: Mamba slower).
    ``cpu_load_1min`` records the machine's load average: on a shared machine, a load above its core count
    means other processes competed for the CPU and the times are inflated (and noisier).
    """
    from tqdm.auto import tqdm

    from helpers.kokoro.forward import predict_durations, synthesize_ids
    from helpers.mamba.backend import describe_backend

    a_model = getattr(lstm_kokoro, "model", lstm_kokoro).eval()
    b_model = getattr(mamba_kokoro, "model", mamba_kokoro).eval()
    device = next(a_model.parameters()).device
    synth_lengths = set(lengths if synth_lengths is None else synth_lengths)
    pack = as_pack(lstm_kokoro, voice)
    backend = describe_backend(device).split(":")[0]
    rows = []
    inputs = benchmark_ids(lengths, phonemes=phonemes)
    for L, ids in tqdm(inputs.items(), desc="latency", disable=not progress):
        x = torch.tensor([ids], device=device)  # (1, T)
        T = x.shape[1]
        ref_s = style_for(pack, L).to(device)
        d_en = upstream_features(a_model, x, torch.zeros_like(x, dtype=torch.bool))  # (1, 512, T)
        s, lens, mask = (
            ref_s[:, 128:],
            torch.tensor([T], device=device),
            torch.zeros(1, T, dtype=torch.bool, device=device),
        )
        row = {"phonemes": L, "tokens": T, "device": str(device), "mamba_backend": backend}
        enc_a, enc_b = a_model.predictor.text_encoder, b_model.predictor.text_encoder
        row["encoder_lstm_ms"], row["encoder_mamba_ms"] = _time_pair(
            partial(enc_a, d_en, s, lens, mask), partial(enc_b, d_en, s, lens, mask), device, repeats
        )
        row["encoder_ratio"] = row["encoder_mamba_ms"] / row["encoder_lstm_ms"]
        if L in synth_lengths:
            dur = predict_durations(a_model, x, ref_s, speed)[2]
            row["audio_s"] = float(dur.sum()) * SAMPLES_PER_FRAME / SAMPLE_RATE
            row["synth_lstm_ms"], row["synth_mamba_ms"] = _time_pair(
                partial(synthesize_ids, a_model, ids, ref_s, durations=dur),
                partial(synthesize_ids, b_model, ids, ref_s, durations=dur),
                device,
                synth_repeats,
            )
            row["synth_ratio"] = row["synth_mamba_ms"] / row["synth_lstm_ms"]
            row["rtf_lstm"] = row["synth_lstm_ms"] / 1000 / row["audio_s"]
            row["rtf_mamba"] = row["synth_mamba_ms"] / 1000 / row["audio_s"]
        row["cpu_load_1min"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        rows.append(row)
    df = pd.DataFrame(rows)
    for col in ("audio_s", "synth_lstm_ms", "synth_mamba_ms", "synth_ratio", "rtf_lstm", "rtf_mamba"):
        if col not in df:
            df[col] = np.nan
    return df



def _state_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def parameter_table(lstm_kokoro, mamba_kokoro, adapter: str | Path | None = None) -> pd.DataFrame:
    """Parameter counts (millions) and sizes (MB), LSTM vs Mamba, in one table (ratio = Mamba / LSTM)."""
    from helpers.transplant.peft import PeftConfig, trainable_prefixes
    from helpers.transplant.surgery import DURATION_ENCODER_PATH

    a_model = getattr(lstm_kokoro, "model", lstm_kokoro)
    b_model = getattr(mamba_kokoro, "model", mamba_kokoro)
    enc_a, enc_b = a_model.get_submodule(DURATION_ENCODER_PATH), b_model.get_submodule(DURATION_ENCODER_PATH)
    count = lambda m: sum(p.numel() for p in m.parameters())
    prefixes = trainable_prefixes(b_model, PeftConfig())
    trainable = sum(
        p.numel()
        for n, p in b_model.named_parameters()
        if any(n == q or n.startswith(q + ".") for q in prefixes)
    )
    recurrent_a = sum(
        p.numel() for m in enc_a.modules() if isinstance(m, torch.nn.LSTM) for p in m.parameters()
    )
    file_mb = float("nan")
    if adapter is not None:
        from helpers.transplant.adapters import adapter_paths

        st = adapter_paths(adapter)[0]  # dots in the name are part of it
        file_mb = st.stat().st_size / 2**20 if st.exists() else float("nan")
    mb = lambda n_bytes: n_bytes / 2**20
    rows = [
        ("DurationEncoder parameters (M)", count(enc_a) / 1e6, count(enc_b) / 1e6),
        (
            "  of which recurrent: 3 BiLSTM / the Mamba blocks PEFT trains (M)",
            recurrent_a / 1e6,
            trainable / 1e6,
        ),
        ("whole model parameters (M)", count(a_model) / 1e6, count(b_model) / 1e6),
        ("DurationEncoder state, fp32 (MB)", mb(_state_bytes(enc_a)), mb(_state_bytes(enc_b))),
        (
            "adapter file (MB; LSTM column: its DurationEncoder state, same format)",
            mb(_state_bytes(enc_a)),
            file_mb,
        ),
    ]
    df = pd.DataFrame(rows, columns=["what", "LSTM", "Mamba"])
    df["Mamba / LSTM"] = df["Mamba"] / df["LSTM"]
    return df
