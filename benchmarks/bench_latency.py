"""Inference latency, LSTM vs Mamba DurationEncoder: the module alone and whole-utterance synthesis.

    python benchmarks/bench_latency.py                              # CPU (or CUDA when present), all lengths
    python benchmarks/bench_latency.py --lengths 16,64,256 --synth-lengths 16,64 --repeats 3
    python benchmarks/bench_latency.py --adapter runs/distill/adapter --device cuda

Prints two tables: parameter counts and sizes (LSTM | Mamba | ratio), then the best-of-N latency per phoneme length
with the ratios (Mamba / LSTM; > 1 means Mamba is slower) side by side. Batch 1, inference mode.
Whole-utterance runs force both models onto the LSTM's durations so the decoder does the same work.
Without --adapter the Mamba side is an untrained surgery: latency does not depend on training.
Results also go to --out (CSV + JSON) when given.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ALL_LENGTHS = (16, 32, 64, 128, 256, 510)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=_ints, default=list(ALL_LENGTHS), help="phoneme lengths, e.g. 16,64,510")
    p.add_argument(
        "--synth-lengths", type=_ints, default=None, help="lengths for whole synthesis (default all)"
    )
    p.add_argument("--repeats", type=int, default=5, help="timed runs per DurationEncoder point (best of)")
    p.add_argument("--synth-repeats", type=int, default=2, help="timed runs per whole-synthesis point")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--weights", default="auto", help="auto | hub | offline-int8 | random")
    p.add_argument("--adapter", default=None, help="adapter path (default: an untrained surgery)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=None, help="folder for latency.csv, parameters.csv, latency.json")
    args = p.parse_args(argv)

    import pandas as pd
    import torch

    from helpers.compare import parameter_table
    from helpers.compare.contenders import mamba_twin
    from helpers.compare.latency import measure_latency
    from helpers.kokoro.loading import load_kokoro
    from helpers.mamba import describe_backend
    from helpers.transplant.adapters import make_fixture_adapter

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    lstm = load_kokoro(args.weights, device=device, verbose=False)
    adapter = args.adapter or make_fixture_adapter(lstm, Path(tempfile.mkdtemp()) / "adapter")
    mamba = mamba_twin(lstm, adapter)
    print(f"weights: {lstm.note}")
    print(f"adapter: {adapter}{'' if args.adapter else ' (untrained surgery: speed only)'}")
    print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"Mamba backend: {describe_backend(device)}\n")

    params = parameter_table(lstm, mamba, adapter)
    with pd.option_context(
        "display.width", 160, "display.max_colwidth", 70, "display.float_format", "{:,.2f}".format
    ):
        print(params.to_string(index=False))
    print()

    lat = measure_latency(
        lstm,
        mamba,
        args.lengths,
        repeats=args.repeats,
        synth_lengths=args.synth_lengths,
        synth_repeats=args.synth_repeats,
        progress=False,
    )
    cols = {
        "phonemes": "phonemes",
        "encoder_lstm_ms": "enc LSTM ms",
        "encoder_mamba_ms": "enc Mamba ms",
        "encoder_ratio": "enc ratio",
        "audio_s": "audio s",
        "synth_lstm_ms": "synth LSTM ms",
        "synth_mamba_ms": "synth Mamba ms",
        "synth_ratio": "synth ratio",
        "rtf_lstm": "RTF LSTM",
        "rtf_mamba": "RTF Mamba",
        "cpu_load_1min": "load",
    }
    table = lat[list(cols)].rename(columns=cols)
    with pd.option_context("display.width", 160, "display.float_format", "{:,.2f}".format):
        print(table.to_string(index=False, na_rep="-"))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        lat.to_csv(out / "latency.csv", index=False)
        params.to_csv(out / "parameters.csv", index=False)
        meta = {
            "weights": lstm.note,
            "adapter": str(adapter),
            "device": device,
            "backend": describe_backend(device),
        }
        (out / "latency.json").write_text(
            json.dumps({**meta, "latency": lat.to_dict(orient="records")}, indent=2, default=str)
        )
        print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
