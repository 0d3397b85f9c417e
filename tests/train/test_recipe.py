"""The recipe's time budget: the planned steps follow the measured speed, so a run neither ends early nor is cut
before its learning rate has decayed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from helpers.train.config import TrainConfig
from helpers.train.recipe import Milestones


def _fake(step: int, steps: int, layer_steps: int):
    return SimpleNamespace(step=step, cfg=TrainConfig(steps=steps, layer_steps=layer_steps))


def test_replan_fits_both_phases_into_the_time_left():
    ms = Milestones(None, [], [], [], out=None, budget_s=100.0, layer_fraction=0.5)
    ms.sec = {"phase1": 1.0, "phase2": 0.5}
    tr = _fake(step=10, steps=40, layer_steps=20)  # planned from slow first steps
    ms.replan(tr, {"layer": 0.3, "sec_per_step": 1.0}, t=10.0)
    left = (tr.cfg.layer_steps - 10) * 1.0 + (tr.cfg.steps - tr.cfg.layer_steps) * 0.5
    assert left == pytest.approx(90.0, abs=1.5)  # exactly the 90 s that remain
    assert tr.cfg.layer_steps == pytest.approx(0.5 * tr.cfg.steps, abs=1)


def test_replan_in_phase_two_and_when_time_is_short():
    ms = Milestones(None, [], [], [], out=None, budget_s=100.0, layer_fraction=0.4)
    ms.sec = {"phase1": 2.0, "phase2": 1.0}
    tr = _fake(step=60, steps=70, layer_steps=30)
    ms.replan(tr, {"dur_l1": 0.3, "sec_per_step": 1.0}, t=70.0)
    assert (tr.cfg.steps, tr.cfg.layer_steps) == (90, 30)  # 30 s left at 1 s a step; phase 1 is over
    ms.replan(tr, {"dur_l1": 0.3, "sec_per_step": 1.0}, t=99.9)
    assert tr.cfg.steps == 61  # never behind the current step
    tr.step = 61
    ms.replan(tr, {"dur_l1": 0.3, "sec_per_step": 1.0}, t=99.9)  # not a multiple of 10: only the speed is noted
    assert tr.cfg.steps == 61


def test_train_config_defaults_are_the_recipe_and_stage2_keeps_its_fine_tuning_rate():
    d = TrainConfig.for_mode("full", "distill")
    assert (d.lr, d.layer_fraction, d.chain_fraction, d.layer_steps) == (1e-3, 1.0, 0.5, d.steps)
    assert TrainConfig.for_mode("full", "distill", layer_fraction=0.0).layer_steps == 0, "the end-to-end variant"
    f = TrainConfig.for_mode("full", "finetune")
    assert (f.lr, f.warmup_steps, f.prosody_items) == (1e-4, 100, 4)
    assert TrainConfig.for_mode("ci", "finetune", lr=3e-4).lr == 3e-4
