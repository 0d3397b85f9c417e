"""The same-recipe LSTM control (the Trainer on an un-operated model), dev-split checkpoint selection, and
`helpers.train.stage2.finetune` for both students: matched dropout, recorded parameters, start and split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers.kokoro.forward import style_for
from helpers.kokoro.g2p import phonemes_to_ids
from helpers.train.config import TrainConfig
from helpers.train.items import TrainItem
from helpers.train.selection import RULES
from helpers.train.stage2 import finetune, stage2_table
from helpers.train.trainer import Trainer
from helpers.transplant.adapters import (
    adapter_block,
    adapter_info,
    describe_adapter,
    read_adapter,
    save_adapter,
)
from helpers.transplant.peft import changed_tensors, snapshot
from helpers.transplant.surgery import DURATION_ENCODER_PATH, SurgeryConfig, replace_duration_encoder

KEEP_BY = RULES["finetune"][0]  # the dev score stage 2 keeps its step by

SMALL = SurgeryConfig(n_layers=1, d_state=4, expand=1)
ENC = DURATION_ENCODER_PATH
PHONEMES = ["hˈɛlO, wˈɜɹld.", "ðə kˈæt sˈæt.", "wˈʌt ɪz ɪt?", "nˈO pˈʌŋktʃuˌeɪʃən", "ʃˈi sˈɛd jˈɛs."]


def _items(seed: int = 0) -> list[TrainItem]:
    """Recordings' targets for a few sentences (random but plausible: F0 with unvoiced frames, log-mels)."""
    g = np.random.default_rng(seed)
    items = []
    for i, ph in enumerate(PHONEMES):
        ids = np.asarray(phonemes_to_ids(ph))
        dur = g.integers(1, 4, len(ids))
        F = int(dur.sum())
        f0 = np.abs(g.normal(150, 30, 2 * F)).astype(np.float32)
        f0[g.random(2 * F) < 0.3] = 0.0
        style = (g.standard_normal(256) * 0.1).astype(np.float32)
        mel = g.normal(-1, 1, (80, 2 * F)).astype(np.float32)
        items.append(
            TrainItem(f"u{i}", ids, style, dur, f0, g.normal(0, 1, 2 * F).astype(np.float32), mel, len(ph))
        )
    return items


def _operated(factory):
    model = factory()
    replace_duration_encoder(model, SMALL)
    return model


def _cfg(tmp_path, **kw):
    base = dict(
        stage="finetune", steps=3, batch_size=2, prosody_items=1, mel_items=0, warmup_steps=1, lr=1e-3
    )
    return TrainConfig(**{**base, "out_dir": str(tmp_path / "run"), **kw})


def test_the_lstm_control_trains_only_the_duration_encoders_lstms(fresh_small_model, tmp_path):
    model = fresh_small_model()  # as shipped: no surgery
    tr = Trainer(model, None, _items(), _cfg(tmp_path))
    assert tr.trainable_names and all(n.startswith(f"{ENC}.lstms.0.") for n in tr.trainable_names)
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".lstms.1." in n), "norms frozen"
    tr._train_mode()
    assert model.get_submodule(f"{ENC}.lstms.0").training, "cuDNN's RNN backward needs train mode"
    before = snapshot(model)
    tr.fit(progress=False)
    changed = changed_tensors(before, model)
    assert changed and all(k.startswith(f"{ENC}.lstms.0.") for k in changed)
    st = tr.save_adapter()
    assert adapter_block(adapter_info(st.with_suffix(""))) == "lstm"


def test_the_lstm_control_is_stage_2_only(fresh_small_model, tmp_path):
    with pytest.raises(ValueError, match="finetune"):
        Trainer(
            fresh_small_model(),
            fresh_small_model().predictor.text_encoder,
            _items(),
            _cfg(tmp_path, stage="distill"),
        )


def test_stage2_adapter_keeps_the_held_out_best_step(fresh_small_model, tmp_path, monkeypatch):
    model = _operated(fresh_small_model)
    items = _items()
    tr = Trainer(model, None, items[:3], _cfg(tmp_path, steps=4, eval_every=1), items[3:])
    scripted = iter([30.0, 10.0, 20.0, 40.0])  # held-out boundary error per step: step 2 is the best
    monkeypatch.setattr(tr, "evaluate", lambda: {"val_dur_within_1": 0.5, KEEP_BY: next(scripted)})
    states = {}
    tr.callbacks.append(
        lambda row, t: states.__setitem__(row["step"], snapshot(t.model.predictor.text_encoder))
    )
    tr.fit(progress=False)
    info, tensors = read_adapter(tr.save_adapter().with_suffix(""))
    assert "kept: step 2 of 4" in describe_adapter(tmp_path / "run" / "adapter")
    meta = info["metadata"]
    assert meta["kept_step"] == 2 and meta["best_scores"][KEEP_BY] == 10.0 and meta["steps"] == 4
    assert all(torch.equal(tensors[k], v) for k, v in states[2].items()), "the adapter holds step 2's weights"
    assert not all(torch.equal(tensors[k], v) for k, v in states[4].items())
    last = model.predictor.text_encoder.state_dict()
    assert all(torch.equal(last[k], v) for k, v in states[4].items()), (
        "the model itself keeps its last weights"
    )
    again = Trainer(_operated(fresh_small_model), None, items[:3], tr.cfg, items[3:])
    assert (
        again.resume() and again.step == 4 and again.kept.step == 2
    )  # resume knows the best and its weights
    assert all(torch.equal(again.kept.weights[k], v) for k, v in states[2].items())


def test_the_kept_step_is_the_lowest_held_out_boundary_error(fresh_small_model, tmp_path):
    items = _items()
    tr = Trainer(_operated(fresh_small_model), None, items[:3], _cfg(tmp_path, eval_every=1), items[3:])
    tr.fit(progress=False)
    evals = [r for r in tr.history if KEEP_BY in r]
    assert [r["step"] for r in evals] == [1, 2, 3]
    best = min(evals, key=lambda r: r[KEEP_BY])
    assert tr.kept.step == best["step"] and tr.kept.score == best[KEEP_BY]


def test_finetune_trains_both_students_by_one_recipe(kokoro_small_random, fresh_small_model, tmp_path):
    model = _operated(fresh_small_model)
    save_adapter(model, tmp_path / "stage1")  # an untrained stage-1 Mamba stands in for the real one
    items = _items()
    pack = torch.randn(510, 1, 256, generator=torch.Generator().manual_seed(3)) * 0.1
    before = snapshot(kokoro_small_random.model)
    cfg = _cfg(tmp_path, steps=2, eval_every=1, sample_every=100)
    runs = {
        s: finetune(
            kokoro_small_random,
            (items[:3], items[3:]),
            pack,
            cfg,
            s,
            init,
            tmp_path / s,
            fresh_small_model,
            progress=False,
            samples=False,
        )  # fmt: skip
        for s, init in [("mamba", tmp_path / "stage1"), ("lstm", None)]
    }
    assert not changed_tensors(before, kokoro_small_random.model), "the loaded Kokoro is never trained"
    for s, run in runs.items():
        assert adapter_block(adapter_info(run.adapter)) == s and run.adapter == tmp_path / s / "adapter"
        assert dataclasses.replace(run.trainer.cfg, out_dir="") == dataclasses.replace(cfg, out_dir="")
        assert (
            run.trainer.step == 2
            and run.kept_step in (0, 1, 2)  # 0: the start, when no step beat it on dev
            and run.start_scores.keys() == run.kept_scores.keys()
        )
        for it in run.trainer.items + run.trainer.val_items:  # every item styled with the fitted pack
            assert np.array_equal(it.style, style_for(pack, it.n_phonemes).reshape(-1).numpy())
    assert runs["lstm"].start_scores != runs["mamba"].start_scores  # different students, same dev items
    metas = {s: adapter_info(run.adapter)["metadata"] for s, run in runs.items()}
    assert (
        metas["mamba"]["init_adapter"] == str(tmp_path / "stage1") and metas["lstm"]["init_adapter"] is None
    )
    assert metas["mamba"]["dropout"] == metas["lstm"]["dropout"] == 0.0  # matched: the LSTMs never had any
    assert all(m.p == 0.0 for m in runs["mamba"].trainer.model.predictor.text_encoder.modules()
               if isinstance(m, torch.nn.Dropout)) and SMALL.dropout > 0  # fmt: skip
    for s, run in runs.items():
        trainable = sum(p.numel() for p in run.trainer.model.parameters() if p.requires_grad)
        assert metas[s]["trainable_params"] == trainable > 0
        assert metas[s]["train_ids"] == ["u0", "u1", "u2"] and metas[s]["selection_ids"] == ["u3", "u4"]
    assert metas["mamba"]["trainable_params"] != metas["lstm"]["trainable_params"]
    table = stage2_table(runs["mamba"], runs["lstm"])
    assert list(table.index) == [
        "LSTM as shipped",
        "LSTM + stage 2 (control)",
        "Mamba after stage 1",
        "Mamba after stage 2",
    ]
    assert table.loc["LSTM + stage 2 (control)", "boundary_ms"] == runs["lstm"].kept_scores["val_boundary_ms"]
    with pytest.raises(ValueError, match="stage-1 mamba adapter"):
        finetune(
            kokoro_small_random,
            (items[:3], items[3:]),
            pack,
            cfg,
            "mamba",
            None,
            tmp_path / "x",
            fresh_small_model,
        )
    # checkpoints of an older run without a stage2.json record (an older notebook 05): set aside, never resumed
    old = sorted(p.name for p in (tmp_path / "lstm" / "checkpoints").glob("*.pt"))
    (tmp_path / "lstm" / "stage2.json").unlink()
    again = finetune(kokoro_small_random, (items[:3], items[3:]), pack, dataclasses.replace(cfg, steps=3), "lstm", None,
                     tmp_path / "lstm", fresh_small_model, progress=False, samples=False)  # fmt: skip
    assert again.trainer.step == 3 and old
    assert all(any((tmp_path / "lstm").rglob(name)) for name in old) and len(
        list((tmp_path / "lstm").rglob("*.pt"))
    ) > len(old)


class _Prepared:
    """A prepared dataset whose test split must never be read by stage 2 (reading it fails the test)."""

    def __init__(self, train, dev):
        self.train, self.dev, self.split_hash, self.split_file = train, dev, "abc123", "somewhere/split.json"

    @property
    def test(self):
        raise AssertionError("stage 2 read the test split")


def test_stage2_trains_on_train_and_chooses_on_dev_only(kokoro_small_random, fresh_small_model, tmp_path):
    """finetune never reads data.test; the step kept is scored on the dev clips, and the adapter says so."""
    items = _items()
    pack = torch.randn(510, 1, 256, generator=torch.Generator().manual_seed(3)) * 0.1
    cfg = _cfg(tmp_path, steps=2, eval_every=1, sample_every=100)
    run = finetune(kokoro_small_random, _Prepared(items[:3], items[3:]), pack, cfg, "lstm", None, tmp_path / "g",
                   fresh_small_model, progress=False, samples=False)  # fmt: skip
    assert [it.id for it in run.trainer.items] == ["u0", "u1", "u2"]
    assert [it.id for it in run.trainer.val_items] == ["u3", "u4"]  # the Trainer's held-out items: dev
    meta = adapter_info(run.adapter)["metadata"]
    assert (meta["split_hash"], meta["selection_split"], meta["selection_ids"]) == (
        "abc123",
        "dev",
        ["u3", "u4"],
    )
    assert meta["selected_by"].startswith("dev ")
    evals = [r[KEEP_BY] for r in run.trainer.history if KEEP_BY in r]
    assert len(evals) == 2 and run.kept_scores[KEEP_BY] == min([run.start_scores[KEEP_BY], *evals])  # on dev
    assert run.kept_step == 0 or run.kept_scores[KEEP_BY] < run.start_scores[KEEP_BY], (
        "a kept step beats the start"
    )
