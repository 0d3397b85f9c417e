"""Layer matching's switch from teacher-forced to chained happens once, at a step fixed when training starts
(or planned once before it, as the recipe does after calibration): re-planning the number of steps cannot
switch it back, a resumed run keeps it, and every logged step says which mode it ran."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from helpers.train.config import TrainConfig
from helpers.train.items import TrainItem
from helpers.train.layerwise import chain_start_step
from helpers.train.trainer import Trainer
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder


def test_chain_start_step():
    assert chain_start_step(10, 0.5) == 5 and chain_start_step(6, 1.0) == 0 and chain_start_step(10, 0.3) == 7
    assert chain_start_step(10, 0.0) is None and chain_start_step(0, 0.5) is None
    with pytest.raises(ValueError, match="chain_fraction"):
        chain_start_step(10, 1.5)


def _trainer(fresh_small_model, out, **cfg) -> Trainer:
    g = np.random.default_rng(0)
    items = [TrainItem(f"s{i}", np.concatenate([[0], g.integers(1, 178, 7), [0]]),
                       (g.standard_normal(256) * 0.1).astype(np.float32)) for i in range(8)]  # fmt: skip
    model = fresh_small_model()
    report = replace_duration_encoder(model, SurgeryConfig(n_layers=1, d_state=4, expand=1, dropout=0.0))
    base = dict(steps=8, batch_size=4, warmup_steps=1, log_every=1, eval_every=1000, ckpt_every=2,
                sample_every=10_000, prosody_items=1, layer_steps=8, chain_fraction=0.5, out_dir=str(out))  # fmt: skip
    return Trainer(model, report.removed, items, TrainConfig(**{**base, **cfg}))


def _modes(out) -> dict[int, float]:
    with open(out / "metrics.csv") as f:
        return {int(r["step"]): float(r["chained"]) for r in csv.DictReader(f)}


def test_replanning_cannot_toggle_the_switch_and_each_step_logs_its_mode(fresh_small_model, tmp_path):
    tr = _trainer(fresh_small_model, tmp_path / "run")
    assert tr.chain_start == 4
    tr.fit(progress=False, stop_after=5)
    tr.cfg.layer_steps = 40  # what Milestones.replan does as the measured speed changes
    tr.cfg.steps = 8
    tr.fit(progress=False)
    assert _modes(tmp_path / "run") == {s: float(s > 4) for s in range(1, 9)}  # steps 5-8 chained, no way back
    with pytest.raises(ValueError, match="chained since step 4"):
        tr.plan_chain(40)


def test_the_recipe_plans_the_switch_once_after_its_teacher_forced_calibration(fresh_small_model, tmp_path):
    tr = _trainer(fresh_small_model, tmp_path / "run", layer_steps=0)  # the recipe builds it before planning
    assert tr.chain_start is None
    tr.cfg.layer_steps = 3  # calibration: three layer-matching steps
    tr.fit(progress=False, stop_after=3)
    assert tr.plan_chain(12) == 6 and tr.chain_start == 6
    tr.cfg.layer_steps, tr.cfg.steps = 12, 8
    tr.fit(progress=False)
    assert _modes(tmp_path / "run") == {s: float(s > 6) for s in range(1, 9)}
    late = _trainer(fresh_small_model, tmp_path / "late", layer_steps=0)
    late.step = 3
    with pytest.raises(ValueError, match="cannot chain from step 2: the run is at step 3"):
        late.plan_chain(4)
    # a budget shorter than the plan (CI's seconds on a slow CPU): the recipe chains from the step after calibration
    assert late.plan_chain(4, not_before=late.step) == 3 and late.chain_start == 3
    assert late.plan_chain(40, not_before=3) == 20, "a plan that leaves room is not moved"


def test_a_resumed_run_keeps_the_switch_it_started_with(fresh_small_model, tmp_path):
    tr = _trainer(fresh_small_model, tmp_path / "run")
    tr.fit(progress=False, stop_after=2)  # checkpoint at step 2, switch at 4
    again = _trainer(fresh_small_model, tmp_path / "run", layer_steps=40)  # a later plan would say 20
    assert again.chain_start == 20 and again.resume() and again.chain_start == 4
