"""Inference latency, LSTM vs Mamba vs CfC DurationEncoder: the module alone and whole-utterance synthesis.

    python benchmarks/bench_latency.py                              # CPU (or CUDA when present), all lengths
    python benchmarks/bench_latency.py --lengths 16,128,510 --synth-lengths "" --repeats 5   # encoders only
    python benchmarks/bench_latency.py --adapter runs/distill/adapter --device cuda

Prints two tables: parameter counts and sizes (one column per contender, ratios to the LSTM), then the
best-of-N latency per phoneme length with the ratios (contender / LSTM; > 1 means slower) side by side. Batch 1,
inference mode, contenders interleaved. Whole-utterance runs force every model onto the LSTM's durations so the
decoder does the same work. Each new contender is its adapter (--adapter, --cfc-adapter), else the one shipped
with the workbook, else an untrained surgery of the recipe's design (helpers.train.recipe DESIGN / CFC_DESIGN):
latency does not depend on training. Results also go to --out (CSV + JSON) when given.
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
        "--synth-lengths", type=_ints, default=None, help="lengths for whole synthesis (default all; '' none)"
    )
    p.add_argument("--repeats", type=int, default=5, help="timed runs per DurationEncoder point (best of)")
    p.add_argument("--synth-repeats", type=int, default=2, help="timed runs per whole-synthesis point")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--weights", default="auto", help="auto | hub | offline-int8 | random")
    p.add_argument("--adapter", default=None, help="Mamba adapter (default: shipped, else untrained DESIGN)")
    p.add_argument("--cfc-adapter", default=None, help="CfC adapter (default: shipped, else untrained CFC_DESIGN)")
    p.add_argument("--contenders", default="lstm,mamba,cfc", help="which, the LSTM first: e.g. lstm,cfc")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=None, help="folder for latency.csv, parameters.csv, latency.json")
    args = p.parse_args(argv)

    import pandas as pd
    import torch

    from helpers.compare import parameter_table
    from helpers.compare.contenders import KINDS, adapter_twin
    from helpers.compare.latency import measure_latency
    from helpers.kokoro.loading import load_kokoro
    from helpers.mamba import describe_backend
    from helpers.train.recipe import CFC_DESIGN, DESIGN
    from helpers.transplant.adapters import SHIPPED_ADAPTERS, adapter_paths, make_fixture_adapter

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    lstm = load_kokoro(args.weights, device=device, verbose=False)
    print(f"weights: {lstm.note}")
    wanted = [k.strip() for k in args.contenders.split(",") if k.strip()]
    models, adapters = {"LSTM": lstm}, {}
    given = {"mamba": args.adapter, "cfc": args.cfc_adapter}
    untrained = {"mamba": DESIGN, "cfc": CFC_DESIGN}
    for kind, name in KINDS.items():
        if kind not in wanted:
            continue
        path, how = given[kind], "given"
        if path is None and adapter_paths(SHIPPED_ADAPTERS[kind])[1].is_file():
            path, how = SHIPPED_ADAPTERS[kind], "shipped"
        if path is None:
            path = make_fixture_adapter(lstm, Path(tempfile.mkdtemp()) / "adapter", untrained[kind])
            how = "untrained surgery of the recipe's design: speed only"
        adapters[name], models[name] = path, adapter_twin(lstm, path)
        print(f"{name} adapter: {path} ({how})")
    print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"Mamba backend: {describe_backend(device)}\n")

    params = parameter_table(models, adapters)
    with pd.option_context(
        "display.width", 200, "display.max_colwidth", 70, "display.float_format", "{:,.2f}".format
    ):
        print(params.to_string(index=False))
    print()

    lat = measure_latency(
        models,
        args.lengths,
        repeats=args.repeats,
        synth_lengths=args.synth_lengths,
        synth_repeats=args.synth_repeats,
        progress=False,
    )
    keys = [n.lower() for n in models]
    cols = {"phonemes": "phonemes"}
    for what, label in (("encoder", "enc"), ("synth", "synth")):
        if what == "synth" and lat["audio_s"].isna().all():
            continue
        if what == "synth":
            cols["audio_s"] = "audio s"
        for k, n in zip(keys, models):
            cols[f"{what}_{k}_ms"] = f"{label} {n} ms"
        for k, n in zip(keys[1:], list(models)[1:]):
            cols[f"{what}_{k}_ratio"] = f"{label} {n}/LSTM"
    cols["cpu_load_1min"] = "load"
    table = lat[list(cols)].rename(columns=cols)
    with pd.option_context("display.width", 200, "display.float_format", "{:,.2f}".format):
        print(table.to_string(index=False, na_rep="-"))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        lat.to_csv(out / "latency.csv", index=False)
        params.to_csv(out / "parameters.csv", index=False)
        meta = {
            "weights": lstm.note,
            "adapters": {n: str(p) for n, p in adapters.items()},
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
