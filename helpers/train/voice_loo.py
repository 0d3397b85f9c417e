"""Leave-one-clip-out evaluation of `fit_voice` on one speaker: the fitted voice vs the stock packs.

helpers.compare.voice_fit holds the scoring and the statistics (compare must not import train); this module
gives it `fit_voice` as the fitter and adds the command:

    python -m helpers.train.voice_loo --data data/librivox --json results/fit-voice/results.json
    result = leave_one_out(kokoro, "data/librivox", S, FitVoiceConfig(lr=0.01))
    result["per_fold"], result["summary"]      # pandas tables (see compare.voice_fit.summarize)

Any small folder of (wav, txt) pairs, or an LJSpeech-style folder, works (helpers.data.readers.read_dataset);
it is prepared first (cached), and every usable clip (train, dev and test of the preparation) joins the folds: each
fold has its own test clip, its own early-stopping (dev) clip and the rest to fit on (compare.voice_fit.loo_folds).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from helpers.argtypes import name_list, new_file_path
from helpers.compare.voice_fit import leave_one_out_table, loo_folds, summarize
from helpers.kokoro.voices import ENGLISH_VOICES
from helpers.train.fit_voice import (
    FitVoiceConfig,
    add_config_args,
    config_from_args,
    fit_voice,
    reference_voice_of,
)


def voice_fitter(kokoro, cfg: FitVoiceConfig, start: str):
    """fit(train, dev) -> (pack, info) for compare.voice_fit: fit_voice from `start`, with its history summed up."""

    def fit(train: list, dev: list):
        history: list[dict] = []
        pack = fit_voice(kokoro, (train, dev), cfg, start=start, history=history, progress=False)
        best = min(history, key=lambda r: r["dev_loss"])
        info = {"epochs_run": len(history) - 1, "best_epoch": int(best["epoch"]),
                "dev_loss_start": history[0]["dev_loss"], "dev_loss_best": best["dev_loss"]}  # fmt: skip
        return pack, info

    return fit


def leave_one_out(
    kokoro, data_folder, settings, cfg: FitVoiceConfig | None = None, voices=ENGLISH_VOICES, progress: bool = True
) -> dict:
    """Prepare `data_folder` (cached), then one fold per usable clip: fit on the others, score on it.

    Returns compare.voice_fit.summarize's dict plus "scores" (one row per clip and system), "folds",
    "reference" (the nearest stock pack, fit_voice's start), "config" and "seconds" (the whole run).
    """
    from helpers.data.prepare import prepare_dataset

    t0 = time.perf_counter()
    cfg = cfg or FitVoiceConfig()
    data = prepare_dataset(kokoro, data_folder, settings, progress=progress, verbose=progress)
    items = sorted([*data.train, *data.dev, *data.test], key=lambda it: it.id)
    loo_folds([it.id for it in items])  # fewer than 3 usable clips: a clear error before any fitting
    reference = reference_voice_of(data)
    scores, folds = leave_one_out_table(kokoro, items, voice_fitter(kokoro, cfg, reference), reference, voices,
                                        seed=cfg.seed, progress=progress)  # fmt: skip
    out = summarize(scores, folds, reference, seed=cfg.seed)
    return {**out, "scores": scores, "folds": folds, "reference": reference, "config": dataclasses.asdict(cfg),
            "seconds": time.perf_counter() - t0}  # fmt: skip


def to_json(result: dict, data_folder) -> dict:
    """The result as plain JSON (tables as lists of records), with the machine it ran on."""
    frames = {k: json.loads(v.to_json(orient="records")) for k, v in result.items() if hasattr(v, "to_json")}
    frames["stock_means"] = json.loads(result["stock_means"].reset_index().to_json(orient="records"))
    return {"data": str(data_folder), "reference": result["reference"], "best_stock": result["best_stock"],
            "config": result["config"], "seconds": result["seconds"], **frames,
            "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__}}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    from helpers.kokoro.loading import load_kokoro
    from helpers.settings import Settings

    p = argparse.ArgumentParser(prog="python -m helpers.train.voice_loo", description=__doc__.split("\n")[0])
    p.add_argument("--data", default="data/librivox", help="a folder of (wav, txt) pairs or metadata.csv + wavs/")
    p.add_argument("--json", default=None, type=new_file_path, help="write the tables here")
    p.add_argument("--weights", default="auto", help="auto | hub | offline-int8")
    p.add_argument("--device", default=None)
    p.add_argument("--voices", type=name_list, default=list(ENGLISH_VOICES), help="stock packs to score, comma-separated")
    add_config_args(p)
    args = p.parse_args(argv)
    S = Settings.from_env()
    kokoro = load_kokoro(args.weights, device=args.device or S.device)
    cfg = config_from_args(args)
    result = leave_one_out(kokoro, args.data, S, cfg, voices=args.voices)
    print(f"nearest stock: {result['reference']}; best stock (lowest mean MCD, an oracle): {result['best_stock']}")
    with pd.option_context("display.width", 220, "display.max_columns", 30, "display.precision", 2):
        for name in ("per_fold", "summary", "stock_means"):
            print(f"\n{result[name].to_string(index=name == 'stock_means')}")
    print(f"{len(result['folds'])} folds in {result['seconds']:.0f} s; fit {result['folds']['fit_s'].mean():.0f} s "
          f"per fold on average ({torch.get_num_threads()} torch threads)")  # fmt: skip
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(to_json(result, args.data), indent=1) + "\n")
        print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
