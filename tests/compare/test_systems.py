"""Notebook 06's four-system comparison: the tempo-normalised boundary error, spoken-token durations on real
recordings, the summary's n and intervals, the "no difference" rule, and missing systems reported."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.compare import metrics as M
from helpers.compare import systems as SY
from helpers.compare.evaluation import EvalItem, evaluate_recordings
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

SMALL = SurgeryConfig(d_state=4, expand=1)


# ---------------------------------------------------------------------------------- tempo-normalised


def test_tempo_normalised_error_ignores_a_uniform_tempo_change():
    ref = np.array([4, 6, 2, 8, 10, 4])
    for pred in (ref // 2, ref * 2, ref * 3):  # the same rhythm, faster or slower
        assert M.tempo_boundary_mae_ms(pred, ref) == pytest.approx(0.0, abs=1e-9)
        assert M.boundary_mae_ms(pred, ref) > 0  # the plain error sees the tempo
    reordered = ref[[1, 0, 3, 2, 5, 4]]  # same total, another rhythm
    assert M.tempo_boundary_mae_ms(reordered, ref) > 0
    assert M.tempo_boundary_mae_ms(reordered * 2, ref) == pytest.approx(M.tempo_boundary_mae_ms(reordered, ref))
    assert np.isnan(M.tempo_boundary_mae_ms([3], [5]))  # one token: no inner edge


# -------------------------------------------------------------------------- real-set durations: spoken only


@pytest.fixture(autouse=True)
def fast_random_models(monkeypatch):
    import helpers.kokoro.forward as forward

    monkeypatch.setattr(forward, "MAX_SPEED", 12.0)


def test_bos_and_eos_durations_do_not_count_on_real_recordings(kokoro_small_random):
    from helpers.kokoro.synth import synthesize

    model = kokoro_small_random.model.eval()
    pack = torch.randn(510, 1, 256, generator=torch.Generator().manual_seed(0))
    phon = "həlˈO."  # tokens: BOS h ə l ˈ O . EOS; BOS, '.' and EOS are edge silences
    syn = synthesize(model, phonemes=phon, voice=pack, speed=12.0, seed=3)
    base = np.asarray(syn.durations).copy()
    edges = base.copy()
    edges[[0, -2, -1]] += [9, 5, 13]  # longer leading/trailing silences in "the recording"
    inner = base.copy()
    inner[2] += 3  # a spoken token longer: this must count

    def metrics(durations):
        item = EvalItem("r", "hello", syn.audio, phon, durations)
        kw = dict(voice=pack, speed=12.0, seed=3, asr=False)
        row = [r for r in evaluate_recordings({"LSTM": model}, [item], **kw) if r["model"] == "LSTM"][0]
        return {k: row[k] for k in ("dur_mae_frames", "boundary_mae_ms", "boundary_tempo_ms")}

    same = metrics(base)
    assert same == pytest.approx({"dur_mae_frames": 0.0, "boundary_mae_ms": 0.0, "boundary_tempo_ms": 0.0})
    assert metrics(edges) == pytest.approx(same), "BOS/EOS and the final '.' are left out"
    assert metrics(inner)["dur_mae_frames"] > 0


# ------------------------------------------------------------------------------------ tables and verdicts


def _per_utterance(n: int = 12, seed: int = 0) -> pd.DataFrame:
    """Synthetic `evaluate_systems` rows: stage-1 Mamba = reference + noise around 0, stage-2 Mamba 30 ms worse."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(100, 20, n)
    shifts = {"LSTM (shipped)": 0.0, "Mamba (stage 1)": None, "Mamba (stage 2)": 30.0}
    rows = []
    for name, shift in shifts.items():
        noise = rng.normal(0, 1, n)
        vals = ref + (noise - noise.mean() if shift is None else shift + 0.1 * noise)  # None: mean diff 0
        for i in range(n):
            rows.append({"set": "real", "id": f"c{i}", "model": name, "boundary_mae_ms": vals[i],
                         "wer_pct": 10.0 + i, "dnsmos_ovrl": 3.0 + 0.01 * i})  # fmt: skip
    for i in range(n):
        rows.append({"set": "real", "id": f"c{i}", "model": "recording", "wer_pct": 5.0, "dnsmos_ovrl": 3.5})
    df = pd.DataFrame(rows)
    df.attrs["models"] = list(shifts)
    return df


def test_summary_has_n_and_intervals_around_the_mean():
    df = _per_utterance()
    table = SY.systems_table(df, n_boot=500)
    assert set(table["system"]) == {"LSTM (shipped)", "Mamba (stage 1)", "Mamba (stage 2)", "recording"}
    assert (table["n"] == 12).all() and (table["note"] == "").all()
    assert (table["lo"] <= table["mean"]).all() and (table["mean"] <= table["hi"]).all()
    rec = table[(table["system"] == "recording")]
    assert set(rec["column"]) == {"wer_pct", "dnsmos_ovrl"}, "the recordings' own WER and DNSMOS, nothing else"
    assert (table.loc[table["system"] == "LSTM (shipped)", "verdict"] == "reference").all()
    worse = table[(table["system"] == "Mamba (stage 2)") & (table["column"] == "boundary_mae_ms")].iloc[0]
    assert worse["diff"] == pytest.approx(30.0, abs=0.5) and worse["verdict"] == "Mamba (stage 2) worse"
    wide = SY.wide_table(table, missing={"LSTM (stage 2)": "not trained"})
    assert list(wide.columns) == [*SY.SYSTEMS, "recording"]
    assert (wide["LSTM (stage 2)"] == "missing").all() and "n=12" in wide.iloc[0]["Mamba (stage 1)"]


def test_no_difference_exactly_when_the_paired_interval_contains_zero():
    df = _per_utterance()
    pairs = SY.default_pairs(df.attrs["models"])
    assert pairs == [("LSTM (shipped)", "Mamba (stage 1)"), ("LSTM (shipped)", "Mamba (stage 2)")]
    diffs = SY.systems_differences(df, pairs, n_boot=500)
    contains = (diffs["diff_lo"] <= 0) & (0 <= diffs["diff_hi"])
    assert ((diffs["verdict"] == "no difference") == contains).all()
    assert contains.any() and not contains.all(), "the synthetic data has both cases"
    lines = SY.verdict_lines(diffs, missing={"LSTM (stage 2)": "no adapter"})
    for (a, b), g in diffs.groupby(["a", "b"]):
        line = next(ln for ln in lines if ln.startswith(f"{b} vs {a}"))
        said = line.split("no difference in ")[1].split(";")[0] if "no difference in " in line else ""
        for r in g.itertuples():
            assert (r.metric in said) == (r.verdict == "no difference"), (line, r.metric)
    assert any(ln.startswith("LSTM (stage 2) is not compared") for ln in lines)
    assert SY.lines_agree(lines, diffs)
    flipped = diffs.assign(verdict=np.where(contains, "x worse", "no difference"))
    assert not SY.lines_agree(lines, flipped), "a conclusion that contradicts the table is caught"


def test_one_clip_gives_a_point_interval_and_no_verdict():
    df = _per_utterance(n=1)
    table = SY.systems_table(df, n_boot=100)
    assert (table["n"] == 1).all() and (table["lo"] == table["mean"]).all() and (table["hi"] == table["mean"]).all()
    assert table["note"].str.contains("n=1").all()
    stage2 = table[(table["system"] == "Mamba (stage 2)") & (table["column"] == "boundary_mae_ms")].iloc[0]
    assert stage2["verdict"] == "too few clips (n=1)", "a 30 ms gap on one clip is no evidence"
    lines = SY.verdict_lines(SY.systems_differences(df, SY.default_pairs(df.attrs["models"]), n_boot=100))
    assert any("not evidence" in ln for ln in lines)


# --------------------------------------------------------------------------------------- missing systems


def test_missing_systems_are_reported_not_crashed_on(kokoro_small_random, tmp_path):
    from helpers.compare.contenders import shallow_twin
    from helpers.transplant.adapters import save_adapter

    runs = tmp_path / "runs"
    model = shallow_twin(kokoro_small_random.model)
    replace_duration_encoder(model, SMALL)
    save_adapter(model, runs / "distill" / "adapter", {"stage": "distill"})
    save_adapter(model, runs / "finetune" / "adapter", {"stage": "finetune"})
    systems = SY.four_systems(kokoro_small_random, runs)
    assert list(systems.models) == ["LSTM (shipped)", "Mamba (stage 1)", "Mamba (stage 2)"]
    assert str(runs / "distill" / "adapter") in systems.sources["Mamba (stage 1)"]
    assert "run notebook 05" in systems.missing["LSTM (stage 2)"]
    # a broken stage-2 LSTM adapter: reported as not loading, the others still compared
    bad = runs / "finetune-lstm" / "adapter.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"format": "something else"}))
    systems = SY.four_systems(kokoro_small_random, runs, stage1=[])
    assert "does not load" in systems.missing["LSTM (stage 2)"]
    assert "Mamba (stage 1)" in systems.missing and "Mamba (stage 2)" in systems.models
    assert any("MISSING" in ln for ln in systems.lines())
