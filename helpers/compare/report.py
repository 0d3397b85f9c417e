"""Summaries with n, descriptive sentences (the verdicts are `systems`' paired tests), and result files under
runs/compare/.
"""

from __future__ import annotations

import json
import math
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from helpers.compare.contenders import MODELS
from helpers.compare.evaluation import METRICS


def _models(df: pd.DataFrame) -> list[str]:
    """The contenders in an evaluation table, the reference first (df.attrs['models'], else MODELS order)."""
    present = [m for m in df["model"].dropna().unique() if m != "recording"]
    order = df.attrs.get("models") or [m for m in MODELS if m in present] + [m for m in present if m not in MODELS]
    return [m for m in order if m in present]


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of every metric per set and model: one row per (set, metric), a column per contender (the
    reference first), then ``<model> - <reference>`` for every other one.

    A recording's own WER appears in the column 'recording' (pocketsphinx's ceiling on real speech).
    On the text set the reference is the teacher, so its teacher-agreement cells are empty.
    """
    models = _models(df)
    ref, others = models[0], models[1:]
    rows = []
    for set_name, g in df.groupby("set", sort=False):
        for col, (label, units, better) in METRICS.items():
            means = {m: g.loc[g["model"] == m, col].astype(float).mean() for m in (*models, "recording")}
            if all(pd.isna(v) for v in means.values()):
                continue
            n = max((int(g.loc[g["model"] == m, col].notna().sum()) for m in others), default=0)
            row = {"set": set_name, "metric": label, "column": col, "units": units, "better": better, "n": n}
            row.update({m: means[m] for m in models})
            row.update({f"{m} - {ref}": means[m] - means[ref] for m in others})
            row["recording"] = means["recording"]
            rows.append(row)
    out = pd.DataFrame(rows)
    if not out.empty and out["recording"].isna().all():
        out = out.drop(columns="recording")
    return out


def summary_models(summary: pd.DataFrame) -> tuple[str, list[str]]:
    """(reference, other contenders) of a summary table, read from its ``<model> - <reference>`` columns."""
    pairs = [c.split(" - ") for c in summary.columns if " - " in c]
    if not pairs:
        raise ValueError("this summary has no '<model> - <reference>' column: was it made by summarize()?")
    return pairs[0][1], [m for m, _ in pairs]


def _adapter_line(name: str, info: dict) -> str:
    meta = info.get("metadata", {})
    if meta.get("fixture"):
        return (
            f"The {name} adapter is an UNTRAINED fixture, so its numbers test the comparison pipeline, not "
            f"{name}: until a trained adapter sits under runs/ (or ships with the workbook), expect it to "
            "lose on teacher agreement, token boundaries and WER."
        )
    how = ", ".join(f"{k}={meta[k]}" for k in ("stage", "steps") if k in meta) or "training not recorded"
    return f"The {name} adapter {info.get('path')} was trained ({how})."


def conclusions(
    summary: pd.DataFrame, adapters: dict | None = None, latency: pd.DataFrame | None = None
) -> list[str]:
    """Plain-language sentences built from the numbers (nothing hard-coded): which adapters, how far each new
    model is from the teacher on held-out sentences (descriptive, with n), and the timings.

    No "better/worse" here: a difference of means is no verdict. Verdicts come from paired tests with n and
    intervals (`systems.conclusion_lines`). `adapters`: contender name -> adapter info (adapter_info)."""

    def get(set_name, col, model):
        r = summary[(summary["set"] == set_name) & (summary["column"] == col)]
        return float(r[model].iloc[0]) if len(r) and model in r and pd.notna(r[model].iloc[0]) else None

    ref, others = summary_models(summary)
    out = [_adapter_line(name, info) for name, info in (adapters or {}).items() if info]
    for m in others:
        agree, tb = get("text", "dur_within1_pct", m), get("text", "boundary_mae_ms", m)
        if agree is not None:
            r = summary[(summary["set"] == "text") & (summary["column"] == "dur_within1_pct")]
            n = int(r["n"].iloc[0]) if "n" in r else 0
            out.append(
                f"On {n} held-out sentences {m}'s durations agree with the {ref} teacher within 1 frame on {agree:.0f}% "
                f"of tokens (token edges {tb:.0f} ms apart on average); F0 RMSE against the teacher "
                f"{get('text', 'f0_rmse_hz', m) or float('nan'):.1f} Hz, MCD against the teacher's audio "
                f"{get('text', 'mcd_db', m) or float('nan'):.2f} dB."
            )
    if latency is not None and len(latency):
        out += _latency_lines(latency)
    return out


def _latency_lines(latency: pd.DataFrame) -> list[str]:
    from helpers.compare.latency import latency_models

    labels = {m.lower(): m for m in MODELS}
    keys = latency_models(latency)
    ref, others = keys[0], [k for k in keys[1:] if f"encoder_{k}_ratio" in latency]
    name = lambda k: labels.get(k, k)
    out = []
    last = latency.dropna(subset=[f"encoder_{ref}_ms"]).iloc[-1]
    times = ", ".join(
        f"{name(k)} {last[f'encoder_{k}_ms']:.1f} ms ({last[f'encoder_{k}_ratio']:.2f}x)" for k in others
    )
    out.append(
        f"Speed on {last['device']}: at {int(last['phonemes'])} phonemes the {name(ref)} DurationEncoder takes "
        f"{last[f'encoder_{ref}_ms']:.1f} ms; {times}."
    )
    syn = latency.dropna(subset=[f"synth_{ref}_ms"]) if f"synth_{ref}_ms" in latency else latency.iloc[:0]
    if len(syn):
        s = syn.iloc[-1]
        enc = latency[latency["phonemes"] == s["phonemes"]].iloc[0]
        parts = []
        for k in others:
            delta = enc[f"encoder_{k}_ms"] - enc[f"encoder_{ref}_ms"]
            parts.append(
                f"{name(k)} {s[f'synth_{k}_ms']:.0f} ms ({s[f'synth_{k}_ratio']:.2f}x; its DurationEncoder "
                f"{delta:+.1f} ms, {100 * delta / s[f'synth_{ref}_ms']:+.1f}% of the {name(ref)}'s whole time)"
            )
        out.append(
            f"Whole-utterance synthesis at {int(s['phonemes'])} phonemes ({s['audio_s']:.1f} s of audio, "
            f"durations shared): {name(ref)} {s[f'synth_{ref}_ms']:.0f} ms, " + "; ".join(parts) + ". A larger "
            "measured gap than the DurationEncoders' own is timing noise (other processes, too few repeats)."
        )
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, str | int | float | bool) or x is None:
        return x
    return str(x)


def save_results(
    df: pd.DataFrame,
    out_dir: str | Path,
    *,
    settings: dict | None = None,
    weights: dict | None = None,
    adapters: dict | None = None,
    latency: pd.DataFrame | None = None,
    parameters: pd.DataFrame | None = None,
    extra: dict | None = None,
) -> dict[str, Path]:
    """Write per_utterance.csv, summary.csv (and latency.csv, parameters.csv) plus results.json.

    results.json holds the settings, the weights source and note, the adapters (contender name -> path,
    surgery, metadata),
    the summary numbers, the notes on skipped metrics, the environment and the time.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(df)
    paths = {"per_utterance": out_dir / "per_utterance.csv", "summary": out_dir / "summary.csv"}
    df.to_csv(paths["per_utterance"], index=False)
    summary.to_csv(paths["summary"], index=False)
    for name, table in (("latency", latency), ("parameters", parameters)):
        if table is not None:
            paths[name] = out_dir / f"{name}.csv"
            table.to_csv(paths[name], index=False)
    record = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": settings or {},
        "weights": weights or {},
        "adapters": adapters or {},
        "summary": summary.to_dict(orient="records"),
        "notes": list(df.attrs.get("notes", [])),
        "latency": None if latency is None else latency.to_dict(orient="records"),
        "parameters": None if parameters is None else parameters.to_dict(orient="records"),
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
        **(extra or {}),
    }
    paths["json"] = out_dir / "results.json"
    paths["json"].write_text(json.dumps(_jsonable(record), indent=2))
    return paths


