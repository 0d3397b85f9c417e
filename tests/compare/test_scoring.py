"""The one student-vs-reference comparison (helpers.compare.scoring): the student on the reference's grid, what
is pooled how, and its three callers (the Trainer's dev scores, the distillation bar, notebook 06's rows)
giving one utterance the same numbers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers.compare.contenders import shallow_twin
from helpers.compare.distillation import evaluate_distillation
from helpers.compare.evaluation import EvalSentence, evaluate
from helpers.compare.scoring import ProsodyPair, pooled, prosody_pair
from helpers.kokoro.forward import (
    duration_logits,
    durations_from_logits,
    encode,
    f0_energy,
    style_for,
    upstream_features,
)
from helpers.kokoro.g2p import phonemes_to_ids, phonemize
from helpers.train.config import TrainConfig
from helpers.train.items import TrainItem
from helpers.train.trainer import Trainer
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

SENTENCE = "The cat sat on the mat."
PACK = torch.randn(510, 1, 256, generator=torch.Generator().manual_seed(0)) * 0.3


def _voiced(model, monkeypatch):
    """A random model's F0 sits near 0 Hz, unvoiced by the metrics' rule: shift it into the voiced range, so the
    F0 comparisons below compare numbers (the shifted curve still follows the DurationEncoder's features)."""
    real = model.predictor.F0Ntrain
    monkeypatch.setattr(model.predictor, "F0Ntrain", lambda x, s: (lambda f0, n: (f0 * 300 + 110, n))(*real(x, s)))
    return model


@pytest.fixture
def teacher_and_student(fresh_small_model, monkeypatch):
    """(teacher model, student model): one small random Kokoro and its twin with a Mamba DurationEncoder."""
    teacher = _voiced(fresh_small_model(), monkeypatch).eval()
    torch.manual_seed(0)
    student = shallow_twin(teacher)
    replace_duration_encoder(student, SurgeryConfig(d_state=4, expand=1))
    return teacher, student.eval()


def _encoded(model, encoder, ids):
    """One utterance through `encoder`: d (T, 640), durations (T,), s (1, 128)."""
    ids = torch.as_tensor(ids)[None]  # (1, T)
    lengths, pad = torch.tensor([ids.shape[1]]), torch.zeros_like(ids, dtype=torch.bool)
    s = style_for(PACK, len(SENTENCE))[:, 128:]  # (1, 128)
    d = encode(model, upstream_features(model, ids, pad), s, lengths, pad, encoder=encoder)  # (1, T, 640)
    return d[0], durations_from_logits(duration_logits(model, d, lengths))[0], s


def test_the_student_is_scored_on_the_references_grid(teacher_and_student):
    teacher, student = teacher_and_student
    ids = phonemes_to_ids(phonemize(SENTENCE))
    with torch.no_grad():
        d_t, dur_t, s = _encoded(teacher, teacher.predictor.text_encoder, ids)
        d_s, dur_s, _ = _encoded(teacher, student.predictor.text_encoder, ids)
        f0_t, n_t = f0_energy(teacher, d_t, dur_t, s)
    pair = prosody_pair(teacher, s, d_s, dur_s, dur_t, ref_d=d_t)
    assert not np.array_equal(pair.durations, pair.ref_durations), "an untrained student speaks otherwise"
    assert len(pair.f0) == len(pair.ref_f0) == len(pair.energy) == 2 * int(dur_t.sum()), "the teacher's grid"
    given = prosody_pair(teacher, s, d_s, dur_s, dur_t.numpy(), ref_f0=f0_t, ref_energy=n_t)  # the same, as curves
    for name in ("durations", "ref_durations", "f0", "ref_f0", "energy", "ref_energy"):
        np.testing.assert_array_equal(getattr(given, name), getattr(pair, name), err_msg=name)
    itself = pooled([prosody_pair(teacher, s, d_t, dur_t, dur_t, ref_d=d_t)])
    assert itself["within_1_pct"] == itself["exact_pct"] == 100.0
    assert itself["drift_ms"] == itself["f0_rmse_hz"] == itself["energy_mae"] == 0.0
    short = prosody_pair(teacher, s, d_s, dur_s, dur_t, ref_f0=f0_t[:-2])  # a pYIN curve two frames short
    assert len(short.f0) == len(short.ref_f0) == len(f0_t) - 2 and short.energy is not None
    assert prosody_pair(teacher, s, d_s, dur_s, dur_t).f0 is None, "no reference curve: durations only"


def test_pooled_pools_tokens_edges_and_frames_and_spoken_drops_the_silences():
    a = ProsodyPair(np.array([2, 3, 3, 1]), np.array([2, 2, 3, 2]), np.full(20, 100.0), np.full(20, 110.0))
    b = ProsodyPair(np.array([1, 4]), np.array([3, 2]), np.full(12, 100.0), np.r_[np.full(6, 130.0), np.zeros(6)])
    got = pooled([a, b])
    assert got["within_1_pct"] == pytest.approx(100 * 4 / 6) and got["exact_pct"] == pytest.approx(100 * 2 / 6)
    assert got["drift_ms"] == pytest.approx((0 + 25 + 25 + 50) / 4), "every inner edge counts once"
    assert got["boundary_mae_ms"] == pytest.approx((50 / 3 + 50) / 2), "each utterance's mean, then their mean"
    assert got["f0_rmse_hz"] == pytest.approx(np.sqrt((20 * 10**2 + 6 * 30**2) / 26)), "frames voiced in both"
    assert np.isnan(got["energy_mae"]) and got["sentences"] == 2 and got["tokens"] == 6
    ids = np.array(phonemes_to_ids("hˈɛlO, wˈɜɹld."))
    c = ProsodyPair(np.arange(len(ids)) + 1, np.arange(len(ids)) + 1, np.ones(4), np.ones(4)).spoken(ids)
    assert 0 < len(c.durations) <= len(ids) - 3 and 1 not in c.durations and len(c.f0) == 4


def test_the_three_scorers_give_one_utterance_the_same_numbers(teacher_and_student, tmp_path):
    """The Trainer's dev score (stage 1), the distillation bar and notebook 06's text rows, on one sentence."""
    teacher, student = teacher_and_student
    ps = phonemize(SENTENCE)
    bar = evaluate_distillation(SimpleNamespace(model=teacher, voice=lambda v: PACK), student.predictor.text_encoder,
                                [SENTENCE], ["v"], progress=False)["voices"]["v"]  # fmt: skip
    row = evaluate({"LSTM": teacher, "Mamba": student}, sentences=[EvalSentence("s", SENTENCE, ps)], voice=PACK,
                   asr=False).set_index("model").loc["Mamba"]  # fmt: skip
    style = style_for(PACK, len(ps)).reshape(-1).numpy()
    item = TrainItem("s", np.asarray(phonemes_to_ids(ps)), style, n_phonemes=len(ps))
    cfg = TrainConfig(stage="distill", steps=1, out_dir=str(tmp_path / "run"))
    dev = Trainer(student, teacher.predictor.text_encoder, [item], cfg).evaluate([item])
    assert bar["within_1_pct"] == row["dur_within1_pct"] == 100 * dev["val_dur_within_1"] < 100
    assert bar["drift_ms"] == row["boundary_mae_ms"] == dev["val_boundary_ms"] > 0  # one utterance: one mean
    assert np.isfinite(bar["f0_rmse_hz"]) and bar["f0_rmse_hz"] == row["f0_rmse_hz"] == dev["val_f0_rmse_hz"]
