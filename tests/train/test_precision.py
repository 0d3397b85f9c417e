"""Training arithmetic: the precision decision as a pure function of what the device can do (bf16 only where
the GPU has it natively, fp16 with loss scaling on older GPUs, fp32 elsewhere), asked of torch without
emulation; the teacher's targets stay fp32 inside the student's autocast; the GradScaler path steps as the
plain one does and is carried by checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import helpers.train.stage_losses as stage_losses
from helpers.train.config import TrainConfig
from helpers.train.items import TrainItem
from helpers.train.precision import Precision, choose_precision, precision_for
from helpers.train.trainer import Trainer
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder


def test_bf16_only_where_native_fp16_with_a_scaler_on_older_gpus_fp32_elsewhere():
    a100 = choose_precision("cuda", bf16_native=True)
    assert (a100.dtype, a100.scaler, a100.name) == (torch.bfloat16, False, "bf16")
    t4 = choose_precision("cuda", bf16_native=False)
    assert (t4.dtype, t4.scaler, t4.name) == (torch.float16, True, "fp16")
    for device in ("cpu", "mps"):
        p = choose_precision(device, bf16_native=True)
        assert (p.dtype, p.scaler) == (None, False)
    assert choose_precision("cuda", True, "fp32").dtype is None
    assert choose_precision("cuda", True, "fp16").scaler
    assert choose_precision("cuda", True, "bf16").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="no native bf16"):
        choose_precision("cuda", False, "bf16")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        choose_precision("cpu", False, "fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        choose_precision("cuda", True, "half")
    assert "fp16 with a GradScaler" in t4.describe() and "teacher targets in fp32" in t4.describe()


def test_precision_for_asks_torch_without_emulation(monkeypatch):
    asked = []

    def is_bf16_supported(including_emulation=True):  # a T4: bf16 only by emulation
        asked.append(including_emulation)
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert precision_for("cuda").name == "fp16" and asked == [False]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100
    assert precision_for(torch.device("cuda", 0)).name == "bf16"
    assert precision_for("cpu").name == "fp32"


def _items(n: int = 8, length: int = 9) -> list[TrainItem]:
    g = np.random.default_rng(0)
    return [
        TrainItem(f"s{i}", np.concatenate([[0], g.integers(1, 178, length - 2), [0]]),
                  (g.standard_normal(256) * 0.1).astype(np.float32))  # fmt: skip
        for i in range(n)
    ]


def _trainer(fresh_small_model, out, **cfg) -> Trainer:
    model = fresh_small_model()
    report = replace_duration_encoder(model, SurgeryConfig(n_layers=1, d_state=4, expand=1, dropout=0.0))
    base = dict(steps=4, batch_size=4, warmup_steps=1, log_every=1, eval_every=1000, ckpt_every=1000,
                sample_every=10_000, prosody_items=1, out_dir=str(out))  # fmt: skip
    return Trainer(model, report.removed, _items(), TrainConfig(**{**base, **cfg}))


@pytest.mark.parametrize("layer_steps", [0, 4])
def test_teacher_targets_stay_fp32_inside_a_bf16_autocast(fresh_small_model, tmp_path, monkeypatch, layer_steps):
    """CPU autocast in bf16 stands in for the GPU's: the student's forward runs in bf16, the teacher's layer
    outputs, logits and rounded durations in fp32 (a bf16 logit sum flips roundings)."""
    tr = _trainer(fresh_small_model, tmp_path / "run", layer_steps=layer_steps)
    tr.precision = Precision(torch.bfloat16, False, "test")
    seen = {}
    real_durations, real_trace, real_logits = (
        stage_losses.durations_from_logits, stage_losses.teacher_trace, stage_losses.duration_logits)

    def durations(logits, *a, **k):
        seen["durations"] = (logits.dtype, torch.is_autocast_enabled("cpu"))
        return real_durations(logits, *a, **k)

    def trace(*a, **k):
        out = real_trace(*a, **k)
        seen["trace"] = ({y.dtype for _, y in out}, torch.is_autocast_enabled("cpu"))
        return out

    def logits(*a, **k):
        out = real_logits(*a, **k)
        seen.setdefault("logits", []).append(out.dtype)
        return out

    monkeypatch.setattr(stage_losses, "durations_from_logits", durations)
    monkeypatch.setattr(stage_losses, "teacher_trace", trace)
    monkeypatch.setattr(stage_losses, "duration_logits", logits)
    row = tr.train_step()
    assert row is not None and np.isfinite(row["loss"])
    if layer_steps:
        assert seen["trace"] == ({torch.float32}, False)
    else:
        assert seen["durations"] == (torch.float32, False)
        assert seen["logits"] == [torch.bfloat16, torch.float32], "student in bf16, teacher in fp32"


def test_the_grad_scaler_path_steps_like_the_plain_one_and_is_checkpointed(fresh_small_model, tmp_path):
    plain = _trainer(fresh_small_model, tmp_path / "plain")
    scaled = _trainer(fresh_small_model, tmp_path / "scaled")
    scaled.precision = Precision(None, True, "test")  # loss scaling without fp16: the same update expected
    scaled.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    for tr in (plain, scaled):
        for _ in range(2):
            tr.train_step()
    for (name, a), b in zip(plain.model.named_parameters(), scaled.model.parameters()):
        if a.requires_grad:
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-7), name
    state = scaled.state_dict()
    assert state["scaler"]["scale"] == scaled.scaler.get_scale()
    again = _trainer(fresh_small_model, tmp_path / "again")
    again.scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    again.load_state_dict(state)
    assert again.scaler.get_scale() == scaled.scaler.get_scale()
