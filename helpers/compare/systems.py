"""Four systems on the same test recordings (notebook 06): does the architecture matter, or the extra training?

Comparing a fine-tuned Mamba with a LSTM that was never fine-tuned mixes the two. So four systems speak the same
test clips (the prepared dataset's test split, which nothing else reads) with the same fitted voice:

    LSTM (shipped)    Kokoro as released: the reference
    LSTM (stage 2)    its LSTMs fine-tuned by notebook 05's stage-2 recipe   runs/<mode>/finetune-lstm/adapter
    Mamba (stage 1)   Mamba blocks distilled from the LSTM: the adapter Mamba (stage 2) started from (its JSON's
                      init_adapter); with no stage-2 Mamba, the shipped results/distill-cpu/adapter (a note says so)
    Mamba (stage 2)   that Mamba fine-tuned by the same stage-2 recipe       runs/<mode>/finetune/adapter

LSTM (stage 2) - LSTM (shipped) and Mamba (stage 2) - Mamba (stage 1) are what the extra training buys each;
Mamba (stage 2) - LSTM (stage 2) is the architecture at equal training. A system whose adapter is absent (notebook 05 not run) is reported, not compared.
Each system's trainable parameters and dropout come from its adapter's JSON (`contenders.adapter_facts`).

    systems = four_systems(lstm, S.runs_dir)       # Systems: models, sources, facts, missing, stage1_note
    plan = analysis_plan([x.id for x in data.test])  # the primary metric and the rule, declared before evaluating
    df = evaluate_systems(systems.models, data.test, voice=pack)   # one row per (clip, system) + "recording"
    diffs = systems_differences(df, default_pairs(systems.models))   # per (pair, metric): diff, CI, p, verdict
    table = systems_table(df, diffs, systems.facts)  # per (metric, system): n, mean, t-interval, its verdict
    lines = verdict_lines(diffs, systems.missing)  # one sentence per (pair, metric), with n and interval
    conclusion_lines(diffs, systems.missing)       # the Conclusion: the primary verdict first, then the rest

Statistics are `helpers.compare.stats`': Student-t intervals, the paired t-test, and no verdict below
`stats.MIN_N` clips ("too few clips" for every metric: the CI starter data has one test clip). One table is one
family: the primary comparison (`PRIMARY_METRIC` on `PRIMARY_PAIR`, declared here, before any run) is tested alone
at `stats.ALPHA`; every other verdict of the table is Holm-adjusted together at `stats.ALPHA`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.compare.evaluation import METRICS, eval_items, evaluate_recordings
from helpers.compare.stats import (
    ALPHA,
    LEVEL,
    MIN_N,
    NO_DIFFERENCE,
    TOO_FEW,
    holm,
    paired_t,
    t_interval,
    verdict,
)

SYSTEMS = ("LSTM (shipped)", "LSTM (stage 2)", "Mamba (stage 1)", "Mamba (stage 2)")  # display order
REFERENCE = SYSTEMS[0]
STAGE2 = {"LSTM (stage 2)": "finetune-lstm/adapter", "Mamba (stage 2)": "finetune/adapter"}  # under runs_dir
ARCHITECTURE = ("LSTM (stage 2)", "Mamba (stage 2)")  # the pair that holds the training equal
MAMBA_STAGE2 = ("Mamba (stage 1)", "Mamba (stage 2)")  # what stage 2 buys the Mamba
PRIMARY_PAIR = (
    ARCHITECTURE  # the primary comparison, declared before the run: the architecture at equal training
)
PRIMARY_METRIC = "boundary_tempo_ms"  # ... on the tempo-normalised token boundary error (rhythm, not tempo)
TABLE_METRICS = (
    "boundary_mae_ms",
    "boundary_tempo_ms",
    "f0_shape_rmse_hz",
    "mcd_db",
    "wer_pct",
    "dnsmos_ovrl",
    "speaker_sim",
)
RECORDING = "recording"  # the clips themselves: their own WER and DNSMOS beside the systems'


@dataclass
class Systems:
    """The systems that could be loaded (name -> model, in SYSTEMS order), where each came from, what its adapter
    says about its training, why the others are missing, and how Mamba (stage 1) was chosen."""

    models: dict = field(default_factory=dict)
    sources: dict = field(default_factory=dict)  # name -> "as released" or the adapter path
    missing: dict = field(default_factory=dict)  # name -> why it is not compared
    facts: dict = field(
        default_factory=dict
    )  # name -> contenders.adapter_facts (trainable params, dropout, ...)
    stage1_note: str = ""  # which adapter is Mamba (stage 1), and why

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
    except (
        Exception
    ) as e:  # any adapter that does not load is reported as missing, never crashes the notebook
        return None, f"{path} does not load ({type(e).__name__}: {str(e)[:200]})"


def stage1_of(runs_dir: str | Path) -> tuple[Path, str]:
    """(adapter, why): Mamba (stage 1) is the adapter Mamba (stage 2) started from, read from the stage-2
    adapter's JSON (``init_adapter``, or the older metadata key ``init``; a relative path is taken from the
    repository root). With no stage-2 Mamba adapter (or one that does not say), the adapter shipped with the
    workbook, and `why` says so: never "the newest adapter"."""
    from helpers.compare.contenders import adapter_facts
    from helpers.settings import REPO_ROOT
    from helpers.transplant.adapters import SHIPPED_ADAPTER

    stage2 = Path(runs_dir) / STAGE2["Mamba (stage 2)"]
    if not _json_of(stage2).is_file():
        return (
            SHIPPED_ADAPTER,
            f"no stage-2 Mamba adapter at {stage2}: Mamba (stage 1) is the shipped adapter",
        )
    try:
        init = adapter_facts(stage2)["init_adapter"]
    except (OSError, ValueError, KeyError) as e:
        return SHIPPED_ADAPTER, (f"the stage-2 Mamba adapter {stage2} is unreadable ({type(e).__name__}): "
                                 "Mamba (stage 1) is the shipped adapter")  # fmt: skip
    if init is None:
        return SHIPPED_ADAPTER, (f"the stage-2 Mamba adapter {stage2} does not record the adapter it started from: "
                                 "Mamba (stage 1) is the shipped adapter, which may not be its start")  # fmt: skip
    init = Path(init)
    return (
        init if init.is_absolute() else REPO_ROOT / init
    ), f"the adapter Mamba (stage 2) started from ({stage2})"


def four_systems(lstm, runs_dir: str | Path, stage1: str | Path | None = None) -> Systems:
    """The four systems of the module docstring: `lstm` (LoadedKokoro) and its twins with each adapter loaded
    (`contenders.mamba_twin`). `stage1` overrides Mamba (stage 1) (default `stage1_of(runs_dir)`)."""
    from helpers.compare.contenders import adapter_facts

    runs_dir = Path(runs_dir)
    out = Systems({REFERENCE: lstm}, {REFERENCE: "Kokoro-82M as released (LSTM DurationEncoder)"})
    out.facts[REFERENCE] = adapter_facts(None)
    if stage1 is None:
        stage1, out.stage1_note = stage1_of(runs_dir)
    else:
        out.stage1_note = f"Mamba (stage 1) given: {stage1}"
    paths = {"Mamba (stage 1)": Path(stage1)} | {name: runs_dir / rel for name, rel in STAGE2.items()}
    for name in SYSTEMS[1:]:
        path = paths[name]
        how = "run notebook 05 (stage 2) to train it" if name in STAGE2 else "train stage 1 (notebook 05)"
        if not _json_of(path).is_file():
            out.missing[name] = f"no adapter at {path}: {how}"
            continue
        twin, why = _load(lstm, path)
        if twin is None:
            out.missing[name] = f"{why}: {how}"
            continue
        out.models[name], out.sources[name], out.facts[name] = twin, f"adapter {path}", adapter_facts(path)
    out.models = {n: out.models[n] for n in SYSTEMS if n in out.models}
    return out


def analysis_plan(test_ids, split_hash: str | None = None) -> dict:
    """What the four-system comparison will test, written down before any system speaks: the primary comparison
    (pair and metric, with its exact label), the rule (alpha, minimum n, interval level, correction) and the test
    clips' ids. Notebook 06 saves it first and checks the verdicts against it afterwards."""
    return {
        "primary": {
            "a": PRIMARY_PAIR[0],
            "b": PRIMARY_PAIR[1],
            "column": PRIMARY_METRIC,
            "metric": METRICS[PRIMARY_METRIC][0],
        },  # fmt: skip
        "pairs": "each system vs LSTM (shipped), Mamba (stage 1) vs Mamba (stage 2), LSTM (stage 2) vs Mamba (stage 2)",
        "metrics": list(TABLE_METRICS),
        "test": "paired t-test on per-clip differences, two-sided",
        "alpha": ALPHA,
        "level": LEVEL,
        "min_n": MIN_N,
        "correction": "primary alone at alpha; all other verdicts of the table Holm-adjusted together at alpha",
        "test_ids": sorted(str(i) for i in test_ids),
        "split_hash": split_hash,
    }


def evaluate_systems(
    models: dict, items, *, voice, seed: int | None = 0, asr: bool = True, dnsmos: bool = True,
    similarity: bool = True, progress: bool = False, cache_dir: str | Path | None = None,
) -> pd.DataFrame:  # fmt: skip
    """One row per (held-out clip, system) plus one per clip for the recording itself (`evaluate_recordings`):
    every system speaks with `voice` (the items' own styles are dropped, so the voice is the same for all);
    durations scored on the spoken tokens; DNSMOS overall quality and speaker similarity for every audio. ``df.attrs``: models, notes.
    `cache_dir` (notebook 06: `S.cache_dir`) keeps the recordings' own scores per clip
    (`helpers.compare.recording_scores`), so a second run recomputes nothing for the recordings."""
    items = [dataclasses.replace(it, style=None) for it in eval_items(items)]
    notes: list[str] = []
    rows = evaluate_recordings(models, items, voice=voice, seed=seed, asr=asr, dnsmos=dnsmos, similarity=similarity,
                               progress=progress, notes=notes, cache_dir=cache_dir)  # fmt: skip
    df = pd.DataFrame(rows)
    for col in ("set", "id", "model", *METRICS):
        if col not in df.columns:
            df[col] = np.nan
    df.attrs["models"], df.attrs["notes"] = list(models), notes
    return df


def default_pairs(models) -> list[tuple[str, str]]:
    """Each system against the reference, what stage 2 bought the Mamba (stage 1 -> stage 2; the LSTM's is
    already its pair with the reference), then the architecture pair (LSTM vs Mamba, both after stage 2)."""
    names = list(models)
    pairs = [(REFERENCE, b) for b in names if b != REFERENCE and REFERENCE in names]
    pairs += [MAMBA_STAGE2] if all(n in names for n in MAMBA_STAGE2) else []
    return pairs + ([ARCHITECTURE] if all(n in names for n in ARCHITECTURE) else [])


def systems_differences(
    df: pd.DataFrame, pairs, columns=TABLE_METRICS, primary=(PRIMARY_PAIR, PRIMARY_METRIC), level: float = LEVEL,
    alpha: float = ALPHA, min_n: int = MIN_N,
) -> pd.DataFrame:  # fmt: skip
    """One table, one family: a row per (pair (a, b), metric column of `df`), with n paired clips, diff = mean of
    the per-clip b - a, its Student-t interval, p (paired t-test), p_adj and the verdict on p_adj.

    The `primary` (pair, column) row, declared before the run, keeps p_adj = p (one test at alpha); the p of every
    other row with at least `min_n` clips (every other verdict the table can give) is Holm-adjusted across them.
    Fewer than `min_n` paired clips (none included): "too few clips (n=k)", whatever the numbers."""
    cols = ["a", "b", "metric", "column", "units", "better", "primary", "n", "diff", "diff_lo", "diff_hi", "p",
            "p_adj", "verdict"]  # fmt: skip
    rows = []
    for a, b in pairs:
        for col in (c for c in columns if c in df):
            label, units, better = METRICS[col]
            g = df[df["model"].isin((a, b))]
            wide = g.pivot_table(index="id", columns="model", values=col, aggfunc="first").reindex(
                columns=[a, b]
            )
            n, diff, lo, hi, p = paired_t(wide[a], wide[b], level)
            rows.append({"a": a, "b": b, "metric": label, "column": col, "units": units, "better": better,
                         "primary": ((a, b), col) == (tuple(primary[0]), primary[1]), "n": n, "diff": diff,
                         "diff_lo": lo, "diff_hi": hi, "p": p})  # fmt: skip
    out = pd.DataFrame(rows, columns=cols)
    if out.empty:
        return out
    out["primary"] = out["primary"].astype(bool)
    rest = ~out["primary"] & (out["n"] >= min_n)  # the Holm family: every verdict the table can give, but one
    out["p_adj"] = np.where(out["primary"], out["p"], np.nan)
    out.loc[rest, "p_adj"] = holm(out.loc[rest, "p"].to_numpy())
    out["verdict"] = [verdict(r.n, r.diff, r.p_adj, r.better, r.b, alpha, min_n) for r in out.itertuples()]
    return out


def systems_table(
    df: pd.DataFrame, diffs: pd.DataFrame | None = None, facts: dict | None = None, reference: str = REFERENCE,
    columns=TABLE_METRICS, level: float = LEVEL,
) -> pd.DataFrame:  # fmt: skip
    """Per (metric, system): n clips, mean and its Student-t interval [lo, hi] (NaN with fewer than 2 clips), the
    system's trainable parameters and dropout (`facts`: Systems.facts), and its paired difference from `reference`
    with the verdict, taken from `diffs` (default: `systems_differences` over `default_pairs`: one family, so
    the verdicts here are the ones of the differences table). The recording itself is a row where it has a value
    (WER, DNSMOS)."""
    systems = [m for m in df.attrs.get("models") or df["model"].unique() if m != RECORDING] + [RECORDING]
    if diffs is None:
        diffs = systems_differences(df, default_pairs(systems[:-1]), columns, level=level)
    facts = facts or {}
    rows = []
    for col in (c for c in columns if c in df):
        label, units, better = METRICS[col]
        for s in systems:
            mean, lo, hi = t_interval(df.loc[df["model"] == s, col], level)
            n = int(np.isfinite(df.loc[df["model"] == s, col].astype(float)).sum())
            if n == 0:
                continue
            f = facts.get(s, {})
            row = {"metric": label, "column": col, "units": units, "better": better, "system": s, "n": n,
                   "mean": mean, "lo": lo, "hi": hi, "trainable_params": f.get("trainable_params"),
                   "dropout": f.get("dropout"), "note": "" if n >= 2 else f"n={n}: no interval"}  # fmt: skip
            d = diffs[(diffs["a"] == reference) & (diffs["b"] == s) & (diffs["column"] == col)]
            if len(d):
                row |= d.iloc[0][["diff", "diff_lo", "diff_hi", "p_adj", "verdict"]].to_dict()
            elif s == reference:
                row["verdict"] = "reference"
            rows.append(row)
    cols = ["metric", "column", "units", "better", "system", "n", "mean", "lo", "hi", "trainable_params", "dropout",
            "diff", "diff_lo", "diff_hi", "p_adj", "verdict", "note"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def _num(x, digits: int) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def wide_table(
    table: pd.DataFrame, systems=SYSTEMS, missing: dict | None = None, facts: dict | None = None, digits: int = 1,
) -> pd.DataFrame:  # fmt: skip
    """For reading: one row per metric, one column per system (all four, a missing one marked so, then the
    recording), each cell "mean [lo, hi] n=<clips>"; `facts` (Systems.facts) adds the rows "trainable parameters"
    and "dropout" on top. The verdicts are in `systems_differences`."""
    missing, facts = missing or {}, facts or {}
    names = [s for s in systems if s in set(table["system"]) or s in missing] + [RECORDING]
    out = {}
    if facts:

        def fact(s, key, fmt):
            v = facts.get(s, {}).get(key)
            return (
                "missing"
                if s in missing
                else ""
                if s == RECORDING
                else "not recorded"
                if v is None
                else fmt(v)
            )

        out["trainable parameters"] = {s: fact(s, "trainable_params", lambda v: f"{v:,}") for s in names}
        out["dropout (training)"] = {s: fact(s, "dropout", lambda v: f"{v:g}") for s in names}
    for (label, units), g in table.groupby(["metric", "units"], sort=False):
        cells = {}
        for s in names:
            r = g[g["system"] == s]
            if s in missing:
                cells[s] = "missing"
            elif len(r):
                r = r.iloc[0]
                cells[s] = (
                    f"{_num(r['mean'], digits)} [{_num(r['lo'], digits)}, {_num(r['hi'], digits)}] n={r['n']}"
                )
            else:
                cells[s] = ""
        out[f"{label} ({units})"] = cells
    return pd.DataFrame.from_dict(out, orient="index")[names]


def _line_head(a: str, b: str, metric: str, primary: bool) -> str:
    return f"{b} vs {a} | {metric}{' [primary]' if primary else ''}: "


def verdict_lines(diffs: pd.DataFrame, missing: dict | None = None) -> list[str]:
    """The written verdicts, one line per row of `systems_differences`, each with its n, the mean difference, its
    95% interval and the p-value the verdict used, e.g. "Mamba (stage 2) vs LSTM (stage 2) | token boundary error,
    tempo-normalised [primary]: no difference shown (n=50; -1.20 ms, 95% CI [-4.10, +1.70]; p=0.41)". Then a
    line when no verdict could be given, and one per missing system."""
    out = []
    for r in diffs.itertuples():
        if r.verdict.startswith(TOO_FEW):
            what = (
                "no clip" if r.n == 0 else f"{r.diff:+.2f} {r.units} on {r.n} clip{'s' if r.n != 1 else ''}"
            )
            tail = f"{what}: no evidence either way"
        else:
            which = "p" if r.primary else "Holm-adjusted p"
            tail = f"n={r.n}; {r.diff:+.2f} {r.units}, 95% CI [{r.diff_lo:+.2f}, {r.diff_hi:+.2f}]; {which}={r.p_adj:.2g}"
        out.append(_line_head(r.a, r.b, r.metric, r.primary) + f"{r.verdict} ({tail})")
    if len(diffs) and diffs["verdict"].str.startswith(TOO_FEW).all():
        out.append(f"Fewer than {MIN_N} test clips: no verdict on any metric. Run in full mode (a larger dataset, "
                   "its test split) for verdicts.")  # fmt: skip
    out += [f"{name} is not compared: {why}." for name, why in (missing or {}).items()]
    return out


def lines_agree(lines: list[str], diffs: pd.DataFrame) -> bool:
    """True when `lines` hold exactly one verdict line per row of `diffs`, for that pair and that metric's exact
    label (a label that merely contains another, "token boundary error" in "token boundary error,
    tempo-normalised", is another metric), saying that row's verdict, and no line for a (pair, metric) the table
    does not have."""
    said = {}
    for ln in lines:
        pair, sep, rest = ln.partition(" | ")
        if not sep or ": " not in rest:
            continue
        label, verdict_text = rest.split(": ", 1)
        key = (pair, label.removesuffix(" [primary]"))
        if key in said:
            return False
        said[key] = verdict_text
    want = {(f"{r.b} vs {r.a}", r.metric): r.verdict for r in diffs.itertuples()}
    if set(said) != set(want):
        return False
    return all(said[k] == v or said[k].startswith(f"{v} (") for k, v in want.items())


def conclusion_lines(diffs: pd.DataFrame, missing: dict | None = None) -> list[str]:
    """The notebook's Conclusion, from the paired verdicts only (never from means): the primary comparison first
    (or why it could not be made), then the other verdicts counted and the better/worse ones named, each with n
    and its interval."""
    missing = missing or {}
    label = METRICS[PRIMARY_METRIC][0]
    prim = diffs[diffs["primary"]] if len(diffs) else diffs
    if len(prim):
        r = prim.iloc[0]
        line = verdict_lines(prim)[0].split(" | ", 1)[1]
        out = [f"Primary question (declared before the run): {r['b']} vs {r['a']}, {line}"]
    else:
        why = (
            "; ".join(f"{n}: {missing[n]}" for n in PRIMARY_PAIR if n in missing)
            or "the pair was not evaluated"
        )
        out = [f"Primary question ({PRIMARY_PAIR[1]} vs {PRIMARY_PAIR[0]}, {label}): not answered, {why}."]
    rest = diffs[~diffs["primary"]] if len(diffs) else diffs
    if len(rest):
        kinds = rest["verdict"].map(lambda v: TOO_FEW if v.startswith(TOO_FEW) else v.rsplit(" ", 1)[-1]
                                    if v.endswith((" better", " worse")) else v)  # fmt: skip
        parts = ", ".join(f"{v} {k}" for k, v in kinds.value_counts().items())
        out.append(f"Other comparisons ({len(rest)} verdicts, Holm-adjusted together): {parts}.")
        shown = rest[~rest["verdict"].str.startswith(TOO_FEW) & (rest["verdict"] != NO_DIFFERENCE)]
        out += [f"  {ln}" for ln in verdict_lines(shown)]
    if len(diffs) and diffs["verdict"].str.startswith(TOO_FEW).all():
        out.append(f"n = {int(diffs['n'].max())} test clip(s), fewer than {MIN_N}: no verdict on any metric; "
                   "the means above are not evidence either way.")  # fmt: skip
    return out
