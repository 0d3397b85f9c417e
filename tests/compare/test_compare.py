"""The A/B comparison on small random Kokoros: equal-length analyses, repeatability, evaluation, files.

Random models cannot speak, but every property tested here is about plumbing (grids, seeds, files), not
about quality. `speed=12` keeps their (random, ~25 frames per token) durations short, so the tests are fast;
users are held to speed <= 4 (helpers.kokoro.forward.MAX_SPEED), which these tests lift.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers import compare as C
from helpers.transplant.surgery import MambaDurationEncoder, SurgeryConfig, replace_duration_encoder

PHONEMES = "həlˈO."
SMALL = SurgeryConfig(d_state=4, expand=1)  # small blocks: same contract, faster
SMALL_CFC = SurgeryConfig(block="cfc", cfc_backbone_units=16)
FAST = dict(speed=12.0, seed=3)


@pytest.fixture(autouse=True)
def fast_random_models(monkeypatch):
    import helpers.kokoro.forward as forward

    monkeypatch.setattr(forward, "MAX_SPEED", FAST["speed"])


@pytest.fixture
def pack():
    return torch.randn(510, 1, 256, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def two_models(kokoro_small_random):
    """(LSTM model, Mamba model): one small random Kokoro and its shallow twin with a Mamba DurationEncoder."""
    lstm = kokoro_small_random.model.eval()
    torch.manual_seed(0)
    mamba = C.shallow_twin(lstm)
    replace_duration_encoder(mamba, SMALL)
    return lstm, mamba.eval()


@pytest.fixture(scope="module")
def three_models(two_models):
    """{LSTM, Mamba, CfC}: the two above and a third twin with a (small) CfC DurationEncoder."""
    lstm, mamba = two_models
    torch.manual_seed(0)
    cfc = C.shallow_twin(lstm)
    replace_duration_encoder(cfc, SMALL_CFC)
    return {"LSTM": lstm, "Mamba": mamba, "CfC": cfc.eval()}


def test_twin_shares_everything_but_the_duration_encoder(two_models):
    lstm, mamba = two_models
    assert not isinstance(lstm.predictor.text_encoder, MambaDurationEncoder), "the original keeps its LSTMs"
    assert isinstance(mamba.predictor.text_encoder, MambaDurationEncoder)
    assert (
        mamba.bert is lstm.bert and mamba.decoder is lstm.decoder and mamba.predictor.F0 is lstm.predictor.F0
    )


def test_same_model_and_seed_gives_the_same_audio_twice(two_models, pack):
    lstm, _ = two_models
    r = C.ab_compare({"LSTM": lstm, "again": lstm}, voice=pack, phonemes=PHONEMES, **FAST)
    assert np.array_equal(r.syntheses["LSTM"].audio, r.syntheses["again"].audio)
    assert np.array_equal(r.audio["LSTM"], r.audio["again"])
    s = r.summary()["again"]
    assert s["dur_within1_pct"] == 100 and s["voicing_err_pct"] == 0 and s["mcd_db"] == 0


def test_shared_durations_give_equal_length_analyses(two_models, pack):
    lstm, mamba = two_models
    r = C.ab_compare({"LSTM": lstm, "Mamba": mamba}, voice=pack, phonemes=PHONEMES, share_durations=True, **FAST)
    a, b = r.syntheses["LSTM"], r.syntheses["Mamba"]
    assert np.array_equal(a.durations, b.durations)
    assert len(a.audio) == len(b.audio) == 600 * a.durations.sum()
    assert len(a.f0) == len(b.f0) == len(a.energy) == len(b.energy) == 2 * a.durations.sum()
    assert not np.array_equal(a.f0, b.f0), "the Mamba encoder should change the F0 curve"
    assert "f0_rmse_hz" in r.summary()["Mamba"]
    # loudness matched: equal active-speech RMS (unless the peak limiter had to act on both alike)
    assert C.active_rms(r.audio["LSTM"]) == pytest.approx(C.active_rms(r.audio["Mamba"]), rel=1e-3)
    assert max(np.abs(r.audio["LSTM"]).max(), np.abs(r.audio["Mamba"]).max()) <= 0.99 + 1e-6


def test_contenders_must_come_as_a_mapping(two_models, pack):
    with pytest.raises(TypeError, match="mapping name -> model"):
        C.ab_compare(*two_models, voice=pack, phonemes=PHONEMES, **FAST)


def test_predict_prosody_matches_synthesis(two_models, pack):
    from helpers.kokoro.synth import synthesize

    _, mamba = two_models
    syn = synthesize(mamba, phonemes=PHONEMES, voice=pack, **FAST)
    pro = C.predict_prosody(mamba, PHONEMES, pack, speed=FAST["speed"], durations=syn.durations)
    np.testing.assert_array_equal(pro["durations"], syn.durations)
    np.testing.assert_allclose(pro["f0"], syn.f0, rtol=1e-5, atol=1e-4)


def test_match_loudness():
    rng = np.random.default_rng(0)
    a, b = 0.01 * rng.standard_normal(24000), 0.5 * rng.standard_normal(24000)
    (a2, b2), gains = C.match_loudness(a, b)
    assert C.active_rms(a2) == pytest.approx(C.active_rms(b2), rel=1e-6)
    assert gains[0] > gains[1]
    assert np.abs(b2).max() <= 0.99 + 1e-6


def test_fixture_adapter_is_found_only_on_request(tmp_path, two_models):
    from helpers.transplant.adapters import save_adapter

    model = C.shallow_twin(two_models[0])
    fixture = C.make_fixture_adapter(model, tmp_path / "compare" / "fixture" / "adapter", SMALL)
    assert not isinstance(model.predictor.text_encoder, MambaDurationEncoder), (
        "the model comes back unchanged"
    )
    assert C.adapter_info(fixture)["metadata"]["fixture"] is True
    assert C.find_adapter(tmp_path) is None
    assert C.find_adapter(tmp_path, include_fixtures=True) == fixture
    assert "NONE" in C.describe_adapter(fixture)
    report = replace_duration_encoder(model, SMALL)
    trained, _ = save_adapter(model, tmp_path / "run1" / "adapter", {"stage": "distill", "steps": 5})
    assert C.find_adapter(tmp_path) == trained.with_suffix("")
    assert "stage=distill" in C.describe_adapter(trained)
    assert report.removed is not None


def test_evaluate_and_save(two_models, pack, tmp_path):
    lstm, mamba = two_models
    from helpers.kokoro.synth import synthesize

    syn = synthesize(lstm, phonemes=PHONEMES, voice=pack, **FAST)
    item = C.EvalItem(
        "rec1",
        "hello world",
        syn.audio,
        PHONEMES,
        syn.durations,
        syn.f0,
        style=pack[len(PHONEMES) - 1, 0].numpy(),
    )
    sentence = C.EvalSentence("s1", "hello world", PHONEMES)
    bare = C.EvalItem("rec2", "hello world", syn.audio)  # no targets: its duration/F0 metrics are skipped
    # the LSTM against itself: its own synthesis as the "recording", so every target metric is perfect
    df = C.evaluate({"LSTM": lstm, "Mamba": lstm}, [item, bare], [sentence], voice=pack, asr=False, **FAST)
    real = df[(df["set"] == "real") & (df["model"] == "LSTM") & (df["id"] == "rec1")].iloc[0]
    assert real["dur_mae_frames"] == 0 and real["voicing_err_pct"] == 0  # (a random model's F0 is ~0 Hz)
    assert real["mcd_db"] == pytest.approx(0, abs=1e-6)
    text_mamba = df[(df["set"] == "text") & (df["model"] == "Mamba")].iloc[0]
    assert text_mamba["dur_within1_pct"] == 100 and text_mamba["mcd_db"] == 0
    assert np.isnan(df[(df["set"] == "text") & (df["model"] == "LSTM")]["dur_mae_frames"]).all()
    assert any("ASR off" in n for n in df.attrs["notes"])
    assert any("rec2: no target durations" in n for n in df.attrs["notes"])
    summary = C.summarize(df)
    assert {"LSTM", "Mamba", "Mamba - LSTM"} <= set(summary.columns)
    paths = C.save_results(
        df, tmp_path, settings={"mode": "ci"}, adapters={"Mamba": {"path": "x", "metadata": {"steps": 1}}}
    )
    record = json.loads(paths["json"].read_text())
    assert record["adapters"]["Mamba"]["metadata"]["steps"] == 1 and record["summary"] and record["notes"]
    assert paths["per_utterance"].exists() and paths["summary"].exists()
    assert C.conclusions(summary), "conclusions are built from the numbers"


def test_three_contenders_everywhere(three_models, pack, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from helpers import plots

    r = C.ab_compare(three_models, voice=pack, phonemes=PHONEMES, share_durations=True, **FAST)
    assert list(r.syntheses) == ["LSTM", "Mamba", "CfC"] and set(r.summary()) == {"Mamba", "CfC"}
    fig = plots.plot_ab(r)
    assert len(fig.axes) >= 5  # durations, F0, one log-mel each
    plt.close(fig)
    assert C.players_html(r).count("<audio") == 3
    player = pytest.importorskip("ipywidgets") and C.ab_player(three_models, ["Hi."], voices=["x"], voice="x")
    assert player.children  # built, nothing synthesized until the button is pressed
    df = C.evaluate(three_models, [], [C.EvalSentence("s1", "hi", PHONEMES)], voice=pack, asr=False, **FAST)
    summary = C.summarize(df)
    assert {"LSTM", "Mamba", "CfC", "Mamba - LSTM", "CfC - LSTM"} <= set(summary.columns)
    lat = C.measure_latency(
        three_models, [8], repeats=1, synth_repeats=1, voice=pack, speed=12, phonemes=PHONEMES
    )
    for k in ("lstm", "mamba", "cfc"):
        assert lat.loc[0, f"encoder_{k}_ms"] > 0 and lat.loc[0, f"synth_{k}_ms"] > 0
    assert lat.loc[0, "encoder_cfc_ratio"] > 0 and "encoder_lstm_ratio" not in lat
    fig = plots.plot_latency(lat)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["LSTM", "Mamba", "CfC"]
    plt.close(fig)
    table = C.parameter_table(three_models)
    assert {"LSTM", "Mamba", "CfC", "Mamba / LSTM", "CfC / LSTM"} <= set(table.columns)
    lines = C.conclusions(summary, {"CfC": {"metadata": {"fixture": True}}}, lat)
    assert any("CfC adapter is an UNTRAINED fixture" in ln for ln in lines)
    assert any("CfC" in ln and "x)" in ln for ln in lines), "the latency sentence names every contender"


def test_pick_adapter_falls_back_to_a_fixture_of_its_kind(kokoro_small_random, tmp_path, monkeypatch):
    from helpers.transplant import adapters

    monkeypatch.setitem(adapters.SHIPPED_ADAPTERS, "cfc", tmp_path / "nothing" / "adapter")  # not shipped yet
    runs = tmp_path / "runs"
    model = C.shallow_twin(kokoro_small_random.model)
    replace_duration_encoder(model, SMALL)
    adapters.save_adapter(model, runs / "distill" / "adapter", {"stage": "distill"})  # a user's Mamba adapter
    path, twin, messages = C.pick_adapter("cfc", kokoro_small_random, runs, tmp_path / "fixture-cfc" / "adapter")
    assert path == tmp_path / "fixture-cfc" / "adapter", "the user's Mamba adapter is not a CfC"
    assert any("no CfC adapter shipped yet" in m for m in messages)
    assert any("UNTRAINED fixture" in m for m in messages)
    assert twin.model.predictor.text_encoder.cfg.block == "cfc"
    assert "CfC DurationEncoder" in twin.note
    path, twin, messages = C.pick_adapter("mamba", kokoro_small_random, runs, tmp_path / "fixture" / "adapter")
    assert path == runs / "distill" / "adapter" and any("your newest trained adapter" in m for m in messages)
