"""Speaker similarity (resemblyzer) of the fitted voice vs the nearest stock pack, leave one clip out.

    python benchmarks/fit_voice_similarity.py [--data data/librivox] [--epochs 30] [--json results/fit-voice/similarity.json]

Runs `helpers.train.voice_loo.leave_one_out` as it is (same folds, same fitting, same MCD/F0 scores), keeping
each fold's fitted pack, and adds one number per clip and system: the cosine similarity
(`helpers.compare.similarity`) between the held-out clip's words spoken with that pack (on the clip's own
durations, `compare.voice_fit.spoken`) and the recording of that clip. The reference is the held-out recording
alone: neither the fit nor its early stopping saw it, and the words are the same, so content cannot favour
either side. Paired difference fitted - nearest with a paired Student-t interval (`stats.compare_paired`).
The fitting options are voice_loo's (`--epochs`, `--lr`, `--patience`, ...).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.compare.similarity import similarity_summary, speaker_similarity
from helpers.compare.stats import compare_paired
from helpers.compare.voice_fit import spoken
from helpers.grid import SAMPLE_RATE
from helpers.train import voice_loo
from helpers.train.fit_voice import add_config_args, config_from_args


def main(argv: list[str] | None = None) -> dict:
    from helpers.kokoro.loading import load_kokoro
    from helpers.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/librivox")
    p.add_argument("--weights", default="offline-int8")
    p.add_argument("--json", default=None)
    add_config_args(p)
    args = p.parse_args(argv)
    S = Settings.from_env()
    kokoro = load_kokoro(args.weights, device="cpu", verbose=False)
    cfg = config_from_args(args)

    packs: dict[str, object] = {}  # the fold's test clip id -> its fitted pack
    fitter = voice_loo.voice_fitter

    def keeping(kokoro, cfg, start):
        fit = fitter(kokoro, cfg, start)

        def run(train, val):
            pack, info = fit(train, val)
            packs[f"fold{len(packs)}"] = pack
            return pack, info

        return run

    voice_loo.voice_fitter = keeping  # the same fitting, its packs kept
    try:
        from helpers.data.prepare import prepare_dataset

        result = voice_loo.leave_one_out(kokoro, args.data, S, cfg, voices=[], progress=True)
    finally:
        voice_loo.voice_fitter = fitter
    data = prepare_dataset(kokoro, args.data, S, progress=False, verbose=False)  # cached: the same clips
    by_id = {it.id: it for it in [*data.train, *data.dev, *data.test]}
    ref = result["reference"]
    rows = []
    for k, fold in result["folds"].iterrows():
        item = by_id[fold["test"]]
        recording = np.asarray(item.audio, dtype=np.float32)
        for system, pack in (("fitted", packs[f"fold{k}"]), (f"nearest ({ref})", kokoro.voice(ref))):
            audio = spoken(kokoro, item, pack, seed=cfg.seed).audio
            sim = float(speaker_similarity([audio], [recording], SAMPLE_RATE)[0])
            rows.append({"clip": item.id[-4:], "system": system, "similarity": sim})
    df = pd.DataFrame(rows)
    wide = df.pivot(index="clip", columns="system", values="similarity")
    nearest = f"nearest ({ref})"
    diff = compare_paired(wide[nearest], wide["fitted"], better="higher", names=(nearest, "fitted"))
    out = {
        "command": "python benchmarks/fit_voice_similarity.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "config": result["config"],
        "per_clip": json.loads(wide.reset_index().to_json(orient="records")),
        "summary": {s: similarity_summary(wide[s]) for s in wide.columns},
        "fitted_minus_nearest": dataclasses.asdict(diff),
        "mcd_per_fold": json.loads(result["per_fold"].to_json(orient="records")),
        "seconds": result["seconds"],
    }
    print(wide.round(3).to_string())
    print(json.dumps(out["summary"], indent=1), json.dumps(out["fitted_minus_nearest"], indent=1, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str) + "\n")
        print("wrote", args.json)
    return out


if __name__ == "__main__":
    main()
