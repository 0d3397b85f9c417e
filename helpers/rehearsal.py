"""The full-mode rehearsal's phases (scripts/rehearse.py): notebooks 04-06's route as five functions.

Each phase takes (kokoro, settings, args, state) and returns (computed, facts): `computed` is False when everything
came from the caches of an earlier run (prepared targets, fitted voice, finished adapters), `facts` goes into
timings.json beside the phase's wall-clock time. `state` carries what later phases need (the prepared data, the
fitted pack). Files go to `args.out`:

    prep        preparation.json, split.json                     notebook 04: prepare_recordings
    alignment   alignment.json                                   durations vs the speaker's true word edges
    voice       voice.csv, voice.json                            notebook 04: fitted_voice; vs the nearest stock pack
    stage2      stage2/<student>-metrics.csv, stage2.json        notebook 05: finetune, Mamba and LSTM control
    systems     plan.json, per_utterance.csv, table.csv,         notebook 06: four systems on the test split
                differences.csv, conclusion.txt
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data.festival import read_timing
from helpers.data.recordings import prepare_recordings
from helpers.data.truth import compare_words, summarize, word_spans


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=str))


# ---------------------------------------------------------------------------------------------- prep


def prep(kokoro, S, args, state: dict) -> tuple[bool, dict]:
    data = prepare_recordings(kokoro, S)
    state["data"] = data
    shutil.copyfile(data.split_file, args.out / "split.json")
    summary = data.summary().iloc[0].to_dict()
    facts = {k: (int(v) if isinstance(v, (np.integer, int)) else float(v)) for k, v in summary.items()}
    record = {"dataset": str(S.dataset_dir()), "cache": str(data.cache_dir), "summary": facts,
              "reference_voice": data.manifest["reference_voice"], "split_hash": data.split_hash,
              "refused": data.manifest["refused"], "failed": data.failed,
              "suspect": [{"id": r["id"], "reason": r["reason"]} for r in data.suspect.rows]}  # fmt: skip
    _write_json(args.out / "preparation.json", record)
    return data.stats.get("computed", 0) > 0, {
        "clips": facts["items"],
        "computed": facts["computed"],
        "train": facts["train"],
        "dev": facts["dev"],
        "test": facts["test"],
    }


# ----------------------------------------------------------------------------------------- alignment


def alignment_rows(data, folder: Path) -> tuple[list[dict], list[str]]:
    """Per prepared clip (every split and the suspects), its word edges against the truth (helpers.data.truth)."""
    rows, unscored = [], []
    for split in (data.train, data.dev, data.test, data.suspect):
        for tg in split:
            spans = word_spans(tg.text, tg.phonemes, tg.durations, space=True)
            cmp = compare_words(spans, read_timing(folder, tg.id)["words"]) if spans else None
            if cmp is None:
                unscored.append(tg.id)
                continue
            rows.append({"id": tg.id, "suspect": tg.suspect, "checked": bool(tg.check.get("checked")), **cmp})
    return rows, unscored


def alignment(kokoro, S, args, state: dict) -> tuple[bool, dict]:
    rows, unscored = alignment_rows(state["data"], S.dataset_dir())
    both = np.concatenate([np.concatenate([r["start_ms"], r["end_ms"]]) for r in rows])
    offset = float(np.median(both))
    table = {
        "word starts and ends": summarize(both),
        "word starts": summarize(np.concatenate([r["start_ms"] for r in rows])),
        "word ends": summarize(np.concatenate([r["end_ms"] for r in rows])),
        f"starts and ends, the median offset ({offset:+.0f} ms) removed": summarize(both - offset),
    }
    record = {"clips": len(rows), "words": int(sum(len(r["words"]) for r in rows)), "unscored": unscored,
              "median_signed_ms": offset, "table": table,
              "word_check": {"checked": sum(r["checked"] for r in rows), "suspect": sum(r["suspect"] for r in rows)}}  # fmt: skip
    _write_json(args.out / "alignment.json", record)
    for name, s in table.items():
        print(f"  {name:<50} mean {s['mean_ms']:5.1f}  median {s['median_ms']:5.1f}  p95 {s['p95_ms']:5.1f}  "
              f"<=20 {s['within_20']:4.1f}%  <=50 {s['within_50']:4.1f}%  n {s['n']}")  # fmt: skip
    return True, {"clips": len(rows)}


# --------------------------------------------------------------------------------------------- voice


def voice(kokoro, S, args, state: dict) -> tuple[bool, dict]:
    """The fitted voice (notebook 04's `fitted_voice`, budget from args) and, on every test clip, it against the
    stock pack it started from (the nearest by F0 register): MCD and F0 RMSE, paired, with Student-t intervals."""
    from tqdm.auto import tqdm

    from helpers.compare.stats import compare_paired
    from helpers.compare.voice_fit import score_pack
    from helpers.train.fit_voice import FitVoiceConfig, fitted_voice, reference_voice_of

    data = state["data"]
    cfg = FitVoiceConfig.for_mode(S.mode, epochs=args.voice_epochs, max_clips=args.voice_clips)
    cached = set((Path(S.runs_dir) / "voices").glob("*.safetensors"))
    pack, path = fitted_voice(kokoro, data, S, cfg)
    state["pack"], state["voice_path"] = pack, path
    stock = reference_voice_of(data)
    rows = []
    for tg in tqdm(list(data.test), desc="fitted vs stock voice, test clips"):
        for name, p in (("fitted", pack), (stock, stock)):
            rows.append({"id": tg.id, "voice": name, **score_pack(kokoro, tg, p, seed=S.seed)})
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "voice.csv", index=False)
    wide = {m: df.pivot(index="id", columns="voice", values=m) for m in ("mcd_db", "f0_rmse_hz")}
    compared = {
        m: compare_paired(w[stock], w["fitted"], "lower", (stock, "fitted")).to_dict()
        for m, w in wide.items()
    }
    fit = json.loads(path.with_suffix(".json").read_text())
    record = {"fitted": str(path), "start_pack": stock, "config": dataclasses.asdict(cfg), "test_clips": len(data.test),
              "fit": {k: fit.get(k) for k in ("best_epoch", "dev_loss_start", "dev_loss_best", "split_hash")},
              "history": fit.get("history"), "fitted_vs_stock_on_test": compared}  # fmt: skip
    _write_json(args.out / "voice.json", record)
    for m, c in compared.items():
        print(f"  {m}: {stock} {c['a']:.2f}, fitted {c['b']:.2f}, fitted - stock {c['diff']:+.2f} "
              f"[{c['diff_lo']:+.2f}, {c['diff_hi']:+.2f}] n={c['n']}: {c['verdict']}")  # fmt: skip
    return path not in cached, {"epochs_run": len(fit.get("history") or []) - 1, "train_clips": cfg.max_clips}


# -------------------------------------------------------------------------------------------- stage 2


def stage2(kokoro, S, args, state: dict) -> tuple[bool, dict]:
    """Notebook 05's stage 2 for the Mamba (from the shipped stage-1 adapter) and the same-recipe LSTM control."""
    import time

    from helpers.train.config import TrainConfig
    from helpers.train.stage2 import finetune, stage2_table
    from helpers.transplant.adapters import SHIPPED_ADAPTER, adapter_info

    data, pack = state["data"], state["pack"]
    cfg = TrainConfig.for_mode(S.mode, "finetune", steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                               eval_every=args.eval_every, ckpt_every=args.eval_every,
                               sample_every=args.steps)  # fmt: skip
    runs, facts, computed = {}, {}, False
    for student, init, folder in (("mamba", SHIPPED_ADAPTER, "finetune"), ("lstm", None, "finetune-lstm")):
        out = Path(S.runs_dir) / folder
        try:
            done = adapter_info(out / "adapter")["metadata"].get("steps") == cfg.steps
        except (OSError, ValueError):
            done = False
        t0 = time.perf_counter()
        runs[student] = finetune(
            kokoro, data, pack, cfg, student, init=init, out=out, voice=state["voice_path"]
        )
        facts[f"{student}_seconds"] = round(time.perf_counter() - t0, 1)
        computed |= not done
        (args.out / "stage2").mkdir(exist_ok=True)
        shutil.copyfile(runs[student].trainer.log.path, args.out / "stage2" / f"{student}-metrics.csv")
    table = stage2_table(runs["mamba"], runs["lstm"])
    table.to_csv(args.out / "stage2" / "dev_scores.csv")
    print(table.round(3).to_string())
    record = {"config": dataclasses.asdict(cfg),
              "runs": {s: {"adapter": str(r.adapter), "kept_step": r.kept_step, "start_dev": r.start_scores,
                           "kept_dev": r.kept_scores, **adapter_info(r.adapter)["metadata"]}
                       for s, r in runs.items()}}  # fmt: skip
    for r in record["runs"].values():
        r.pop("train_ids", None), r.pop("selection_ids", None)  # in split.json already
    _write_json(args.out / "stage2.json", record)
    return computed, facts


# -------------------------------------------------------------------------------------------- systems


def systems(kokoro, S, args, state: dict) -> tuple[bool, dict]:
    """Notebook 06's four systems on the test split: the plan first, then every system speaks, then the verdicts."""
    from helpers import compare as C

    data, pack = state["data"], state["pack"]
    found = C.four_systems(kokoro, S.runs_dir)
    print(found.stage1_note, *found.lines(), sep="\n  ")
    plan = C.analysis_plan([x.id for x in data.test], data.split_hash)
    _write_json(args.out / "plan.json", plan)  # declared before any system speaks
    df = C.evaluate_systems(found.models, data.test, voice=pack, seed=S.seed, progress=True, cache_dir=S.cache_dir)
    diffs = C.systems_differences(df, C.default_pairs(found.models))
    table = C.systems_table(df, diffs, found.facts)
    lines = C.verdict_lines(diffs, found.missing)
    assert C.lines_agree(lines, diffs) and set(df["id"]) == set(plan["test_ids"])
    df.to_csv(args.out / "per_utterance.csv", index=False)
    table.to_csv(args.out / "table.csv", index=False)
    diffs.to_csv(args.out / "differences.csv", index=False)
    conclusion = C.conclusion_lines(diffs, found.missing) + ["", "Every verdict:"] + lines
    (args.out / "conclusion.txt").write_text("\n".join(conclusion) + "\n")
    C.wide_table(table, missing=found.missing, facts=found.facts).to_csv(args.out / "table_wide.csv")
    print("\n".join(conclusion))
    return True, {
        "systems": list(found.models),
        "test_clips": len(data.test),
        "notes": df.attrs.get("notes", []),
    }
