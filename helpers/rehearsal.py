"""The full-mode rehearsal's phases (scripts/rehearse.py): notebooks 04-06's route as five functions.

Each phase takes (kokoro, settings, args, state) and returns (computed, facts): `computed` is False when everything
came from the caches of an earlier run (prepared targets, fitted voice, finished adapters), `facts` goes into
timings.json beside the phase's wall-clock time. `state` carries what later phases need (the prepared data, the
fitted pack). Files go to `args.out`:

    prep        preparation.json, split.json                     notebook 04: prepare_recordings
    alignment   alignment.json                                   durations vs the speaker's true word edges
    voice       voice.csv, voice.json                            notebook 04: fitted_voice; vs the nearest stock pack
    lr_pilot    lr_pilot.csv                                     stage 2's learning rate, chosen on dev
    stage2      stage2/<student>-metrics.csv, stage2.json        notebook 05: finetune, Mamba and LSTM control
    systems     plan.json, per_utterance.csv, table.csv,         notebook 06: four systems on the test split
                differences.csv, conclusion.txt
    anatomy     anatomy.csv, anatomy.json                        the final phone's share of the boundary errors
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.data.recordings import prepare_recordings
from helpers.data.truth import score_clips, summarize


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=str))


def _data(kokoro, S, state: dict):
    """The prepared recordings (prep's, or loaded from its cache when a run starts at a later phase)."""
    if "data" not in state:
        state["data"] = prepare_recordings(kokoro, S, progress=False, verbose=False)
    return state["data"]


def _pack(kokoro, S, args, state: dict):
    """The fitted voice (voice's, or its cached file: the same data and budget find the same file)."""
    if "pack" not in state:
        from helpers.train.fit_voice import FitVoiceConfig, fitted_voice

        cfg = FitVoiceConfig.for_mode(S.mode, epochs=args.voice_epochs, max_clips=args.voice_clips)
        state["pack"], state["voice_path"] = fitted_voice(
            kokoro, _data(kokoro, S, state), S, cfg, progress=False
        )
    return state["pack"]


def _lr(args, state: dict) -> float:
    """Stage 2's learning rate: --lr, else the pilot's choice (this run's, or the one timings.json records)."""
    if args.lr is not None:
        return args.lr
    if "lr" not in state:
        state["lr"] = json.loads((args.out / "timings.json").read_text())["lr_pilot"]["lr"]
    return state["lr"]


# ---------------------------------------------------------------------------------------------- prep


def prep(kokoro, S, args, state: dict) -> tuple[bool, dict]:
    data = prepare_recordings(kokoro, S)
    state["data"] = data
    shutil.copyfile(data.split_file, args.out / "split.json")
    summary = data.summary().iloc[0].to_dict()
    facts = {
        k: (int(v) if float(v).is_integer() else float(v)) for k, v in summary.items()
    }  # counts stay ints
    record = {"dataset": str(S.dataset_dir()), "cache": str(data.cache_dir), "summary": facts,
              "reference_voice": data.manifest["reference_voice"], "split_hash": data.split_hash,
              "refused": data.manifest["refused"], "failed": data.failed,
              "suspect": [{"id": r["id"], "reason": r["reason"]} for r in data.suspect.rows]}  # fmt: skip
    _write_json(args.out / "preparation.json", record)
    return data.stats.get("computed", 0) > 0, {
        "clips": facts["items"],
        "clips_computed": facts["computed"],
        "train": facts["train"],
        "dev": facts["dev"],
        "test": facts["test"],
    }


# ----------------------------------------------------------------------------------------- alignment


def alignment(kokoro, S, args, state: dict) -> tuple[bool, dict]:
    data = _data(kokoro, S, state)  # every prepared clip: each split and the suspects set aside
    rows, unscored = score_clips([tg for split in (data.train, data.dev, data.test, data.suspect) for tg in split],
                                 S.dataset_dir())  # fmt: skip
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

    data = _data(kokoro, S, state)
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


def stage2_config(S, args, lr: float, steps: int):
    """The stage-2 TrainConfig of the rehearsal: full mode's defaults with the budget of `args`; warm-up 10%."""
    from helpers.train.config import TrainConfig

    return TrainConfig.for_mode(S.mode, "finetune", steps=steps, batch_size=args.batch_size, lr=lr,
                                warmup_steps=max(1, steps // 10), eval_every=min(args.eval_every, steps),
                                ckpt_every=min(args.eval_every, steps), sample_every=steps)  # fmt: skip


def _students(S, root: Path):
    from helpers.transplant.adapters import SHIPPED_ADAPTER

    return (("mamba", SHIPPED_ADAPTER, root / "finetune"), ("lstm", None, root / "finetune-lstm"))


def _finished(out: Path, steps: int) -> bool:
    from helpers.transplant.adapters import adapter_info

    try:
        return adapter_info(out / "adapter")["metadata"].get("steps") == steps
    except (OSError, ValueError):
        return False


def lr_pilot(kokoro, S, args, state: dict) -> tuple[bool, dict]:
    """The stage-2 learning rate, measured before it is chosen: each candidate trains both students for
    `args.pilot_steps` steps (same schedule shape); the rate with the lowest mean dev boundary error of the two
    kept steps wins (dev clips only: the test split is not read). Skipped when --lr names one."""
    from helpers.train.selection import RULES
    from helpers.train.stage2 import finetune

    if args.lr is not None:
        state["lr"] = args.lr
        return False, {"lr": args.lr, "chosen_by": "--lr"}
    data, pack = _data(kokoro, S, state), _pack(kokoro, S, args, state)
    rows, computed = [], False
    for lr in args.pilot_lrs:
        cfg = stage2_config(S, args, lr, args.pilot_steps)
        for student, init, out in _students(S, Path(S.runs_dir) / "lr-pilot" / f"lr{lr:g}"):
            computed |= not _finished(out, cfg.steps)
            run = finetune(kokoro, data, pack, cfg, student, init=init, out=out, voice=state["voice_path"],
                           samples=False)  # fmt: skip
            rows.append({"lr": lr, "student": student, "steps": cfg.steps, "kept_step": run.kept_step,
                         **{f"start_{k}": v for k, v in run.start_scores.items()},
                         **{f"kept_{k}": v for k, v in run.kept_scores.items()}})  # fmt: skip
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "lr_pilot.csv", index=False)
    print(table.round(3).to_string(index=False))
    metric = f"kept_{RULES['finetune'][0]}"  # the score stage 2 keeps its step by
    state["lr"] = float(table.groupby("lr")[metric].mean().idxmin())
    print(f"  chosen stage-2 lr: {state['lr']:g} (lowest mean {metric} of the two students)")
    return computed, {
        "lr": state["lr"],
        "chosen_by": f"mean dev {RULES['finetune'][0]} after the pilot steps",
    }


def stage2(kokoro, S, args, state: dict) -> tuple[bool, dict]:
    """Notebook 05's stage 2 for the Mamba (from the shipped stage-1 adapter) and the same-recipe LSTM control."""
    import time

    from helpers.train.stage2 import finetune, stage2_table
    from helpers.transplant.adapters import adapter_info

    data, pack = _data(kokoro, S, state), _pack(kokoro, S, args, state)
    cfg = stage2_config(S, args, _lr(args, state), args.steps)
    runs, facts, computed = {}, {"lr": cfg.lr, "steps": cfg.steps}, False
    (args.out / "stage2").mkdir(exist_ok=True)
    for student, init, out in _students(S, Path(S.runs_dir)):
        computed |= not _finished(out, cfg.steps)
        t0 = time.perf_counter()
        runs[student] = finetune(
            kokoro, data, pack, cfg, student, init=init, out=out, voice=state["voice_path"]
        )
        facts[f"{student}_seconds"] = round(time.perf_counter() - t0, 1)
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

    data, pack = _data(kokoro, S, state), _pack(kokoro, S, args, state)
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


# -------------------------------------------------------------------------------------------- anatomy


def anatomy(kokoro, S, args, state: dict) -> tuple[bool, dict]:
    """What a change of the boundary error is made of, per system on the test clips: Kokoro holds an utterance's
    final phone long (it runs on into the silence), a recording's DTW targets often do not, and tempo
    normalisation spreads that one token's excess over every edge. So beside the two metrics of the table, the
    tempo-normalised error without the final spoken token, the final token's error (frames) and the length
    ratio (spoken tokens), with the stage-2 pairs' paired differences (anatomy.csv, anatomy.json)."""
    import torch

    from helpers import compare as C
    from helpers.compare import metrics as M
    from helpers.compare.stats import compare_paired
    from helpers.kokoro.forward import predict_durations, style_for
    from helpers.kokoro.g2p import spoken_tokens

    data, pack = _data(kokoro, S, state), _pack(kokoro, S, args, state)
    found = C.four_systems(kokoro, S.runs_dir)
    rows = []
    for name, kk in found.models.items():
        model = getattr(kk, "model", kk).eval()
        for tg in data.test:
            ids = torch.as_tensor(tg.token_ids).reshape(1, -1)  # (1, T)
            style = style_for(pack, max(len(tg.token_ids) - 2, 1)).reshape(1, -1)  # (1, 256)
            with torch.no_grad():
                _, _, dur = predict_durations(model, ids, style, 1.0)  # (T,)
            keep = spoken_tokens(tg.token_ids)
            p, r = dur.cpu().numpy()[keep], np.asarray(tg.durations)[keep]  # (T',) each
            rows.append({"id": tg.id, "model": name, "boundary_ms": M.boundary_mae_ms(p, r),
                         "boundary_tempo_ms": M.tempo_boundary_mae_ms(p, r),
                         "tempo_without_final_ms": M.tempo_boundary_mae_ms(p[:-1], r[:-1]),
                         "final_token_error_frames": float(p[-1] - r[-1]), "length_ratio": float(p.sum() / r.sum())})  # fmt: skip
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "anatomy.csv", index=False)
    cols = [
        "boundary_ms",
        "boundary_tempo_ms",
        "tempo_without_final_ms",
        "final_token_error_frames",
        "length_ratio",
    ]
    means = df.groupby("model", sort=False)[cols].mean()
    print(means.round(2).to_string())
    pairs = [p for p in C.default_pairs(found.models) if p[0] != p[1]]
    diffs = {f"{b} vs {a}": {c: compare_paired(*(df[df["model"] == m].set_index("id")[c] for m in (a, b)), "lower",
                                                (a, b)).to_dict() for c in cols[:3]} for a, b in pairs}  # fmt: skip
    _write_json(args.out / "anatomy.json", {"means": means.to_dict(orient="index"), "paired": diffs})
    return True, {"systems": list(found.models)}
