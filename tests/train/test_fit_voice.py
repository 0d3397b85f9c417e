"""fit_voice on tiny data: a pack of the right shape, fitted by one timbre offset (the prosody half is the start
pack's, so no prosody system is favoured), never worse on dev clips than the pack it started from, stopped early on
dev only (test never read), the model and torch's RNG left as they were; the cached voice records what it saw."""

from __future__ import annotations

import json
import time

import pytest
import torch

from helpers.kokoro.voices import read_pack_file
from helpers.train.fit_voice import FitVoiceConfig, fit_voice, reference_voice_of, save_pack
from helpers.train.items import TrainItem


def test_fit_voice_returns_a_pack_no_worse_than_its_start(voice_clips, kokoro_small_random, tmp_path):
    model = kokoro_small_random.model
    before = {n: (p.detach().clone(), p.requires_grad) for n, p in model.named_parameters()}
    items = voice_clips()
    history: list[dict] = []
    torch.manual_seed(7)
    rng_before = torch.get_rng_state()
    t0 = time.perf_counter()
    cfg = FitVoiceConfig(epochs=3, lr=0.05, patience=2, crop_frames=4)
    pack = fit_voice(kokoro_small_random, (items[:2], items[2:]), cfg, start="af_heart", history=history,
                     progress=False)  # fmt: skip
    seconds = time.perf_counter() - t0
    stock = kokoro_small_random.voice("af_heart")
    assert pack.shape == (510, 1, 256) and pack.dtype == torch.float32 and torch.isfinite(pack).all()
    offset = (pack - stock).reshape(510, 256)
    assert torch.allclose(offset, offset[:1].expand_as(offset), atol=1e-6)  # one offset, every row
    assert torch.equal(pack[..., 128:], stock[..., 128:])  # the prosody half: the stock pack's, bit for bit
    assert offset[:, :128].abs().sum() > 0  # the timbre half moved
    assert [r["epoch"] for r in history][0] == 0 and len(history) <= 4
    assert min(r["dev_loss"] for r in history) < history[0]["dev_loss"]
    assert torch.equal(torch.get_rng_state(), rng_before)
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n][0]) and p.requires_grad == before[n][1], n
    print(f"fit_voice: {len(history) - 1} epochs on 2 + 1 tiny clips in {seconds:.1f} s")

    again = fit_voice(kokoro_small_random, (items[:2], items[2:]), cfg, start="af_heart", progress=False)
    assert torch.equal(again, pack)  # reproducible

    path = save_pack(pack, tmp_path / "reader.safetensors", {"start": "af_heart"})
    assert torch.equal(read_pack_file(path), pack)


def test_fit_voice_refuses_what_it_cannot_fit(voice_clips, kokoro_small_random):
    items = voice_clips()
    with pytest.raises(ValueError, match="dev"):
        fit_voice(kokoro_small_random, (items, []), start="af_heart", progress=False)
    bare = TrainItem("x", items[0].token_ids, items[0].style)
    with pytest.raises(ValueError, match="without targets"):
        fit_voice(kokoro_small_random, ([bare], items[:1]), start="af_heart", progress=False)
    with pytest.raises(ValueError, match="start="):
        reference_voice_of((items, items))


def test_the_start_is_the_datasets_reference_voice():
    class Prepared:
        train, dev, test = [], [], []
        manifest = {"reference_voice": {"voice": "am_michael", "reason": "nearest"}}

    assert reference_voice_of(Prepared()) == "am_michael"


def test_fitted_voice_is_fitted_once_and_cached(voice_clips, kokoro_small_random, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from helpers.settings import Settings
    from helpers.train import fit_voice as FV

    items = voice_clips()
    data = SimpleNamespace(train=items[:2], dev=items[2:], split_hash="h1",
                           manifest={"name": "tiny", "settings_hash": "abc", "reference_voice": {"voice": "af_heart"}})  # fmt: skip
    S = Settings(mode="ci", runs_dir=tmp_path / "runs")
    cfg = FitVoiceConfig(epochs=1, lr=0.05, patience=1, crop_frames=4)
    pack, path = FV.fitted_voice(kokoro_small_random, data, S, cfg, progress=False)
    assert path.parent == tmp_path / "runs" / "voices" and path.name.startswith("tiny-")
    assert torch.equal(read_pack_file(path), pack) and not list(path.parent.glob("*.part*"))
    record = json.loads(path.with_suffix(".json").read_text())  # what the voice saw
    assert record["fit_ids"] == ["c0", "c1"] and record["early_stop_ids"] == ["c2"] and record["split_hash"] == "h1"
    assert record["early_stop_split"] == "dev" and "prosody half" in record["design"]
    calls = []

    def counted(*args, history, **kw):  # stands in for a second real fit
        calls.append(1)
        history.append({"epoch": 0, "dev_loss": 1.0})
        return pack

    monkeypatch.setattr(FV, "fit_voice", counted)
    again, path2 = FV.fitted_voice(kokoro_small_random, data, S, cfg, progress=False)
    assert path2 == path and torch.equal(again, pack) and not calls  # read back, not fitted again
    _, path3 = FV.fitted_voice(kokoro_small_random, data, S, FitVoiceConfig(epochs=2, crop_frames=4), progress=False)
    assert path3 != path and calls == [1] and path.is_file()  # another config: fitted again, the old file kept


def test_the_commands_expose_the_fitting_config():
    import argparse

    from helpers.train import fit_voice as FV

    p = argparse.ArgumentParser()
    FV.add_config_args(p)
    assert FV.config_from_args(p.parse_args([])) == FitVoiceConfig()
    cfg = FV.config_from_args(p.parse_args(["--epochs", "4", "--lr", "0.02", "--crop-frames", "8"]))
    assert (cfg.epochs, cfg.lr, cfg.crop_frames, cfg.patience) == (4, 0.02, 8, FitVoiceConfig().patience)


class _NoTestSplit:
    """A prepared dataset whose test split must never be read: reading it fails the test."""

    def __init__(self, train, dev):
        self.train, self.dev, self.split_hash, self.split_file = train, dev, "h", None
        self.manifest = {"name": "guarded", "settings_hash": "abc", "reference_voice": {"voice": "af_heart"}}

    @property
    def test(self):
        raise AssertionError("fit_voice read the test split")


def test_early_stopping_reads_dev_only(voice_clips, kokoro_small_random, tmp_path):
    """Test clips are never read, and the dev clips alone decide: other dev clips, another stopping point."""
    from helpers.settings import Settings
    from helpers.train import fit_voice as FV

    items = voice_clips()
    cfg = FitVoiceConfig(epochs=3, lr=0.05, patience=1, crop_frames=4)
    guarded = _NoTestSplit(items[:2], items[2:])
    history: list[dict] = []
    pack = fit_voice(kokoro_small_random, guarded, cfg, history=history, progress=False)
    pair = fit_voice(kokoro_small_random, (items[:2], items[2:]), cfg, start="af_heart", progress=False)
    assert torch.equal(pack, pair)  # the same as fitting on (train, dev): nothing else was read
    _, path = FV.fitted_voice(kokoro_small_random, guarded, Settings(mode="ci", runs_dir=tmp_path), cfg, progress=False)
    assert json.loads(path.with_suffix(".json").read_text())["early_stop_ids"] == ["c2"]
    other_dev = voice_clips(seed=5)[2:]  # other dev targets for the same text: the dev losses alone change
    other: list[dict] = []
    fit_voice(kokoro_small_random, (items[:2], other_dev), cfg, start="af_heart", history=other, progress=False)
    assert [r["train_loss"] for r in other[1:2]] == [r["train_loss"] for r in history[1:2]]  # same first epoch
    assert [r["dev_loss"] for r in other] != [r["dev_loss"] for r in history]  # scored on dev, not on train
