"""The step's loss, one function per stage and phase: `Trainer.compute_loss` picks by stage and step, and each
term enters the loss with its TrainConfig weight (what each term measures: test_train, test_stage2, test_layerwise)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.train import stage_losses as SL
from helpers.train.config import TrainConfig
from helpers.train.items import TrainItem
from helpers.train.trainer import Trainer
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder


def test_compute_loss_picks_the_stage_and_phase(fresh_small_model, tmp_path, monkeypatch):
    seen = []
    for name in ("layer_matching", "distillation", "fine_tuning"):
        spy = lambda tr, batch, name=name: seen.append((name, tr.step)) or (torch.zeros(()), {})
        monkeypatch.setattr(SL, name, spy)
    model = fresh_small_model()
    teacher = replace_duration_encoder(model, SurgeryConfig(d_state=4, expand=1)).removed
    items = [TrainItem(f"s{i}", np.array([0, 5 + i, 6, 0]), np.zeros(256, np.float32)) for i in range(2)]
    tr = Trainer(model, teacher, items, TrainConfig(stage="distill", layer_steps=2, out_dir=str(tmp_path)))
    for step in range(4):
        tr.step = step
        tr.compute_loss(None)
    assert seen == [("layer_matching", 0), ("layer_matching", 1), ("distillation", 2), ("distillation", 3)]
    seen.clear()
    tr.cfg.stage, tr.step = "finetune", 0  # stage 2 never layer-matches, whatever layer_steps says
    tr.compute_loss(None)
    assert seen == [("fine_tuning", 0)]


def test_each_term_enters_with_its_weight_and_is_logged_unweighted():
    cfg = TrainConfig(w_feature=2.0, w_f0=0.0, w_layer=0.5)
    total, logged = SL.weighted(cfg, {"feature": torch.tensor(1.5), "f0": torch.tensor(3.0)})
    assert float(total) == 3.0 and logged == {"feature": 1.5, "f0": 3.0}, "weight 0: out of the loss, still logged"
    assert float(SL.weighted(cfg, {"layer": torch.tensor(4.0)})[0]) == 2.0
    with pytest.raises(KeyError):
        SL.weighted(cfg, {"pitch": torch.tensor(1.0)})  # a term without a weight is a mistake, not a silent 0
