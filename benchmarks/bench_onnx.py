"""Whole-utterance latency, PyTorch vs onnxruntime (CPU), Kokoro's LSTM vs the shipped Mamba adapter, one run.

    python benchmarks/bench_onnx.py [--lengths 32,128,400] [--repeats 5] [--threads 2] [--adapter PATH]

Both models are exported with `helpers.export.onnx.export_onnx` into a temporary folder, then every
(model, runtime) pair synthesizes the same token ids (BOS + L phonemes + EOS, cut from the corpus:
`helpers.compare.latency.benchmark_ids`) with the af_heart style, interleaved per repeat; the figure is the
minimum wall time (the machine's other load only ever adds). PyTorch runs `synthesize_ids` (the workbook's
path); onnxruntime runs the exported graph (the same computation, Loop scan and real iSTFT). Both get the
same thread count. Prints a markdown table (benchmarks/README.md, "ONNX export").
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from helpers.compare.latency import _time_interleaved, benchmark_ids
from helpers.export.onnx import OnnxKokoro, export_onnx
from helpers.grid import SAMPLES_PER_FRAME
from helpers.kokoro.forward import style_for, synthesize_ids


def parity(kokoro, session: OnnxKokoro, pack, n: int) -> dict:
    """Durations identical on n held-out sentences; MCD and correlation of the audio on the first five."""
    from helpers.compare.metrics import mcd
    from helpers.kokoro.g2p import phonemize
    from helpers.kokoro.synth import predict_prosody, synthesize
    from helpers.settings import REPO_ROOT

    sentences = (REPO_ROOT / "data" / "text" / "heldout.txt").read_text().splitlines()[:n]
    same, mcds, corrs = 0, [], []
    for i, text in enumerate(sentences):
        audio, dur = session.synthesize(text, pack)
        if i < 5:
            want = synthesize(kokoro, text, voice=pack, seed=0)
            want_dur = want.durations
            mcds.append(mcd(audio, want.audio, use_dtw=False))
            corrs.append(float(np.corrcoef(audio, want.audio)[0, 1]))
        else:
            want_dur = predict_prosody(kokoro, phonemize(text), pack)["durations"]
        same += bool(np.array_equal(dur, want_dur))
    return {"n": len(sentences), "same": same, "mcd": mcds, "corr": corrs}


def main(argv: list[str] | None = None) -> None:
    from helpers.compare.contenders import adapter_twin
    from helpers.kokoro.loading import load_kokoro
    from helpers.transplant.adapters import SHIPPED_ADAPTER

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", default="32,128,400", help="phonemes per utterance, comma-separated")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--adapter", default=str(SHIPPED_ADAPTER))
    p.add_argument("--weights", default="offline-int8")
    p.add_argument("--parity", type=int, default=20, help="held-out sentences for the parity figures (0: none)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    lengths = [int(x) for x in args.lengths.split(",")]

    lstm = load_kokoro(args.weights, verbose=False)
    models = {"LSTM": lstm, "Mamba": adapter_twin(lstm, args.adapter)}
    pack = lstm.voice("af_heart")
    ids = benchmark_ids(lengths)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sessions = {k: OnnxKokoro(export_onnx(m, Path(tmp) / f"{k}.onnx"), threads=args.threads)
                    for k, m in models.items()}  # fmt: skip
        export_s = time.perf_counter() - t0
        rows = []
        for L in lengths:
            x = ids[L]
            style = style_for(pack, L)  # (1, 256)
            fns, frames = [], []
            for k, m in models.items():
                fns.append(lambda m=m, x=x, style=style: synthesize_ids(m.model, x, style, seed=0))
                fns.append(lambda k=k, x=x, style=style: sessions[k].run(x, style.numpy()))
                frames.append(int(synthesize_ids(m.model, x, style, decoder=False)["durations"].sum()))
            times = _time_interleaved(fns, torch.device("cpu"), args.repeats)
            t = dict(zip(["torch LSTM", "ORT LSTM", "torch Mamba", "ORT Mamba"], times))
            rows.append((L, np.mean(frames) * SAMPLES_PER_FRAME / 24000, t))
        parity_rows = {k: parity(m, sessions[k], pack, args.parity) for k, m in models.items()} if args.parity else {}
    for k, r in parity_rows.items():
        print(f"parity {k}: durations identical on {r['same']}/{r['n']} held-out sentences; audio (first 5): "
              f"MCD {min(r['mcd']):.2f}-{max(r['mcd']):.2f} dB, correlation {min(r['corr']):.4f}-{max(r['corr']):.4f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads "
          f"(torch and onnxruntime), load average {load:.1f} at the end; torch {torch.__version__}; "
          f"export of both models {export_s:.0f} s; minimum of {args.repeats} interleaved repeats\n")  # fmt: skip
    print("| phonemes | audio s | torch LSTM ms | ORT LSTM ms | torch Mamba ms | ORT Mamba ms | ORT/torch LSTM "
          "| ORT/torch Mamba | Mamba/LSTM torch | Mamba/LSTM ORT |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for L, secs, t in rows:
        print(f"| {L} | {secs:.1f} | {t['torch LSTM']:.0f} | {t['ORT LSTM']:.0f} | {t['torch Mamba']:.0f} | "
              f"{t['ORT Mamba']:.0f} | {t['ORT LSTM'] / t['torch LSTM']:.2f} | {t['ORT Mamba'] / t['torch Mamba']:.2f} | "
              f"{t['torch Mamba'] / t['torch LSTM']:.2f} | {t['ORT Mamba'] / t['ORT LSTM']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
