"""Runs are kept apart: CI and full mode write to different folders, and resume refuses a checkpoint of
another run (stage, design, data, schedule) with a message that says what differs and what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.settings import Settings
from helpers.train.config import TrainConfig
from helpers.train.items import TrainItem
from helpers.train.resumable import ResumeRefused
from helpers.train.trainer import Trainer
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

SMALL = SurgeryConfig(n_layers=1, d_state=4, expand=1)


def _items(n: int, seed: int = 0, targets: bool = False) -> list[TrainItem]:
    g = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ids = np.concatenate([[0], g.integers(1, 178, 8), [0]])
        it = TrainItem(id=f"s{i}", token_ids=ids, style=(g.standard_normal(256) * 0.1).astype(np.float32))
        if targets:
            it.durations = np.full(len(ids), 2)
            it.f0, it.energy = np.full(4 * len(ids), 120.0), np.zeros(4 * len(ids))
            it.mel = np.zeros((80, 4 * len(ids)), np.float32)
        out.append(it)
    return out


def test_ci_and_full_mode_use_separate_run_folders(monkeypatch, tmp_path):
    monkeypatch.delenv("KOKORO_MAMBA_RUNS", raising=False)
    ci, full = Settings.from_env(mode="ci"), Settings.from_env(mode="full")
    assert ci.runs_dir != full.runs_dir and ci.runs_dir.name == "ci" and full.runs_dir.name == "full"
    assert TrainConfig.for_mode("ci").out_dir == str(ci.runs_dir / "distill")
    assert TrainConfig.for_mode("full", "finetune").out_dir == str(full.runs_dir / "finetune")
    monkeypatch.setenv("KOKORO_MAMBA_RUNS", str(tmp_path / "drive"))  # e.g. Google Drive on Colab
    assert Settings.from_env(mode="full").runs_dir == tmp_path / "drive" / "full"


def _trainer(model, out, items=None, **cfg) -> Trainer:
    base = dict(steps=4, batch_size=4, warmup_steps=1, eval_every=1000, ckpt_every=2, sample_every=10_000)
    base.update(prosody_items=1, out_dir=str(out), **cfg)
    return Trainer(model, model.teacher, items or _items(8), TrainConfig(**base))


def _operated(surgery: SurgeryConfig = SMALL):
    from helpers.kokoro.loading import load_kokoro

    model = load_kokoro("random", size="small", seed=0, verbose=False).model
    model.teacher = replace_duration_encoder(model, surgery).removed
    return model


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory):
    """(model, run folder holding a step-2 checkpoint). A refused resume loads nothing, so the model is reused."""
    out = tmp_path_factory.mktemp("run")
    model = _operated()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: on a busy 2-core machine two threads are many times slower
    try:
        _trainer(model, out).fit(progress=False, stop_after=2)
    finally:
        torch.set_num_threads(threads)
    return model, out


@pytest.mark.parametrize(
    "change, named",
    [
        (dict(stage="finetune", items=_items(8, targets=True)), r"stage: 'distill' -> 'finetune'"),
        (dict(items=_items(8, seed=1)), r"data items: '[0-9a-f]{16}' -> '[0-9a-f]{16}'"),
        (dict(batch_size=2), r"data batch_size: 4 -> 2"),
        (dict(lr=1e-4), r"schedule lr: 0.001 -> 0.0001"),
        (dict(steps=8), r"schedule steps: 4 -> 8"),
        ("design", r"design d_state: 4 -> 8"),
    ],
)
def test_resume_refuses_another_runs_checkpoint(checkpointed, change, named):
    model, out = checkpointed
    if change == "design":
        model, change = _operated(SurgeryConfig(n_layers=1, d_state=8, expand=1)), {}
    again = _trainer(model, out, **change)
    with pytest.raises(ResumeRefused, match=named) as refused:
        again.resume()
    assert "step-0000002.pt" in str(refused.value) and "another out_dir" in str(refused.value)
    assert again.step == 0, "nothing was loaded"


def test_resume_accepts_its_own_run_with_other_cosmetic_settings(checkpointed):
    model, out = checkpointed
    again = _trainer(model, out, log_every=5, w_f0=2.0)  # logging and loss weights may change
    assert again.resume() and again.step == 2


def test_resume_without_a_checkpoint_says_it_starts_over(tmp_path, capsys):
    """Issue 27: `--resume` in a folder with no checkpoint used to start at step 0 without a word."""
    trainer = _trainer(_operated(), tmp_path / "run")
    assert trainer.resume() is False and trainer.step == 0
    assert f"resume: no checkpoint in {tmp_path / 'run' / 'checkpoints'}: starting from step 0" in capsys.readouterr().out
