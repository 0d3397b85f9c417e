"""Notebook 06's four-system comparison: the tempo-normalised boundary error, spoken-token durations on real
recordings, the table's n and t-intervals, one Holm family with the primary declared apart, "too few clips" below the
minimum n, labels matched exactly, Mamba (stage 1) read from the stage-2 adapter, missing systems reported."""

from __future__ import annotations

import dataclasses
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


def test_speaker_similarity_is_a_table_metric_and_separates_speech_from_noise(kokoro_small_random):
    """speaker_sim (higher is better) is scored for every system and for the recordings themselves: a random
    model's output is far from the reader, the reader's own clips are close."""
    from helpers.data.audio import load_audio
    from helpers.settings import REPO_ROOT

    assert "speaker_sim" in SY.TABLE_METRICS and SY.METRICS["speaker_sim"][2] == "higher"
    wavs = sorted((REPO_ROOT / "data" / "librivox" / "wavs").glob("*.wav"))[:2]
    items = [EvalItem(w.stem, "a test", load_audio(w).samples, "ɐ tˈɛst.", None) for w in wavs]
    model = kokoro_small_random.model.eval()
    pack = torch.randn(510, 1, 256, generator=torch.Generator().manual_seed(0))
    rows = evaluate_recordings({"random": model}, items, voice=pack, speed=12.0, seed=0, asr=False, similarity=True)
    sim = pd.DataFrame(rows).groupby("model")["speaker_sim"].mean()
    assert sim["recording"] > 0.7 and sim["random"] < sim["recording"] - 0.2, sim


# ------------------------------------------------------------------------------------ tables and verdicts


def _per_utterance(n: int = 12, seed: int = 0, stage2_shift: float = 30.0) -> pd.DataFrame:
    """Synthetic `evaluate_systems` rows: stage-1 Mamba = reference + noise around 0, stage-2 Mamba 30 ms worse
    (both boundary errors), LSTM (stage 2) = reference + small noise."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(100, 20, n)
    shifts = {"LSTM (shipped)": 0.0, "LSTM (stage 2)": 0.0, "Mamba (stage 1)": None, "Mamba (stage 2)": stage2_shift}
    rows = []
    for name, shift in shifts.items():
        noise = rng.normal(0, 1, n)
        vals = ref + (noise - noise.mean() if shift is None else shift + 0.1 * noise)  # None: mean diff 0
        for i in range(n):
            rows.append({"set": "real", "id": f"c{i}", "model": name, "boundary_mae_ms": vals[i],
                         "boundary_tempo_ms": vals[i] / 2, "wer_pct": 10.0 + i, "dnsmos_ovrl": 3.0 + 0.01 * i})  # fmt: skip
    for i in range(n):
        rows.append({"set": "real", "id": f"c{i}", "model": "recording", "wer_pct": 5.0, "dnsmos_ovrl": 3.5})
    df = pd.DataFrame(rows)
    df.attrs["models"] = list(shifts)
    return df


FACTS = {"LSTM (shipped)": {"trainable_params": 0, "dropout": 0.0},
         "Mamba (stage 2)": {"trainable_params": 6334848, "dropout": 0.0}}  # fmt: skip


def test_summary_has_n_t_intervals_parameters_and_dropout():
    df = _per_utterance()
    table = SY.systems_table(df, facts=FACTS)
    assert set(table["system"]) == {*SY.SYSTEMS, "recording"}
    assert (table["n"] == 12).all() and (table["note"] == "").all()
    lstm = table[(table["system"] == "LSTM (shipped)") & (table["column"] == "boundary_mae_ms")].iloc[0]
    x = df.loc[df["model"] == "LSTM (shipped)", "boundary_mae_ms"]
    half = 2.200985 * x.std(ddof=1) / np.sqrt(12)  # Student t(0.975, 11)
    assert lstm["mean"] == pytest.approx(x.mean()) and lstm["hi"] - lstm["mean"] == pytest.approx(half, rel=1e-5)
    rec = table[(table["system"] == "recording")]
    assert set(rec["column"]) == {"wer_pct", "dnsmos_ovrl"}, "the recordings' own WER and DNSMOS, nothing else"
    assert (table.loc[table["system"] == "LSTM (shipped)", "verdict"] == "reference").all()
    worse = table[(table["system"] == "Mamba (stage 2)") & (table["column"] == "boundary_mae_ms")].iloc[0]
    assert worse["diff"] == pytest.approx(30.0, abs=0.5) and worse["verdict"] == "Mamba (stage 2) worse"
    assert worse["trainable_params"] == 6334848 and worse["dropout"] == 0.0
    wide = SY.wide_table(table, missing={"LSTM (stage 2)": "not trained"}, facts=FACTS)
    assert list(wide.columns) == [*SY.SYSTEMS, "recording"]
    assert (wide["LSTM (stage 2)"] == "missing").all() and "n=12" in wide.loc["token boundary error (ms)", "Mamba (stage 1)"]
    assert wide.loc["trainable parameters", "Mamba (stage 2)"] == "6,334,848"
    assert wide.loc["dropout (training)", "Mamba (stage 1)"] == "not recorded"


def test_one_family_holm_adjusted_with_the_primary_declared_apart():
    df = _per_utterance()
    pairs = SY.default_pairs(df.attrs["models"])
    assert pairs[-1] == SY.ARCHITECTURE == SY.PRIMARY_PAIR and len(pairs) == 5
    assert pairs[-2] == ("Mamba (stage 1)", "Mamba (stage 2)"), "what stage 2 buys the Mamba"
    diffs = SY.systems_differences(df, pairs)
    assert len(diffs) == 5 * 4, "one row per (pair, metric), no more"
    prim = diffs[diffs["primary"]]
    assert len(prim) == 1 and prim.iloc[0]["column"] == SY.PRIMARY_METRIC == "boundary_tempo_ms"
    assert prim.iloc[0]["metric"] == "token boundary error, tempo-normalised" and prim.iloc[0]["p_adj"] == prim.iloc[0]["p"]
    rest = diffs[~diffs["primary"]]
    assert rest["p_adj"].to_numpy() == pytest.approx(SY.holm(rest["p"].to_numpy()), nan_ok=True)
    assert (rest["p_adj"] >= rest["p"]).all() and (rest["p_adj"] > rest["p"]).any()
    worse = (diffs["b"] == "Mamba (stage 2)") & diffs["column"].str.startswith("boundary")
    assert (diffs.loc[worse, "verdict"] == "Mamba (stage 2) worse").all()
    assert (diffs.loc[~worse, "verdict"] == SY.NO_DIFFERENCE).all()
    with_ci = diffs[diffs["verdict"] != SY.NO_DIFFERENCE]
    assert ((with_ci["diff_lo"] > 0) | (with_ci["diff_hi"] < 0)).all(), "a verdict's interval excludes 0"


def test_verdict_lines_name_each_metric_exactly_and_lines_agree_tells_the_two_boundary_errors_apart():
    df = _per_utterance()
    diffs = SY.systems_differences(df, [SY.ARCHITECTURE], columns=("boundary_mae_ms", "boundary_tempo_ms"))
    diffs.loc[diffs["column"] == "boundary_mae_ms", "verdict"] = SY.NO_DIFFERENCE  # the two now disagree
    assert list(diffs["metric"]) == ["token boundary error", "token boundary error, tempo-normalised"]
    lines = SY.verdict_lines(diffs)
    assert lines[0].startswith("Mamba (stage 2) vs LSTM (stage 2) | token boundary error: no difference shown (n=12; ")
    assert lines[1].startswith("Mamba (stage 2) vs LSTM (stage 2) | token boundary error, tempo-normalised [primary]: "
                               "Mamba (stage 2) worse (n=12; +15.")  # fmt: skip
    assert "95% CI [" in lines[1] and "p=" in lines[1]
    assert SY.lines_agree(lines, diffs)
    assert not SY.lines_agree(lines[::-1][:1], diffs), "a metric without its line"
    swapped = diffs.assign(verdict=diffs["verdict"].to_numpy()[::-1])
    assert not SY.lines_agree(lines, swapped), "each label's own verdict, not the other one's"
    twice = lines + [lines[1]]
    assert not SY.lines_agree(twice, diffs), "one line per metric"


def test_below_the_minimum_n_every_metric_says_too_few_clips():
    for n in (1, SY.MIN_N - 1):
        df = _per_utterance(n=n, stage2_shift=300.0)  # a huge gap: still no evidence at this n
        diffs = SY.systems_differences(df, SY.default_pairs(df.attrs["models"]))
        assert len(diffs) == 20 and diffs["verdict"].str.startswith("too few clips (n=").all(), n
        assert (diffs["n"] == n).all()
        lines = SY.verdict_lines(diffs)
        assert SY.lines_agree(lines, diffs) and any("no verdict on any metric" in ln for ln in lines)
        concl = SY.conclusion_lines(diffs)
        assert concl[0].startswith("Primary question") and "too few clips" in concl[0]
        assert not any(("better" in ln or "worse" in ln) and "too few" not in ln for ln in concl)
    table = SY.systems_table(_per_utterance(n=1))
    assert table["lo"].isna().all() and table["note"].str.contains("n=1").all()
    assert "[–, –] n=1" in SY.wide_table(table).iloc[0, 0]


def test_the_conclusion_is_built_from_the_paired_verdicts_with_n_and_intervals():
    df = _per_utterance()
    diffs = SY.systems_differences(df, SY.default_pairs(df.attrs["models"]))
    concl = SY.conclusion_lines(diffs)
    assert concl[0].startswith("Primary question (declared before the run): Mamba (stage 2) vs LSTM (stage 2), "
                               "token boundary error, tempo-normalised")  # fmt: skip
    assert "Mamba (stage 2) worse (n=12;" in concl[0] and "95% CI [" in concl[0]
    assert concl[1] == "Other comparisons (19 verdicts, Holm-adjusted together): 14 no difference shown, 5 worse."
    no_arch = diffs[diffs["b"] != "Mamba (stage 2)"].assign(primary=False)
    concl = SY.conclusion_lines(no_arch, missing={"Mamba (stage 2)": "no adapter"})
    assert concl[0].startswith("Primary question") and "not answered, Mamba (stage 2): no adapter" in concl[0]


def test_the_plan_declares_the_primary_metric_by_its_exact_label():
    plan = SY.analysis_plan(["b", "a"], "abc")
    assert plan["primary"] == {"a": "LSTM (stage 2)", "b": "Mamba (stage 2)", "column": "boundary_tempo_ms",
                               "metric": "token boundary error, tempo-normalised"}  # fmt: skip
    assert plan["test_ids"] == ["a", "b"] and plan["min_n"] == SY.MIN_N == 8 and plan["alpha"] == 0.05


# --------------------------------------------------------------------------------------- missing systems


def test_stage1_is_what_stage2_started_from_and_missing_systems_are_reported(kokoro_small_random, tmp_path):
    from helpers.compare.contenders import shallow_twin
    from helpers.transplant.adapters import SHIPPED_ADAPTER, save_adapter

    runs = tmp_path / "runs"
    model = shallow_twin(kokoro_small_random.model)
    replace_duration_encoder(model, dataclasses.replace(SMALL, dropout=0.1))
    save_adapter(model, runs / "distill" / "adapter", {"stage": "distill"})
    save_adapter(model, runs / "older" / "adapter", {"stage": "distill"})  # newer than distill: never picked
    save_adapter(model, runs / "finetune" / "adapter",
                 {"stage": "finetune", "init_adapter": str(runs / "distill" / "adapter"), "trainable_params": 123})  # fmt: skip
    systems = SY.four_systems(kokoro_small_random, runs)
    assert list(systems.models) == ["LSTM (shipped)", "Mamba (stage 1)", "Mamba (stage 2)"]
    assert systems.sources["Mamba (stage 1)"] == f"adapter {runs / 'distill' / 'adapter'}"
    assert "started from" in systems.stage1_note
    assert "run notebook 05" in systems.missing["LSTM (stage 2)"]
    assert systems.facts["Mamba (stage 2)"]["trainable_params"] == 123
    assert systems.facts["Mamba (stage 2)"]["dropout"] == pytest.approx(0.1), "the surgery's dropout when not recorded"
    assert systems.facts["LSTM (shipped)"] == {"adapter": None, "block": "lstm", "init_adapter": None,
                                               "trainable_params": 0, "dropout": 0.0, "adapter_params": 0}  # fmt: skip
    # a broken stage-2 LSTM adapter: reported as not loading, the others still compared
    bad = runs / "finetune-lstm" / "adapter.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(json.dumps({"format": "something else"}))
    systems = SY.four_systems(kokoro_small_random, runs, stage1=tmp_path / "nothing")
    assert "does not load" in systems.missing["LSTM (stage 2)"]
    assert "no adapter at" in systems.missing["Mamba (stage 1)"] and "Mamba (stage 2)" in systems.models
    assert any("MISSING" in ln for ln in systems.lines())
    # no stage-2 Mamba: the shipped stage-1 adapter, said so
    path, note = SY.stage1_of(tmp_path / "empty")
    assert path == SHIPPED_ADAPTER and "no stage-2 Mamba adapter" in note and "shipped" in note
