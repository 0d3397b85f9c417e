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


def test_twin_shares_everything_but_the_duration_encoder(two_models):
    lstm, mamba = two_models
    assert not isinstance(lstm.predictor.text_encoder, MambaDurationEncoder), "the original keeps its LSTMs"
    assert isinstance(mamba.predictor.text_encoder, MambaDurationEncoder)
    assert (
        mamba.bert is lstm.bert and mamba.decoder is lstm.decoder and mamba.predictor.F0 is lstm.predictor.F0
    )


def test_same_model_and_seed_gives_the_same_audio_twice(two_models, pack):
    lstm, _ = two_models
    r = C.ab_compare(lstm, lstm, voice=pack, phonemes=PHONEMES, **FAST)
    assert np.array_equal(r.lstm.audio, r.mamba.audio)
    assert np.array_equal(r.lstm_audio, r.mamba_audio)
    s = r.summary()
    assert s["dur_within1_pct"] == 100 and s["voicing_err_pct"] == 0 and s["mcd_db"] == 0


def test_shared_durations_give_equal_length_analyses(two_models, pack):
    lstm, mamba = two_models
    r = C.ab_compare(lstm, mamba, voice=pack, phonemes=PHONEMES, share_durations=True, **FAST)
    a, b = r.lstm, r.mamba
    assert np.array_equal(a.durations, b.durations)
    assert len(a.audio) == len(b.audio) == 600 * a.durations.sum()
    assert len(a.f0) == len(b.f0) == len(a.energy) == len(b.energy) == 2 * a.durations.sum()
    assert not np.array_equal(a.f0, b.f0), "the Mamba encoder should change the F0 curve"
    assert "f0_rmse_hz" in r.summary()
    # loudness matched: equal active-speech RMS (unless the peak limiter had to act on both alike)
    assert C.active_rms(r.lstm_audio) == pytest.approx(C.active_rms(r.mamba_audio), rel=1e-3)
    assert max(np.abs(r.lstm_audio).max(), np.abs(r.mamba_audio).max()) <= 0.99 + 1e-6


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
    df = C.evaluate(lstm, lstm, [item, bare], [sentence], voice=pack, asr=False, **FAST)
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
        df, tmp_path, settings={"mode": "ci"}, adapter={"path": "x", "metadata": {"steps": 1}}
    )
    record = json.loads(paths["json"].read_text())
    assert record["adapter"]["metadata"]["steps"] == 1 and record["summary"] and record["notes"]
    assert paths["per_utterance"].exists() and paths["summary"].exists()
    assert C.conclusions(summary), "conclusions are built from the numbers"


def test_plots_player_and_latency(two_models, pack):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lstm, mamba = two_models
    r = C.ab_compare(lstm, mamba, voice=pack, phonemes=PHONEMES, share_durations=True, **FAST)
    from helpers import plots

    fig = plots.plot_ab(r)
    assert len(fig.axes) >= 4
    plt.close(fig)
    assert C.players_html(r).count("<audio") == 2
    player = pytest.importorskip("ipywidgets") and C.ab_player(lstm, mamba, ["Hi."], voices=["x"], voice="x")
    assert player.children  # built, nothing synthesized until the button is pressed
    lat = C.measure_latency(
        lstm, mamba, [8], repeats=1, synth_repeats=1, voice=pack, speed=12, phonemes=PHONEMES
    )
    assert lat.loc[0, "encoder_lstm_ms"] > 0 and lat.loc[0, "synth_mamba_ms"] > 0
    table = C.parameter_table(lstm, mamba)
    assert table.loc[0, "Mamba"] != table.loc[0, "LSTM"]
