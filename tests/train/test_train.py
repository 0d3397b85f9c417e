"""Training: only trainable tensors move, the loss falls, resume is exact, bad checkpoints and NaNs are handled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.train.config import TrainConfig, TrainingDiverged
from helpers.train.items import TrainItem, bucketed_batches
from helpers.train.trainer import Trainer
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

SMALL = SurgeryConfig(n_layers=1, d_state=4, expand=1)


def _items(n: int, seed: int = 0, targets: bool = False) -> list[TrainItem]:
    g = np.random.default_rng(seed)
    items = []
    for i in range(n):
        T = int(g.integers(6, 14))
        ids = np.concatenate([[0], g.integers(1, 178, T - 2), [0]])
        it = TrainItem(id=f"s{i}", token_ids=ids, style=(g.standard_normal(256) * 0.1).astype(np.float32))
        if targets:
            it.durations = g.integers(1, 4, T)
            F = int(it.durations.sum())
            it.f0 = np.abs(g.normal(150, 30, 2 * F)).astype(np.float32)
            it.energy = g.normal(0, 1, 2 * F).astype(np.float32)
            it.mel = g.normal(-1, 1, (80, 2 * F)).astype(np.float32)
        items.append(it)
    return items


def _trainer(fresh_small_model, tmp_path, stage="distill", **cfg):
    model = fresh_small_model()
    report = replace_duration_encoder(model, SMALL)
    base = dict(
        stage=stage,
        steps=8,
        batch_size=4,
        warmup_steps=1,
        log_every=1,
        eval_every=1000,
        ckpt_every=2,
        sample_every=10_000,
        prosody_items=2,
        mel_crop_frames=6,
        out_dir=str(tmp_path / "run"),
    )
    base.update(cfg)
    items = _items(12, targets=stage == "finetune")
    return Trainer(model, report.removed, items, TrainConfig(**base), val_items=items[:3])


def test_bucketed_batches_are_reproducible_and_cover_everything():
    lengths = [5, 9, 7, 3, 11, 4, 8]
    a, b = bucketed_batches(lengths, 3, seed=1, epoch=0), bucketed_batches(lengths, 3, seed=1, epoch=0)
    assert a == b and sorted(i for batch in a for i in batch) == list(range(7))
    assert bucketed_batches(lengths, 3, seed=1, epoch=1) != a or len(a) == 1


def test_one_step_changes_only_trainable_tensors(fresh_small_model, tmp_path):
    tr = _trainer(fresh_small_model, tmp_path)
    before = {k: v.detach().clone() for k, v in tr.model.state_dict().items()}
    assert tr.train_step() is not None
    trainable = set(tr.trainable_names)
    changed = {k for k, v in tr.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and changed <= trainable


def test_loss_decreases_on_a_tiny_batch(fresh_small_model, tmp_path):
    tr = _trainer(fresh_small_model, tmp_path, steps=25, batch_size=12, lr=3e-3, warmup_steps=1)
    losses = [tr.train_step()["loss"] for _ in range(25)]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3]), losses


def test_finetune_step_runs_with_recording_targets(fresh_small_model, tmp_path):
    tr = _trainer(fresh_small_model, tmp_path, stage="finetune", batch_size=2, mel_items=1)
    row = tr.train_step()
    assert row is not None and np.isfinite(row["mel"]) and np.isfinite(row["f0"])


def test_interrupt_and_resume_matches_an_uninterrupted_run(fresh_small_model, tmp_path):
    full = _trainer(fresh_small_model, tmp_path / "a", steps=6, ckpt_every=3)
    torch.manual_seed(123)
    ref = [r["loss"] for r in (full.train_step() for _ in range(6))]

    first = _trainer(fresh_small_model, tmp_path / "b", steps=6, ckpt_every=3)
    torch.manual_seed(123)
    first.fit(progress=False, stop_after=3)  # "crash" after step 3 (checkpoint written at 3)
    torch.manual_seed(999)  # a new process has other RNG state: resume must restore it
    second = _trainer(fresh_small_model, tmp_path / "b", steps=6, ckpt_every=3)
    assert second.resume() and second.step == 3
    rest = [r["loss"] for r in (second.train_step() for _ in range(3))]
    got = [r["loss"] for r in first.history[:3]] + rest
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_damaged_checkpoint_is_detected_and_the_previous_used(fresh_small_model, tmp_path):
    tr = _trainer(fresh_small_model, tmp_path, steps=4, ckpt_every=2)
    tr.fit(progress=False)
    newest = tr.ckpt.checkpoints()[0]
    assert newest.name == "step-0000004.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a crash mid-copy
    again = _trainer(fresh_small_model, tmp_path, steps=4, ckpt_every=2)
    with pytest.warns(UserWarning, match="skipping checkpoint step-0000004.pt"):
        assert again.resume()
    assert again.step == 2


def test_nan_loss_is_skipped_reported_and_stops_after_several(fresh_small_model, tmp_path):
    tr = _trainer(fresh_small_model, tmp_path, max_bad_steps=3)
    real = tr.compute_loss
    calls = {"n": 0}

    def flaky(batch):
        calls["n"] += 1
        loss, terms = real(batch)
        return (loss * float("nan"), terms) if calls["n"] in (2, 4, 5, 6) else (loss, terms)

    tr.compute_loss = flaky
    assert tr.train_step() is not None
    before = {k: v.detach().clone() for k, v in tr.model.state_dict().items()}
    with pytest.warns(UserWarning, match="non-finite loss"):
        assert tr.train_step() is None
    assert all(torch.equal(v, before[k]) for k, v in tr.model.state_dict().items()), (
        "a skipped step must change nothing"
    )
    assert tr.train_step() is not None  # a good step resets the count
    with pytest.warns(UserWarning), pytest.raises(TrainingDiverged, match="3 non-finite losses in a row"):
        for _ in range(3):
            tr.train_step()
    assert any(r.get("skipped") for r in tr.history)


def test_cumulative_duration_loss_sees_a_bias_the_per_token_loss_hides():
    from helpers.train.losses import cumulative_duration_loss, duration_loss

    T = 40
    target = torch.full((1, T, 50), 0.0)
    target[..., :6] = 1.0  # 6 frames per token
    valid = torch.ones(1, T, dtype=torch.bool)
    valid[0, 30:] = False  # the last 10 positions are padding
    # logits whose sigmoids sum to 6.1 frames per token: a tenth of a frame too long everywhere
    p = torch.full((1, T, 50), 0.0)
    p[..., :6] = 1.0
    p[..., 6] = 0.1
    logits = torch.logit(p.clamp(1e-6, 1 - 1e-6))
    l1, _ = duration_loss(logits, target, valid)
    cum = cumulative_duration_loss(logits, target, valid)
    assert l1 == pytest.approx(0.1, abs=1e-3)  # per token: a tenth of a frame
    assert cum == pytest.approx(0.1 * (30 + 1) / 2, abs=1e-2)  # edges: 0.1, 0.2, ... 3.0 frames, mean 1.55
    logits_pad = logits.clone()
    logits_pad[0, 30:] = 10.0  # garbage on padding changes nothing
    assert cumulative_duration_loss(logits_pad, target, valid) == pytest.approx(float(cum))


def test_drift_term_is_logged_and_a_run_resumed_by_newer_code_keeps_its_csv_columns(fresh_small_model, tmp_path):
    import csv

    tr = _trainer(fresh_small_model, tmp_path, w_dur_cum=0.5)
    row = tr.train_step()
    assert row is not None and np.isfinite(row["dur_cum"]) and row["dur_cum"] > 0
    log = tmp_path / "old" / "metrics.csv"
    log.parent.mkdir()
    log.write_text("step,loss\n1,0.5\n")  # a file written before the drift column existed
    from helpers.train.runlog import RunLog

    RunLog(log.parent).write({"step": 2, "loss": 0.4, "dur_cum": 1.0})
    rows = list(csv.reader(log.open()))
    assert rows == [["step", "loss"], ["1", "0.5"], ["2", "0.4"]]
