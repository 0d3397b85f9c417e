"""Layer-by-layer distillation and distillation across voices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.train.items import TrainItem, collate, restyle
from helpers.train.layerwise import layer_match_loss, teacher_trace
from helpers.transplant.surgery import MambaDurationEncoder, SurgeryConfig

# Kokoro's DurationEncoder, built as Kokoro builds it, gives its single-layer LSTMs dropout=0.2: torch warns
# that this has no effect (kokoro's code; harmless)
KOKORO_LSTM_DROPOUT = pytest.mark.filterwarnings("ignore:dropout option adds dropout after all but last:UserWarning")


def _batch(lengths=(9, 4, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    B, T = len(lengths), max(lengths)
    lengths = torch.tensor(lengths)
    pad = torch.arange(T)[None, :] >= lengths[:, None]
    d_en = torch.randn(B, 512, T, generator=g).masked_fill(pad[:, None], 0.0)
    s = torch.randn(B, 128, generator=g) * 0.3
    return d_en, s, lengths, pad


@KOKORO_LSTM_DROPOUT
def test_teacher_trace_reproduces_the_lstm_encoder():
    from kokoro.modules import DurationEncoder

    torch.manual_seed(0)
    teacher = DurationEncoder(128, 512, 3, dropout=0.2).eval()
    d_en, s, lengths, pad = _batch()
    trace = teacher_trace(teacher, d_en, s, lengths, pad)
    assert len(trace) == 3 and trace[0][0].shape == (3, 9, 640) and trace[0][1].shape == (3, 9, 512)
    with torch.no_grad():
        out = teacher(d_en, s, lengths, pad)  # (B, T, 640)
    last = torch.cat([trace[-1][1], s[:, None].expand(-1, 9, -1)], -1) * (~pad)[..., None]
    assert torch.allclose(last, out, atol=1e-5)
    for i in range(1, 3):  # each layer's input is the previous layer's output with the style appended
        assert torch.allclose(trace[i][0][..., :512], trace[i - 1][1] * (~pad)[..., None], atol=1e-6)


@KOKORO_LSTM_DROPOUT
def test_layer_loss_trains_only_the_student_and_pulls_it_towards_the_teacher():
    from kokoro.modules import DurationEncoder

    torch.manual_seed(0)
    teacher = DurationEncoder(128, 512, 1, dropout=0.2).eval()
    cfg = SurgeryConfig(n_layers=1, d_state=4, expand=1, bidirectional="shared", dropout=0.0)
    student = MambaDurationEncoder(cfg)
    d_en, s, lengths, pad = _batch()
    trace = teacher_trace(teacher, d_en, s, lengths, pad)
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = layer_match_loss(student, trace, s, lengths, pad)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is None for p in teacher.parameters())
    with pytest.raises(ValueError, match="layerwise"):
        layer_match_loss(MambaDurationEncoder(SurgeryConfig(design="single", expand=1)), trace, s, lengths, pad)


@KOKORO_LSTM_DROPOUT
def test_chained_layer_loss_feeds_each_block_the_students_own_input():
    from kokoro.modules import DurationEncoder

    torch.manual_seed(0)
    teacher = DurationEncoder(128, 512, 3, dropout=0.2).eval()
    student = MambaDurationEncoder(SurgeryConfig(d_state=4, expand=1, bidirectional="shared", dropout=0.0))
    d_en, s, lengths, pad = _batch()
    trace = teacher_trace(teacher, d_en, s, lengths, pad)
    forced = layer_match_loss(student, trace, s, lengths, pad)
    chained = layer_match_loss(student, trace, s, lengths, pad, chained=True)
    assert not torch.allclose(forced, chained)  # an untrained block 1 gives block 2 another input
    # chained, block 0 also gets gradient from the later layers' terms (through blocks 1 and 2)
    student.zero_grad()
    layer_match_loss(student, trace, s, lengths, pad, chained=True).backward()
    g_chained = [p.grad.clone() for p in student.blocks[0].parameters()]
    student.zero_grad()
    layer_match_loss(student, trace, s, lengths, pad).backward()
    assert any(not torch.allclose(a, p.grad) for a, p in zip(g_chained, student.blocks[0].parameters()))


def test_restyle_draws_voices_reproducibly_with_kokoros_row_rule():
    items = [TrainItem(f"s{i}", np.array([0, 5, 6, 7, 0]), np.zeros(256, np.float32), n_phonemes=3 + i) for i in range(6)]
    bank = {"a": torch.randn(510, 1, 256), "b": torch.randn(510, 1, 256)}
    b1, b2 = collate(items), collate(items)
    v1 = restyle(b1, bank, np.random.default_rng([0, 7]))
    v2 = restyle(b2, bank, np.random.default_rng([0, 7]))
    assert v1 == v2 and torch.equal(b1.ref_s, b2.ref_s) and set(v1) <= {"a", "b"}
    for k, (it, name) in enumerate(zip(items, v1)):
        assert torch.equal(b1.ref_s[k], bank[name][it.n_phonemes - 1, 0])  # pack[len(phonemes) - 1]


@KOKORO_LSTM_DROPOUT
def test_trainer_chains_the_last_share_of_the_layer_matching_steps(fresh_small_model, tmp_path, monkeypatch):
    from helpers.train import stage_losses as SL
    from helpers.train import trainer as T
    from helpers.train.config import TrainConfig
    from helpers.transplant.surgery import replace_duration_encoder

    model = fresh_small_model()
    teacher = replace_duration_encoder(model, SurgeryConfig(d_state=4, expand=1, bidirectional="shared")).removed
    seen = []
    monkeypatch.setattr(SL, "layer_match_loss", lambda *a: seen.append(a[-1]) or layer_match_loss(*a))
    items = [TrainItem(f"s{i}", np.array([0, 5 + i, 6, 7, 0]), np.zeros(256, np.float32)) for i in range(4)]
    cfg = TrainConfig(stage="distill", steps=4, layer_steps=4, chain_fraction=0.5, batch_size=2, warmup_steps=1,
                      eval_every=10**9, ckpt_every=10**9, sample_every=10**9, out_dir=str(tmp_path))  # fmt: skip
    T.Trainer(model, teacher, items, cfg).fit(progress=False)
    assert seen == [False, False, True, True]  # steps 0-1 teacher-forced, 2-3 chained
