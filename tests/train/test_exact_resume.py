"""Resume is exact with listening samples and evaluation on schedule (issue 16, item 5).

A sample is written right after the checkpoint it would follow. If synthesis moved the global RNG (the
student's dropout in stage 1, the random mel crops in stage 2 both draw from it), the uninterrupted run
would diverge from one that crashed after that checkpoint and resumed. Both must match bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.train.config import TrainConfig
from helpers.train.items import TrainItem
from helpers.train.trainer import Trainer
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

SMALL = SurgeryConfig(n_layers=1, d_state=4, expand=1)


def _items(n: int, targets: bool) -> list[TrainItem]:
    g = np.random.default_rng(0)
    items = []
    for i in range(n):
        T = int(g.integers(6, 10))
        it = TrainItem(
            f"s{i}",
            np.array([0, *g.integers(1, 178, T - 2), 0]),
            (g.standard_normal(256) * 0.1).astype(np.float32),
        )
        if targets:
            it.durations = g.integers(2, 4, T)
            F = int(it.durations.sum())
            it.f0 = np.abs(g.normal(150, 30, 2 * F)).astype(np.float32)
            it.energy = g.normal(0, 1, 2 * F).astype(np.float32)
            it.mel = g.normal(-1, 1, (80, 2 * F)).astype(np.float32)
        items.append(it)
    return items


@pytest.fixture(scope="module")
def operated():
    """One operated small model for every run here: each run starts from the same snapshot of it."""
    from helpers.kokoro.loading import load_kokoro

    model = load_kokoro("random", size="small", seed=0, verbose=False).model
    report = replace_duration_encoder(model, SMALL)
    return model, report.removed, {k: v.clone() for k, v in model.state_dict().items()}


def _trainer(operated, out, stage):
    model, teacher, initial = operated
    model.load_state_dict(initial)  # as freshly built: a new process would start from the same weights
    cfg = TrainConfig(
        stage=stage, steps=4, batch_size=2, warmup_steps=1, log_every=1, eval_every=2, ckpt_every=2,
        sample_every=2, prosody_items=1, mel_items=1, mel_crop_frames=4, out_dir=str(out), sample_text="Hi.",
    )  # fmt: skip
    items = _items(5, targets=stage == "finetune")
    return Trainer(model, teacher, items[:4], cfg, val_items=items[4:])


def _run(history):
    return [(r["step"], r["loss"], r.get("val_dur_within_1")) for r in history]


@pytest.mark.parametrize("stage", ["distill", "finetune"])
def test_resume_with_samples_and_evaluation_matches_an_uninterrupted_run(operated, tmp_path, stage):
    pack = torch.randn(510, 1, 256, generator=torch.Generator().manual_seed(1)) * 0.1
    torch.manual_seed(123)
    full = _trainer(operated, tmp_path / "full", stage)
    full.fit(voice_pack=pack, progress=False)
    expected = _run(full.history)
    final = {k: v.clone() for k, v in full.model.predictor.text_encoder.state_dict().items()}

    torch.manual_seed(123)
    first = _trainer(operated, tmp_path / "cut", stage)
    first.fit(voice_pack=pack, progress=False, stop_after=2)  # checkpoint, then a sample, then a "crash"
    assert (tmp_path / "cut" / "samples" / "student-step000002.wav").is_file()
    torch.manual_seed(999)  # a new process starts with other RNG state: the checkpoint restores it
    second = _trainer(operated, tmp_path / "cut", stage)
    assert second.resume() and second.step == 2
    second.fit(voice_pack=pack, progress=False)

    assert _run(first.history) + _run(second.history) == expected
    assert [r["step"] for r in full.history if "val_dur_within_1" in r] == [2, 4]  # evaluation on schedule
    got = second.model.predictor.text_encoder.state_dict()
    assert all(torch.equal(got[k], v) for k, v in final.items()), (
        "resumed weights differ from the uninterrupted run"
    )
