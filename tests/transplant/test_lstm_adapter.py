"""LSTM adapters: Kokoro's own DurationEncoder, fine-tuned (stage 2's same-recipe control), saved and re-applied."""

from __future__ import annotations

import json

import pytest
import torch

from helpers.compare.contenders import mamba_twin
from helpers.transplant.adapters import (
    AdapterMismatchError,
    adapter_block,
    adapter_paths,
    describe_adapter,
    encoder_from_adapter,
    load_adapter,
    read_adapter_json,
    save_adapter,
)
from helpers.transplant.surgery import DURATION_ENCODER_PATH, SurgeryConfig, replace_duration_encoder


def _fine_tuned(model, seed=1):
    """Move the DurationEncoder's LSTM weights as a fine-tuning run would (its AdaLayerNorms stay)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.get_submodule(DURATION_ENCODER_PATH).named_parameters():
            if "weight_hh" in name or "weight_ih" in name:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def _encode(model, inputs):
    with torch.no_grad():
        return model.get_submodule(DURATION_ENCODER_PATH).eval()(*inputs)


def test_round_trip_gives_exactly_the_fine_tuned_outputs(fresh_small_model, tmp_path, encoder_inputs):
    inputs = encoder_inputs([7, 4])
    tuned = _fine_tuned(fresh_small_model())
    st, js = save_adapter(tuned, tmp_path / "lstm", {"note": "test"})
    info = read_adapter_json(tmp_path / "lstm")
    assert adapter_block(info) == "lstm" and info["surgery"]["n_layers"] == 1
    from safetensors.torch import load_file

    assert all(v.dtype == torch.float32 for v in load_file(str(st)).values())
    fresh = fresh_small_model()
    before = _encode(fresh, inputs)
    assert load_adapter(fresh, tmp_path / "lstm")["block"] == "lstm"
    after = _encode(fresh, inputs)
    assert torch.equal(after, _encode(tuned, inputs)), "the loaded model computes what the fine-tuned one did"
    assert not torch.allclose(after, before), "and not what the model as shipped did"
    with torch.no_grad():
        assert torch.equal(encoder_from_adapter(tmp_path / "lstm")(*inputs), after)
    assert "block=lstm" in describe_adapter(tmp_path / "lstm")


def test_a_twin_carries_the_lstm_adapter_and_leaves_the_original_untouched(
    kokoro_small_random, fresh_small_model, tmp_path, encoder_inputs
):
    inputs = encoder_inputs([6, 6, 3])
    save_adapter(_fine_tuned(fresh_small_model()), tmp_path / "ctl")
    original = {k: v.clone() for k, v in kokoro_small_random.model.state_dict().items()}
    shipped_out = _encode(kokoro_small_random.model, inputs)
    twin = mamba_twin(kokoro_small_random, tmp_path / "ctl")
    twin_enc = twin.model.get_submodule(DURATION_ENCODER_PATH)
    assert twin_enc is not kokoro_small_random.model.get_submodule(DURATION_ENCODER_PATH)
    assert twin.model.decoder is kokoro_small_random.model.decoder, "the frozen rest is shared, not copied"
    assert torch.equal(_encode(twin.model, inputs), _encode(_fine_tuned(fresh_small_model()), inputs))
    now = kokoro_small_random.model.state_dict()
    assert all(torch.equal(now[k], v) for k, v in original.items()), "the loaded Kokoro stays as shipped"
    assert torch.equal(_encode(kokoro_small_random.model, inputs), shipped_out)
    assert "fine-tuned LSTM" in twin.note


def test_a_wrong_shaped_lstm_adapter_is_refused_and_changes_nothing(fresh_small_model, tmp_path):
    from safetensors.torch import load_file, save_file

    save_adapter(_fine_tuned(fresh_small_model()), tmp_path / "bad")
    st, _ = adapter_paths(tmp_path / "bad")
    tensors = load_file(str(st))
    tensors["lstms.0.weight_hh_l0"] = torch.zeros(1024, 128)  # hidden 128: another model's LSTM
    save_file(tensors, str(st))
    model = fresh_small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(AdapterMismatchError, match="wrong shapes.*lstms.0.weight_hh_l0"):
        load_adapter(model, tmp_path / "bad")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_an_lstm_adapter_does_not_load_into_an_operated_model(fresh_small_model, tmp_path):
    save_adapter(fresh_small_model(), tmp_path / "ctl")
    model = fresh_small_model()
    replace_duration_encoder(model, SurgeryConfig(n_layers=1, d_state=4, expand=1))
    with pytest.raises(AdapterMismatchError, match="un-operated"):
        load_adapter(model, tmp_path / "ctl")
    with pytest.raises(AdapterMismatchError, match="LSTM"):
        load_adapter(fresh_small_model(), tmp_path / "ctl", strict_config=SurgeryConfig())


def test_mamba_adapters_still_record_their_surgery(fresh_small_model, tmp_path):
    model = fresh_small_model()
    cfg = SurgeryConfig(n_layers=1, d_state=4, expand=1)
    replace_duration_encoder(model, cfg)
    save_adapter(model, tmp_path / "m")
    info = json.loads(adapter_paths(tmp_path / "m")[1].read_text())
    assert adapter_block(info) == "mamba" and info["surgery"] == cfg.to_dict()
    assert load_adapter(fresh_small_model(), tmp_path / "m").to_dict() == cfg.to_dict()
