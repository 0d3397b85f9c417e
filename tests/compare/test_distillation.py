"""The distillation evaluation: exact for the teacher itself, and it notices a student that drifts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from helpers.compare import metrics as M
from helpers.compare.distillation import evaluate_distillation, main, table

SENTENCES = ["The ferry was cancelled, so we stayed.", "Why would anyone paint a bicycle orange?"]


def test_boundary_errors_accumulate():
    err = M.boundary_errors_ms([2, 3, 3, 1], [2, 2, 3, 2])  # one token a frame too long shifts later edges
    np.testing.assert_allclose(err, [0.0, 25.0, 25.0])
    assert M.boundary_mae_ms([2, 3, 3, 1], [2, 2, 3, 2]) == pytest.approx(50 / 3)


class _Slower(torch.nn.Module):
    """The teacher with its duration-relevant features pushed: a student that speaks at another tempo."""

    def __init__(self, teacher):
        super().__init__()
        self.teacher = teacher

    def forward(self, x, style, lengths, mask):
        d = self.teacher(x, style, lengths, mask)
        return torch.cat([d[..., :512] * 1.3, d[..., 512:]], -1)


@pytest.mark.slow
def test_teacher_scores_perfect_and_a_drifting_student_fails(kokoro_offline, tmp_path):
    teacher = kokoro_offline.model.predictor.text_encoder
    same = evaluate_distillation(kokoro_offline, teacher, SENTENCES, ["jf_alpha", "jm_kumo"], progress=False)
    for v in ("jf_alpha", "jm_kumo", "overall"):
        row = same["voices"][v]
        assert row["within_1_pct"] == 100.0 and row["exact_pct"] == 100.0
        assert row["drift_ms"] == 0.0 and row["f0_rmse_hz"] == 0.0 and row["energy_mae"] == 0.0
        assert same["meets_bar"][v]
    assert same["voices"]["overall"]["sentences"] == 2 * len(SENTENCES)
    off = evaluate_distillation(kokoro_offline, _Slower(teacher), SENTENCES, ["jf_alpha"], progress=False)
    assert off["voices"]["jf_alpha"]["drift_ms"] > 0 and not off["meets_bar"]["jf_alpha"]
    assert list(table(off).index) == ["jf_alpha", "overall"]


@pytest.mark.slow
def test_command_on_any_sentence_file(kokoro_offline, tmp_path):
    from helpers.compare.contenders import shallow_twin
    from helpers.transplant.adapters import save_adapter
    from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

    twin = shallow_twin(kokoro_offline.model)
    replace_duration_encoder(twin, SurgeryConfig(expand=1))
    save_adapter(twin, tmp_path / "tiny.v1")
    text = tmp_path / "mine.txt"
    text.write_text("\ufeffA line of my own.\n\n  Another one, with a comma.  \n", encoding="utf-8")
    out = tmp_path / "res.json"
    r = main(["--adapter", str(tmp_path / "tiny.v1"), "--sentences", str(text), "--voices", "jf_alpha",
              "--weights", "offline-int8", "--json", str(out)])  # fmt: skip
    assert json.loads(out.read_text())["voices"]["jf_alpha"]["sentences"] == 2
    assert r["voices"]["overall"]["tokens"] > 10
