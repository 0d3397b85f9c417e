"""Four systems on the same held-out recordings (notebook 06): does the architecture matter, or the extra training?

Comparing a fine-tuned Mamba with a LSTM that was never fine-tuned mixes the two. So four systems speak the same
held-out clips with the same fitted voice (helpers.train.fit_voice.fitted_voice, the one notebook 05 trained with):

    LSTM (shipped)    Kokoro as released: the reference
    LSTM (stage 2)    its LSTMs fine-tuned by notebook 05's stage-2 recipe   runs/<mode>/finetune-lstm/adapter
    Mamba (stage 1)   Mamba blocks distilled from the LSTM                  the user's newest stage-1 adapter, else
                                                                            results/distill-cpu/adapter (shipped)
    Mamba (stage 2)   that Mamba fine-tuned by the same stage-2 recipe       runs/<mode>/finetune/adapter

LSTM (stage 2) - LSTM (shipped) is what the extra training buys; Mamba (stage 2) - LSTM (stage 2) is the
architecture at equal training. A system whose adapter is absent (notebook 05 not run) is reported, not compared.

    systems = four_systems(lstm, S.runs_dir)       # Systems: models, sources, missing (name -> why)
    df = evaluate_systems(systems.models, data.val, voice=pack)   # one row per (clip, system) + "recording"
    table = systems_table(df)                      # per (metric, system): n, mean, 95% CI, paired diff vs ref
    diffs = systems_differences(df, default_pairs(systems.models))   # per (pair, metric): diff, CI, verdict
    lines = verdict_lines(diffs)                   # the written conclusion, one sentence per pair
    assert lines_agree(lines, diffs)               # ... and it says "no difference" exactly where the table does

Statistics are `helpers.compare.stats`': percentile bootstrap over utterances, and "no difference" when the
paired interval of the difference contains 0. With one held-out clip (the CI starter data) a bootstrap of one
value is that value: the interval is a point, and a nonzero difference reads "too few clips", never a win.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.compare.evaluation import METRICS, eval_items, evaluate_recordings
from helpers.compare.stats import bootstrap_ci, paired_table

SYSTEMS = ("LSTM (shipped)", "LSTM (stage 2)", "Mamba (stage 1)", "Mamba (stage 2)")  # display order
REFERENCE = SYSTEMS[0]
STAGE2 = {"LSTM (stage 2)": "finetune-lstm/adapter", "Mamba (stage 2)": "finetune/adapter"}  # under runs_dir
ARCHITECTURE = ("LSTM (stage 2)", "Mamba (stage 2)")  # the pair that holds the training equal
TABLE_METRICS = ("boundary_mae_ms", "boundary_tempo_ms", "f0_shape_rmse_hz", "mcd_db", "wer_pct", "dnsmos_ovrl")
RECORDING = "recording"  # the clips themselves: their own WER and DNSMOS beside the systems'
NO_DIFFERENCE = "no difference"  # stats.compare_paired's verdict when the paired interval contains 0
TOO_FEW = "too few clips"  # n < 2 and a nonzero difference: an interval of one value is no evidence


@dataclass
class Systems:
    """The systems that could be loaded (name -> model, in SYSTEMS order), where each came from, and why the
    others are missing."""

    models: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)  # name -> "as released" or the adapter path
    missing: dict = field(default_factory=dict)  # name -> why it is not compared

    def lines(self) -> list[str]:
        out = [f"{name}: {self.sources[name]}" for name in self.models]
        return out + [f"{name}: MISSING, {why}" for name, why in self.missing.items()]


def _json_of(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _load(lstm, path: Path):
    """(twin, None) or (None, why it did not load)."""
    from helpers.compare.contenders import mamba_twin

    try:
        return mamba_twin(lstm, path), None
    except Exception as e:  # any adapter that does not load is reported as missing, never crashes the notebook
        return None, f"{path} does not load ({type(e).__name__}: {str(e)[:200]})"


def stage1_candidates(runs_dir: str | Path, prefer_shipped: bool = False) -> list[Path]:
    """Mamba stage-1 adapters to try, in order: the newest under `runs_dir` whose metadata says stage "distill"
    (the user's own), then the one shipped with the workbook; `prefer_shipped` puts the shipped one first."""
    from helpers.transplant.adapters import SHIPPED_ADAPTER, adapter_block, adapter_info, list_adapters

    own = []
    for path in list_adapters(runs_dir):
        try:
            info = adapter_info(path)
            if adapter_block(info) == "mamba" and info.get("metadata", {}).get("stage") == "distill":
                own.append(path)
        except (OSError, ValueError, KeyError):
            continue
    shipped = [SHIPPED_ADAPTER] if _json_of(SHIPPED_ADAPTER).is_file() else []
    return shipped + own if prefer_shipped else own + shipped


def four_systems(
    lstm, runs_dir: str | Path, prefer_shipped: bool = False, stage1: list[Path] | None = None
) -> Systems:
    """The four systems of the module docstring: `lstm` (LoadedKokoro) and its twins with each adapter loaded
    (`contenders.mamba_twin`). `stage1` overrides the stage-1 candidates (default `stage1_candidates`)."""
    runs_dir = Path(runs_dir)
    out = Systems({REFERENCE: lstm}, {REFERENCE: "Kokoro-82M as released (LSTM DurationEncoder)"})
    tries = {"Mamba (stage 1)": stage1 if stage1 is not None else stage1_candidates(runs_dir, prefer_shipped)}
    tries |= {name: [runs_dir / rel] for name, rel in STAGE2.items()}
    for name in SYSTEMS[1:]:
        reasons = []
        for path in tries[name]:
            path = Path(path)
            if not _json_of(path).is_file():
                reasons.append(f"no adapter at {path}")
                continue
            twin, why = _load(lstm, path)
            if twin is not None:
                out.models[name], out.sources[name] = twin, f"adapter {path}"
                break
            reasons.append(why)
        else:
            how = "run notebook 05 (stage 2) to train it" if name in STAGE2 else "train stage 1 (notebook 05)"
            out.missing[name] = "; ".join(reasons or ["no candidate adapter"]) + f": {how}"
    out.models = {n: out.models[n] for n in SYSTEMS if n in out.models}
    return out


def evaluate_systems(
    models: dict, items, *, voice, seed: int | None = 0, asr: bool = True, dnsmos: bool = True,
    progress: bool = False,
) -> pd.DataFrame:  # fmt: skip
    """One row per (held-out clip, system) plus one per clip for the recording itself (`evaluate_recordings`):
    every system speaks with `voice` (the items' own styles are dropped, so the voice is the same for all);
    durations scored on the spoken tokens; DNSMOS overall quality for every audio. ``df.attrs``: models, notes."""
    items = [dataclasses.replace(it, style=None) for it in eval_items(items)]
    notes: list[str] = []
    rows = evaluate_recordings(models, items, voice=voice, seed=seed, asr=asr, dnsmos=dnsmos, progress=progress,
                               notes=notes)  # fmt: skip
    df = pd.DataFrame(rows)
    for col in ("set", "id", "model", *METRICS):
        if col not in df.columns:
            df[col] = np.nan
    df.attrs["models"], df.attrs["notes"] = list(models), notes
    return df


def _verdict(n: int, verdict: str) -> str:
    return verdict if n >= 2 or verdict in (NO_DIFFERENCE, "no data") else f"{TOO_FEW} (n={n})"


def default_pairs(models) -> list[tuple[str, str]]:
    """Each system against the reference, then the architecture pair (LSTM vs Mamba, both after stage 2)."""
    names = list(models)
    pairs = [(REFERENCE, b) for b in names if b != REFERENCE and REFERENCE in names]
    return pairs + ([ARCHITECTURE] if all(n in names for n in ARCHITECTURE) else [])


def systems_differences(
    df: pd.DataFrame, pairs, columns=TABLE_METRICS, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> pd.DataFrame:
    """One row per (pair (a, b), metric): n paired clips, diff = mean(b) - mean(a), its paired 95% interval
    and the verdict (`stats.paired_table` / `compare_paired`; "too few clips" when n < 2, see the docstring)."""
    cols = ["a", "b", "metric", "column", "units", "better", "n", "diff", "diff_lo", "diff_hi", "verdict"]
    rows = []
    for a, b in pairs:
        t = paired_table(df, a, b, [c for c in columns if c in df], n_boot=n_boot, level=level, seed=seed)
        for r in t.to_dict(orient="records"):
            rows.append({**{k: r[k] for k in ("metric", "column", "units", "better", "n", "diff_lo", "diff_hi")},
                         "a": a, "b": b, "diff": r[f"{b} - {a}"], "verdict": _verdict(r["n"], r["verdict"])})  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def systems_table(
    df: pd.DataFrame, reference: str = REFERENCE, columns=TABLE_METRICS, n_boot: int = 2000, level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:  # fmt: skip
    """Per (metric, system): n clips, mean, its bootstrap interval [lo, hi], and the paired difference from
    `reference` (diff, diff_lo, diff_hi, verdict; see `systems_differences`). The recording itself is a row
    where it has a value (WER, DNSMOS). `note` flags n < 2: the interval of one value is that value."""
    systems = [m for m in df.attrs.get("models") or df["model"].unique() if m != RECORDING] + [RECORDING]
    pairs = [(reference, s) for s in systems[:-1] if s != reference]
    diffs = systems_differences(df, pairs, columns, n_boot, level, seed)
    rows = []
    for col in (c for c in columns if c in df):
        label, units, better = METRICS[col]
        for s in systems:
            n = int(np.isfinite(df.loc[df["model"] == s, col].astype(float)).sum())
            if n == 0:
                continue
            mean, lo, hi = bootstrap_ci(df.loc[df["model"] == s, col], n_boot=n_boot, level=level, seed=seed)
            row = {"metric": label, "column": col, "units": units, "better": better, "system": s, "n": n,
                   "mean": mean, "lo": lo, "hi": hi, "note": "" if n >= 2 else f"n={n}: no interval (one value)"}  # fmt: skip
            d = diffs[(diffs["b"] == s) & (diffs["column"] == col)]
            if len(d):
                row |= d.iloc[0][["diff", "diff_lo", "diff_hi", "verdict"]].to_dict()
            elif s == reference:
                row["verdict"] = "reference"
            rows.append(row)
    cols = ["metric", "column", "units", "better", "system", "n", "mean", "lo", "hi", "diff", "diff_lo", "diff_hi",
            "verdict", "note"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def wide_table(table: pd.DataFrame, systems=SYSTEMS, missing: dict | None = None, digits: int = 1) -> pd.DataFrame:
    """For reading: one row per metric, one column per system (all four, a missing one marked so, then the
    recording), each cell "mean [lo, hi] n=<clips>". The verdicts are in `table` and `systems_differences`."""
    missing = missing or {}
    names = [s for s in systems if s in set(table["system"]) or s in missing] + [RECORDING]
    out = {}
    for (label, units), g in table.groupby(["metric", "units"], sort=False):
        cells = {}
        for s in names:
            r = g[g["system"] == s]
            if s in missing:
                cells[s] = "missing"
            elif len(r):
                r = r.iloc[0]
                cells[s] = f"{r['mean']:.{digits}f} [{r['lo']:.{digits}f}, {r['hi']:.{digits}f}] n={r['n']}"
            else:
                cells[s] = ""
        out[f"{label} ({units})"] = cells
    return pd.DataFrame.from_dict(out, orient="index")[names]


def verdict_lines(diffs: pd.DataFrame, missing: dict | None = None) -> list[str]:
    """The written conclusion, one sentence per pair, built from `systems_differences`: which metrics show "no
    difference" (paired 95% interval contains 0), which are better or worse, which had too few clips."""
    out = []
    for (a, b), g in diffs.groupby(["a", "b"], sort=False):
        parts = []
        nodiff = g[g["verdict"] == NO_DIFFERENCE]
        if len(nodiff):
            parts.append(f"{NO_DIFFERENCE} in " + ", ".join(nodiff["metric"]))
        for r in g[~g["verdict"].isin([NO_DIFFERENCE]) & ~g["verdict"].str.startswith(TOO_FEW)].itertuples():
            ci = f"{r.diff:+.2f} {r.units}, 95% CI [{r.diff_lo:+.2f}, {r.diff_hi:+.2f}]"
            parts.append(f"{r.verdict.removeprefix(f'{b} ')} in {r.metric} ({ci})")
        few = g[g["verdict"].str.startswith(TOO_FEW)]
        if len(few):
            vals = ", ".join(f"{r.metric} {r.diff:+.2f} {r.units}" for r in few.itertuples())
            parts.append(f"{TOO_FEW} (n={int(few['n'].max())}) to tell in {vals}")
        n = int(g["n"].max())
        out.append(f"{b} vs {a} on {n} held-out clip{'s' if n != 1 else ''}: " + "; ".join(parts) + ".")
    if len(diffs) and int(diffs["n"].max()) < 2:
        out.append("With one held-out clip no interval can be computed: these are single values, not evidence; "
                   "run in full mode (more held-out clips) for intervals.")  # fmt: skip
    out += [f"{name} is not compared: {why}." for name, why in (missing or {}).items()]
    return out


def lines_agree(lines: list[str], diffs: pd.DataFrame) -> bool:
    """True when every pair's sentence of `verdict_lines` lists a metric under "no difference" exactly when
    `diffs` says so (the conclusion checked against the table)."""
    for (a, b), g in diffs.groupby(["a", "b"], sort=False):
        line = next((ln for ln in lines if ln.startswith(f"{b} vs {a} ")), None)
        if line is None:
            return False
        said = line.split(f"{NO_DIFFERENCE} in ", 1)[1].split(";")[0] if f"{NO_DIFFERENCE} in " in line else ""
        named = {m for m in g["metric"] if m in said}
        if named != set(g.loc[g["verdict"] == NO_DIFFERENCE, "metric"]):
            return False
    return True
