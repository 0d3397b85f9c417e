"""The one stage-1 picker: which adapters compete, and that the better one on the dev half wins, not the newest."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from helpers.settings import Settings
from helpers.train.pick import RULE, pick_stage1, stage1_candidates
from helpers.transplant.adapters import SHIPPED_ADAPTERS, save_adapter
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

SMALL = SurgeryConfig(n_layers=1, d_state=4, expand=1)


def test_candidates_are_your_stage1_adapters_of_the_block_then_the_shipped_one(fresh_small_model, tmp_path):
    model = fresh_small_model()
    replace_duration_encoder(model, SMALL)
    runs = tmp_path / "runs"
    save_adapter(model, runs / "ci" / "distill" / "adapter", {"stage": "distill"})
    save_adapter(model, runs / "ci" / "distill" / "milestones" / "adapter-5min", {"stage": "distill"})  # a snapshot
    save_adapter(model, runs / "ci" / "finetune" / "adapter", {"stage": "finetune"})  # stage 2: no start
    save_adapter(model, runs / "fixture" / "adapter", {"stage": "distill", "fixture": True})  # untrained
    cfc = fresh_small_model()
    replace_duration_encoder(cfc, SurgeryConfig(block="cfc", cfc_backbone_units=16, n_layers=1))
    save_adapter(cfc, runs / "cfc" / "adapter", {"stage": "distill"})
    assert stage1_candidates("mamba", runs) == [runs / "ci" / "distill" / "adapter", SHIPPED_ADAPTERS["mamba"]]
    assert stage1_candidates("cfc", runs) == [runs / "cfc" / "adapter", SHIPPED_ADAPTERS["cfc"]]
    assert stage1_candidates("mamba", tmp_path / "nothing") == [SHIPPED_ADAPTERS["mamba"]]
    with pytest.raises(ValueError, match="un-operated"):
        pick_stage1(SimpleNamespace(model=model), Settings(mode="ci"))


@pytest.mark.slow
def test_the_better_adapter_on_the_dev_half_wins_not_your_newest(kokoro_offline, tmp_path, monkeypatch):
    from helpers.kokoro.loading import load_kokoro
    from helpers.train.recipe import DESIGN

    untrained = load_kokoro("offline-int8", verbose=False).model
    replace_duration_encoder(untrained, DESIGN)
    monkeypatch.setenv("KOKORO_MAMBA_RUNS", str(tmp_path / "runs"))
    own = tmp_path / "runs" / "ci" / "distill" / "adapter"
    save_adapter(untrained, own, {"stage": "distill"})  # yours, the newest, and untrained
    pick = pick_stage1(kokoro_offline, Settings(mode="ci"), sentences=["The cat sat on the mat.", "Is it raining?"],
                       voices=["af_heart"])  # fmt: skip
    assert list(pick.scores) == [str(own), str(SHIPPED_ADAPTERS["mamba"])], "yours first: it still has to win"
    assert pick.adapter == SHIPPED_ADAPTERS["mamba"]
    assert pick.scores[str(own)]["drift_ms"] > pick.scores[str(pick.adapter)]["drift_ms"]
    record = pick.record()
    assert record["rule"] == RULE and record["adapter"] == str(pick.adapter) and "2 stage-1 adapter" in record["why"]
