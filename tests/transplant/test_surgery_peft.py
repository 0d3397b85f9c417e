"""Mamba surgery and PEFT freezing: shapes, masks, padded batches, gradients, adapters."""

from __future__ import annotations

import pytest
import torch

from helpers.transplant.adapters import AdapterMismatchError, load_adapter, save_adapter
from helpers.transplant.peft import PeftConfig, freeze_for_peft, trainable_summary
from helpers.transplant.surgery import (
    MambaDurationEncoder,
    SurgeryConfig,
    replace_duration_encoder,
    replace_lstm,
)

SMALL = dict(d_state=4, expand=1)  # small blocks keep these tests fast; shapes/contract are the same



@pytest.mark.parametrize("design", ["layerwise", "single"])
def test_contract_shapes_style_and_masks(encoder_inputs, design):
    enc = MambaDurationEncoder(SurgeryConfig(design=design, **SMALL)).eval()
    x, style, lengths, pad = encoder_inputs([9, 6, 2])
    out = enc(x, style, lengths, pad)
    assert out.shape == (3, 9, 640)
    assert torch.all(out[pad] == 0), "padding must be exactly zero"
    valid = ~pad
    assert torch.equal(out[..., 512:][valid], style[:, None, :].expand(-1, 9, -1)[valid]), (
        "last 128 channels = style"
    )


@pytest.mark.parametrize("design", ["layerwise", "single"])
def test_padded_batch_equals_single_runs(encoder_inputs, design):
    enc = MambaDurationEncoder(SurgeryConfig(design=design, **SMALL)).eval()
    x, style, lengths, pad = encoder_inputs([12, 7, 3])
    batch = enc(x, style, lengths, pad)
    for b, n in enumerate(lengths.tolist()):
        alone = enc(x[b : b + 1, :, :n], style[b : b + 1], lengths[b : b + 1], pad[b : b + 1, :n])
        torch.testing.assert_close(batch[b, :n], alone[0], rtol=1e-5, atol=1e-5)


def test_dropout_only_in_training(encoder_inputs):
    enc = MambaDurationEncoder(SurgeryConfig(**SMALL))
    x, style, lengths, pad = encoder_inputs([8, 5])
    enc.eval()
    a, b = enc(x, style, lengths, pad), enc(x, style, lengths, pad)
    assert torch.equal(a, b)
    enc.train()
    torch.manual_seed(0)
    c = enc(x, style, lengths, pad)
    assert not torch.allclose(a, c), "dropout must be active in training"


@pytest.fixture
def operated(fresh_small_model):
    """A small random Kokoro with its DurationEncoder replaced (layerwise, small blocks)."""
    model = fresh_small_model()
    report = replace_duration_encoder(model, SurgeryConfig(n_layers=1, **SMALL))
    return model, report


def test_surgery_reports_and_keeps_the_teacher(operated, fresh_small_model):
    model, report = operated
    assert isinstance(model.predictor.text_encoder, MambaDurationEncoder)
    assert report.removed is not model.predictor.text_encoder
    assert report.removed_parameters == sum(
        p.numel() for p in fresh_small_model().predictor.text_encoder.parameters()
    )
    # the pretrained AdaLayerNorm is reused
    old_norm = report.removed.lstms[1]
    torch.testing.assert_close(model.predictor.text_encoder.norms[0].fc.weight, old_norm.fc.weight)


def test_inference_still_works_after_surgery(operated):
    from helpers.kokoro.forward import synthesize_ids

    model, _ = operated
    model.eval()
    pack = torch.randn(510, 1, 256) * 0.1
    out = synthesize_ids(model, [0, 50, 83, 54, 156, 31, 0], pack[6].reshape(1, -1), seed=0)
    assert out["audio"].ndim == 1 and torch.isfinite(out["audio"]).all()
    assert out["audio"].numel() == 600 * int(out["durations"].sum())


def test_other_lstms_can_be_swapped_and_still_run(fresh_small_model):
    from helpers.kokoro.forward import synthesize_ids

    model = fresh_small_model().eval()
    for path in ("predictor.lstm", "predictor.shared", "text_encoder.lstm"):
        replace_lstm(model, path, SurgeryConfig(**SMALL))
    out = synthesize_ids(model, [0, 50, 83, 54, 0], torch.randn(1, 256) * 0.1, seed=0)
    assert torch.isfinite(out["audio"]).all()
    with pytest.raises(TypeError, match="not a batch-first bidirectional LSTM"):
        replace_lstm(model, "predictor.duration_proj")


def _duration_loss(model, ids, ref_s):
    from helpers.kokoro.forward import predict_durations

    d, logits, _ = predict_durations(model, ids, ref_s)
    return d.pow(2).mean() + logits.sigmoid().sum()


def test_freezing_leaves_only_new_blocks_with_gradients(operated):
    model, _ = operated
    model.train()
    names = freeze_for_peft(model, PeftConfig())
    assert names and all(n.startswith("predictor.text_encoder.blocks.") for n in names)
    ids = torch.tensor([[0, 50, 83, 54, 156, 31, 0]])
    _duration_loss(model, ids, torch.randn(1, 256)).backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"
        else:
            assert p.grad is None, f"frozen {name} received a gradient"
    assert "trainable%" in trainable_summary(model)


def test_adamw_step_changes_no_frozen_tensor(operated):
    model, _ = operated
    model.train()
    freeze_for_peft(model, PeftConfig(train_norms=True))
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.01)
    _duration_loss(model, torch.tensor([[0, 50, 83, 54, 0]]), torch.randn(1, 256)).backward()
    opt.step()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and changed <= trainable, f"frozen tensors changed: {sorted(changed - trainable)[:5]}"


def test_adapter_round_trip_reproduces_outputs(encoder_inputs, operated, fresh_small_model, tmp_path):
    model, _ = operated
    model.eval()
    for p in model.predictor.text_encoder.blocks.parameters():  # make it differ from init
        p.data.add_(0.01 * torch.randn_like(p))
    save_adapter(model, tmp_path / "adapter", {"note": "test"})
    fresh = fresh_small_model().eval()
    cfg = load_adapter(fresh, tmp_path / "adapter")
    assert cfg.design == "layerwise"
    x, style, lengths, pad = encoder_inputs([10, 4])
    torch.testing.assert_close(
        fresh.predictor.text_encoder(x, style, lengths, pad),
        model.predictor.text_encoder(x, style, lengths, pad),
        rtol=0,
        atol=0,
    )


def test_adapter_for_another_design_is_refused(operated, fresh_small_model, tmp_path):
    model, _ = operated
    save_adapter(model, tmp_path / "adapter")
    other = fresh_small_model()
    replace_duration_encoder(other, SurgeryConfig(design="single", **SMALL))
    with pytest.raises(AdapterMismatchError, match="design"):
        load_adapter(other, tmp_path / "adapter")
    with pytest.raises(AdapterMismatchError, match="d_state"):
        load_adapter(fresh_small_model(), tmp_path / "adapter", strict_config=SurgeryConfig(n_layers=1))
    with pytest.raises(FileNotFoundError, match="adapter file missing"):
        load_adapter(other, tmp_path / "nope")
