"""The CfC (liquid) DurationEncoder: the BiCfC layer against ncps's own cell, the encoder's contract, padded
batches, gradients, layer matching and the adapter round trip."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from helpers.transplant.adapters import describe_adapter, load_adapter, save_adapter
from helpers.transplant.cfc import BiCfC
from helpers.transplant.surgery import MambaDurationEncoder, SurgeryConfig, replace_duration_encoder

SMALL = dict(block="cfc", cfc_backbone_units=24)  # small backbone: same contract, faster



def _reference(layer: BiCfC, x: torch.Tensor) -> torch.Tensor:
    """One sequence x (T, d_in) through ncps's CfCCell.forward, step by step, both ways -> (T, 2*units)."""
    outs = []
    for cell, seq in ((layer.cell_fwd, x), (layer.cell_bwd, x.flip(0))):
        h, ys = x.new_zeros(1, layer.units), []
        for t in range(len(seq)):
            ts = 1.0 if layer.timespan is None else F.softplus(layer.timespan(seq[t : t + 1]))
            y, h = cell(seq[t : t + 1], h, ts)
            ys.append(y)
        outs.append(torch.cat(ys))
    return torch.cat([outs[0], outs[1].flip(0)], dim=-1)


@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
@pytest.mark.parametrize("timespan", ["unit", "learned"])
def test_bicfc_is_ncps_cfccell_in_both_directions_on_a_padded_batch(mode, timespan):
    torch.manual_seed(0)
    layer = BiCfC(12, 5, backbone_units=7, backbone_layers=2, mode=mode, timespan=timespan).double()
    if layer.timespan is not None:  # spans that differ from token to token
        torch.nn.init.normal_(layer.timespan.weight)
    x = torch.randn(3, 9, 12, dtype=torch.double)
    lengths = torch.tensor([9, 4, 6])
    x[1, 4:], x[2, 6:] = float("nan"), 1e6  # garbage in the pads
    y = layer(x, lengths)
    assert y.shape == (3, 9, 10)
    with torch.no_grad():
        for b, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(y[b, :n], _reference(layer, x[b, :n]), rtol=1e-10, atol=1e-10)
            assert torch.all(y[b, n:] == 0)


def test_bicfc_refuses_unknown_settings():
    with pytest.raises(ValueError, match="mode"):
        BiCfC(4, 2, mode="fast")
    with pytest.raises(ValueError, match="time span"):
        BiCfC(4, 2, timespan="seconds")
    with pytest.raises(ValueError, match="cfc"):
        SurgeryConfig(design="single", block="cfc")
    with pytest.raises(ValueError, match="block"):
        SurgeryConfig(block="lstm")


def test_contract_shapes_style_and_zero_padding(encoder_inputs):
    enc = MambaDurationEncoder(SurgeryConfig(**SMALL)).eval()
    assert all(isinstance(b, BiCfC) and b.d_out == 512 for b in enc.blocks)
    x, style, lengths, pad = encoder_inputs([9, 6, 2])
    out = enc(x, style, lengths, pad)
    assert out.shape == (3, 9, 640)
    assert torch.all(out[pad] == 0), "padding must be exactly zero"
    valid = ~pad
    assert torch.equal(out[..., 512:][valid], style[:, None, :].expand(-1, 9, -1)[valid]), "last 128 = style"


@pytest.mark.parametrize("timespan", ["unit", "learned"])
def test_padded_batch_equals_single_runs(encoder_inputs, timespan):
    enc = MambaDurationEncoder(SurgeryConfig(cfc_timespan=timespan, **SMALL)).eval()
    if timespan == "learned":
        for b in enc.blocks:
            torch.nn.init.normal_(b.timespan.weight, std=0.05)
    x, style, lengths, pad = encoder_inputs([12, 7, 3])
    with torch.no_grad():
        batch = enc(x, style, lengths, pad)
        for b, n in enumerate(lengths.tolist()):
            alone = enc(x[b : b + 1, :, :n], style[b : b + 1], lengths[b : b + 1], pad[b : b + 1, :n])
            torch.testing.assert_close(batch[b, :n], alone[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("timespan", ["unit", "learned"])
def test_gradients_reach_every_cfc_parameter(encoder_inputs, timespan):
    enc = MambaDurationEncoder(SurgeryConfig(n_layers=2, dropout=0.0, cfc_timespan=timespan, **SMALL))
    x, style, lengths, pad = encoder_inputs([7, 4])
    enc(x, style, lengths, pad).square().mean().backward()
    names = [n for n, _ in enc.blocks.named_parameters()]
    assert any(".cell_bwd." in n for n in names)
    assert any("timespan" in n for n in names) == (timespan == "learned")
    for name, p in enc.blocks.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"


def test_parameter_count_matches_the_lstm_encoder():
    """The shipped size: each BiCfC about one BiLSTM(640, 256) (1,839,104), the encoder within 1% of Kokoro's."""
    from kokoro.modules import DurationEncoder

    lstm = sum(p.numel() for p in DurationEncoder(128, 512, 3, dropout=0.0).parameters())
    enc = MambaDurationEncoder(SurgeryConfig(block="cfc"))
    cfc = sum(p.numel() for p in enc.parameters())
    assert sum(p.numel() for p in enc.blocks[0].parameters()) == 1_846_208
    assert abs(cfc / lstm - 1) < 0.01, (cfc, lstm)


def test_layer_matching_works_unchanged_on_the_cfc_design(encoder_inputs):
    from helpers.train.layerwise import layer_match_loss

    enc = MambaDurationEncoder(SurgeryConfig(n_layers=2, dropout=0.0, **SMALL))
    _, style, lengths, pad = encoder_inputs([6, 3])
    keep = (~pad)[..., None]
    trace = [(torch.randn(2, 6, 640) * keep, torch.randn(2, 6, 512) * keep) for _ in range(2)]
    loss = layer_match_loss(enc, trace, style, lengths, pad)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in enc.blocks.parameters())


def test_adapter_round_trip_reproduces_outputs(encoder_inputs, fresh_small_model, tmp_path):
    model = fresh_small_model().eval()
    report = replace_duration_encoder(model, SurgeryConfig(n_layers=1, cfc_timespan="learned", **SMALL))
    assert "cfc" in str(report)
    for p in model.predictor.text_encoder.blocks.parameters():  # make it differ from init
        p.data.add_(0.01 * torch.randn_like(p))
    save_adapter(model, tmp_path / "adapter", {"note": "test"})
    assert "block=cfc" in describe_adapter(tmp_path / "adapter")
    fresh = fresh_small_model().eval()
    cfg = load_adapter(fresh, tmp_path / "adapter")
    assert cfg.block == "cfc" and cfg.cfc_timespan == "learned"
    assert isinstance(fresh.predictor.text_encoder.blocks[0], BiCfC)
    x, style, lengths, pad = encoder_inputs([10, 4])
    with torch.no_grad():
        torch.testing.assert_close(
            fresh.predictor.text_encoder(x, style, lengths, pad),
            model.predictor.text_encoder(x, style, lengths, pad),
            rtol=0,
            atol=0,
        )


def test_older_adapters_without_a_block_are_mamba(fresh_small_model, tmp_path):
    import json

    model = fresh_small_model()
    replace_duration_encoder(model, SurgeryConfig(n_layers=1, d_state=4, expand=1))
    _, js = save_adapter(model, tmp_path / "adapter")
    info = json.loads(js.read_text())
    info["surgery"] = {k: v for k, v in info["surgery"].items() if k != "block" and not k.startswith("cfc_")}
    js.write_text(json.dumps(info))  # as written before the CfC existed
    assert load_adapter(fresh_small_model(), tmp_path / "adapter").block == "mamba"


def test_unit_and_learned_students_start_alike(encoder_inputs):
    """The learned span starts at exactly 1 and draws no random numbers: same seed, same cells, same output."""
    torch.manual_seed(0)
    unit = MambaDurationEncoder(SurgeryConfig(**SMALL)).eval()
    torch.manual_seed(0)
    learned = MambaDurationEncoder(SurgeryConfig(cfc_timespan="learned", **SMALL)).eval()
    x, style, lengths, pad = encoder_inputs([5, 3])
    with torch.no_grad():
        torch.testing.assert_close(learned(x, style, lengths, pad), unit(x, style, lengths, pad))
