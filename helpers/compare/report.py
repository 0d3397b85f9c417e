"""Summaries with n and spread, written conclusions, and result files under runs/compare/.
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


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of every metric per set and model: one row per (set, metric), columns LSTM, Mamba, Mamba - LSTM.

    A recording's own WER appears in the column 'recording' (pocketsphinx's ceiling on real speech).
    On the text set the LSTM is the reference, so its teacher-agreement cells are empty.
    """
    rows = []
    for set_name, g in df.groupby("set", sort=False):
        for col, (label, units, better) in METRICS.items():
            means = {m: g.loc[g["model"] == m, col].astype(float).mean() for m in (*MODELS, "recording")}
            if all(pd.isna(v) for v in means.values()):
                continue
            n = int(g.loc[g["model"] == "Mamba", col].notna().sum())
            rows.append(
                {
                    "set": set_name,
                    "metric": label,
                    "column": col,
                    "units": units,
                    "better": better,
                    "n": n,
                    "LSTM": means["LSTM"],
                    "Mamba": means["Mamba"],
                    "Mamba - LSTM": means["Mamba"] - means["LSTM"],
                    "recording": means["recording"],
                }
            )
    out = pd.DataFrame(rows)
    if not out.empty and out["recording"].isna().all():
        out = out.drop(columns="recording")
    return out


def conclusions(
    summary: pd.DataFrame, adapter: dict | None = None, latency: pd.DataFrame | None = None
) -> list[str]:
    """Plain-language sentences built from the numbers (nothing hard-coded): what the tables say."""

    def get(set_name, col, model):
        r = summary[(summary["set"] == set_name) & (summary["column"] == col)]
        return float(r[model].iloc[0]) if len(r) and model in r and pd.notna(r[model].iloc[0]) else None

    out = []
    meta = (adapter or {}).get("metadata", {})
    if meta.get("fixture"):
        out.append(
            "The Mamba adapter is an UNTRAINED fixture, so these numbers test the comparison pipeline, not "
            "Mamba: until a trained adapter sits under runs/, expect it to lose on teacher agreement, token "
            "boundaries and WER."
        )
    elif adapter:
        how = ", ".join(f"{k}={meta[k]}" for k in ("stage", "steps") if k in meta) or "training not recorded"
        out.append(f"The Mamba adapter {adapter.get('path')} was trained ({how}).")
    agree, tb = get("text", "dur_within1_pct", "Mamba"), get("text", "boundary_mae_ms", "Mamba")
    if agree is not None:
        out.append(
            f"On held-out sentences Mamba's durations agree with the LSTM teacher within 1 frame on {agree:.0f}% "
            f"of tokens (token edges {tb:.0f} ms apart on average); F0 RMSE against the teacher "
            f"{get('text', 'f0_rmse_hz', 'Mamba') or float('nan'):.1f} Hz, MCD against the teacher's audio "
            f"{get('text', 'mcd_db', 'Mamba') or float('nan'):.2f} dB."
        )
    if get("real", "mcd_db", "LSTM") is not None:
        out.append(
            "Against the recordings, the plain F0 RMSE and the MCD mostly measure how far the voice pack is "
            "from the reader (register, timbre), for both models alike: read the boundary error and the "
            "mean-removed F0 error first."
        )
    for set_name, what in (("real", "real recordings"), ("text", "held-out sentences")):
        for col in (
            "boundary_mae_ms",
            "dur_mae_frames",
            "f0_rmse_hz",
            "f0_shape_rmse_hz",
            "mcd_db",
            "wer_pct",
        ):
            if set_name == "text" and col != "wer_pct":
                continue
            a, b = get(set_name, col, "LSTM"), get(set_name, col, "Mamba")
            if a is None or b is None:
                continue
            label, units, better = METRICS[col]
            diff = b - a
            if abs(diff) < 1e-9:
                verdict = "the same"
            else:
                wins = (diff < 0) == (better == "lower")
                verdict = f"{'better' if wins else 'worse'} for Mamba by {abs(diff):.2f} {units}"
            extra = ""
            if col == "wer_pct" and (r := get(set_name, col, "recording")) is not None:
                extra = f"; the recordings themselves score {r:.0f}%"
            out.append(f"{what}, {label}: LSTM {a:.2f}, Mamba {b:.2f} {units} -> {verdict}{extra}.")
    if latency is not None and len(latency):
        last = latency.dropna(subset=["encoder_ratio"]).iloc[-1]
        out.append(
            f"Speed on {last['device']}: at {int(last['phonemes'])} phonemes the Mamba DurationEncoder takes "
            f"{last['encoder_ratio']:.2f}x the LSTM's time ({last['encoder_mamba_ms']:.1f} vs "
            f"{last['encoder_lstm_ms']:.1f} ms)."
        )
        syn = latency.dropna(subset=["synth_ratio"])
        if len(syn):
            s = syn.iloc[-1]
            enc = latency[latency["phonemes"] == s["phonemes"]].iloc[0]
            delta_enc = enc["encoder_mamba_ms"] - enc["encoder_lstm_ms"]
            out.append(
                f"Whole-utterance synthesis at {int(s['phonemes'])} phonemes ({s['audio_s']:.1f} s of audio, "
                f"durations shared): LSTM {s['synth_lstm_ms']:.0f} ms, Mamba {s['synth_mamba_ms']:.0f} ms "
                f"({s['synth_ratio']:.2f}x). The DurationEncoders alone differ by {delta_enc:+.1f} ms there, "
                f"{100 * delta_enc / s['synth_lstm_ms']:+.1f}% of the LSTM's whole-utterance time; a larger "
                "measured gap is timing noise (other processes, too few repeats)."
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
    adapter: dict | None = None,
    latency: pd.DataFrame | None = None,
    parameters: pd.DataFrame | None = None,
    extra: dict | None = None,
) -> dict[str, Path]:
    """Write per_utterance.csv, summary.csv (and latency.csv, parameters.csv) plus results.json.

    results.json holds the settings, the weights source and note, the adapter (path, surgery, metadata),
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
        "adapter": adapter or {},
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


