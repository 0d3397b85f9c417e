"""The fitted-voice evaluation: a pack that spoke a clip scores zero on it, scores are reproducible, the
leave-one-out folds never score a clip the fold fitted or stopped early on, and too few clips is refused."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from helpers.compare import voice_fit as VF
from helpers.kokoro.synth import synthesize


def test_a_pack_scores_zero_on_its_own_speech_and_another_pack_does_not(kokoro_offline):
    phonemes = "hˈɛlO, wˈʌt ɪz ɪt?"
    spoken = synthesize(kokoro_offline, phonemes=phonemes, voice="am_michael", seed=0)
    clip = SimpleNamespace(id="own", phonemes=phonemes, durations=spoken.durations, f0=spoken.f0,
                           audio=spoken.audio)  # fmt: skip  # stands in for a recording with its targets
    same = VF.score_pack(kokoro_offline, clip, kokoro_offline.voice("am_michael"), seed=0)
    assert all(np.isfinite(v) for v in same.values()), same
    assert same["mcd_db"] == pytest.approx(0.0, abs=1e-6) and same["f0_rmse_hz"] == pytest.approx(0.0, abs=1e-6)
    assert VF.score_pack(kokoro_offline, clip, "am_michael", seed=0) == same  # a name or the pack: the same

    other = VF.score_pack(kokoro_offline, clip, kokoro_offline.voice("af_heart"), seed=0)
    assert all(np.isfinite(v) for v in other.values()), other
    assert other["mcd_db"] > 1.0 and other["f0_rmse_hz"] > 20.0  # a female pack is far from a male one
    assert VF.score_pack(kokoro_offline, clip, kokoro_offline.voice("af_heart"), seed=0) == other  # seeded

    players, table = VF.side_by_side(kokoro_offline, clip, {"own": "am_michael", "other": "af_heart"}, seed=0)
    assert players.count("<audio") == 3 and players.index("recording") < players.index("own") < players.index("other")
    assert table["voice"].tolist() == ["own", "other"] and table["mcd_db"].tolist() == [same["mcd_db"], other["mcd_db"]]

    with pytest.raises(ValueError, match="store_audio"):
        VF.score_pack(kokoro_offline, SimpleNamespace(**{**vars(clip), "audio": None}), "am_michael")


def test_every_clip_is_tested_once_and_never_fitted_or_stopped_on():
    ids = [f"clip{i}" for i in (3, 0, 4, 1, 2)]
    folds = VF.loo_folds(ids)
    assert sorted(f.test for f in folds) == sorted(ids) and len({f.dev for f in folds}) == len(ids)
    for f in folds:
        assert f.test not in f.train and f.test != f.dev and f.dev not in f.train
        assert sorted([f.test, f.dev, *f.train]) == sorted(ids)
    with pytest.raises(ValueError, match="at least 3 usable clips"):
        VF.loo_folds(["a", "b"])


class _FakeKokoro:
    def voice(self, name):
        return f"pack:{name}"


def _fake_scores(calls):
    means = {"pack:fitted": (5.0, 20.0), "pack:am_puck": (6.0, 25.0), "pack:am_michael": (5.5, 30.0)}

    def score(kokoro, item, pack, seed=0):
        calls.append((item.id, pack))
        mcd, f0 = means[pack if pack in means else "pack:fitted"]
        jitter = 0.1 * int(item.id[-1])  # a hard clip is hard for every system
        return {"mcd_db": mcd + jitter, "f0_rmse_hz": f0 + jitter}

    return score


def test_leave_one_out_scores_each_fold_on_its_held_out_clip_only(monkeypatch):
    from helpers.train import voice_loo

    items = [SimpleNamespace(id=f"clip{i}") for i in range(5)]
    data = SimpleNamespace(train=items[:3], dev=items[3:4], test=items[4:], manifest={"reference_voice": {"voice": "am_puck"}})
    monkeypatch.setattr("helpers.data.prepare.prepare_dataset", lambda *a, **k: data)
    fitted_on, scored = [], []

    def fake_fit_voice(kokoro, dataset, cfg, start, history, progress):
        train, dev = dataset
        fitted_on.append(({it.id for it in train}, {it.id for it in dev}))
        history.extend([{"epoch": 0, "dev_loss": 2.0}, {"epoch": 1, "dev_loss": 1.0}])
        return f"fitted{len(fitted_on) - 1}"  # this fold's pack

    monkeypatch.setattr(voice_loo, "fit_voice", fake_fit_voice)
    monkeypatch.setattr(VF, "score_pack", _fake_scores(scored))
    out = voice_loo.leave_one_out(_FakeKokoro(), "somewhere", None, voices=("am_michael",), progress=False)

    assert len(fitted_on) == 5 and out["reference"] == "am_puck"
    for k, (train, dev) in enumerate(fitted_on):
        [tested] = {i for i, pack in scored if pack == f"fitted{k}"}
        assert tested not in train | dev and len(train) == 3 and len(dev) == 1
    assert sorted(i for i, pack in scored if pack == "pack:am_puck") == [it.id for it in items]  # once per clip
    assert out["best_stock"] == "am_michael"  # lowest mean MCD of the stock packs, not the nearest
    table = out["per_fold"]
    assert len(table) == 6 and table["mcd_db_fitted"].iloc[-1] == pytest.approx(5.2)
    assert table["mcd_db_best"].iloc[-1] == pytest.approx(5.7) and table["f0_rmse_hz_nearest"].iloc[-1] == 25.2
    row = out["summary"].set_index(["metric", "stock"]).loc[("MCD (dB)", "best (am_michael)")]
    assert row["n"] == 5 and row["fitted_minus_stock"] == pytest.approx(-0.5)
    assert row["ci_lo"] == pytest.approx(-0.5) and row["verdict"] == "too few clips (n=5)"  # stats.MIN_N = 8
    assert out["folds"]["best_epoch"].tolist() == [1] * 5
    assert json.loads(json.dumps(voice_loo.to_json(out, "somewhere")))["per_fold"][0]["test"] == "clip0"


def test_leave_one_out_refuses_fewer_than_three_clips_before_fitting(monkeypatch):
    from helpers.train import voice_loo

    items = [SimpleNamespace(id="a"), SimpleNamespace(id="b")]
    data = SimpleNamespace(train=items[:1], dev=items[1:], test=[], manifest={"reference_voice": {"voice": "am_puck"}})
    monkeypatch.setattr("helpers.data.prepare.prepare_dataset", lambda *a, **k: data)
    monkeypatch.setattr(voice_loo, "fit_voice", lambda *a, **k: pytest.fail("fitted with too few clips"))
    with pytest.raises(ValueError, match="at least 3 usable clips"):
        voice_loo.leave_one_out(_FakeKokoro(), "tiny", None, progress=False)


def test_a_fitted_packs_metadata_reads_back(tmp_path):
    import torch

    from helpers.kokoro.voices import pack_metadata
    from helpers.train.fit_voice import save_pack

    path = save_pack(torch.zeros(510, 1, 256), tmp_path / "v.safetensors", {"start": "am_puck", "dev_loss_best": "1.5"})
    assert pack_metadata(path) == {"start": "am_puck", "dev_loss_best": "1.5"}
