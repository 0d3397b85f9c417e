"""`python -m helpers.train` is notebook 05's training: stage 1 by the recipe, stage 2 for both students with the
fitted voice, from a fresh runs folder, and no student changes the recordings' targets (issue 24)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from helpers.settings import Settings
from helpers.train import cli
from helpers.train.recipe import DESIGN
from helpers.transplant.adapters import SHIPPED_ADAPTERS, adapter_block, adapter_info
from helpers.transplant.surgery import encoder_identity

WEIGHTS = ["--weights", "offline-int8"]


def _targets(cache: Path) -> dict[str, str]:
    """Every cached target file of the recordings, by content."""
    items = [p for p in (cache / "datasets").rglob("items/*") if p.is_file()]
    assert items, "stage 2 prepared no targets"
    return {str(p.relative_to(cache)): hashlib.sha256(p.read_bytes()).hexdigest() for p in items}


@pytest.fixture
def fresh_runs(tmp_path, monkeypatch):
    """CI mode, the starter clips, an empty runs folder and an empty dataset cache (the weights linked in)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for f in Path(Settings().cache_dir).glob("kokoro-*.pth"):
        (cache / f.name).symlink_to(f)
    for name, value in {"KOKORO_MAMBA_MODE": "ci", "KOKORO_MAMBA_RUNS": tmp_path / "runs",
                        "KOKORO_MAMBA_CACHE": cache, "KOKORO_MAMBA_DATASET": "starter"}.items():  # fmt: skip
        monkeypatch.setenv(name, str(value))
    return tmp_path / "runs" / "ci", cache


@pytest.mark.slow
def test_stage1_is_the_recipe_and_stage2_trains_both_students_without_changing_the_targets(
    fresh_runs, kokoro_offline, tmp_path
):
    runs, cache = fresh_runs
    adapter = cli.main(["--stage", "distill", "--minutes", "0.05", *WEIGHTS])
    assert adapter == runs / "distill" / "adapter"
    record = json.loads((runs / "distill" / "results.json").read_text())
    assert record["design"] == DESIGN.to_dict() == adapter_info(adapter)["surgery"]
    cfg = record["config"]
    assert (cfg["lr"], cfg["layer_fraction"], cfg["chain_fraction"]) == (1e-3, 1.0, 0.5), "the measured recipe"
    assert cfg["layer_steps"] >= record["steps"] >= 1, "every step layer matching: the whole budget"
    assert record["weights"] == "offline-int8" and record["machine"]["device"] == "cpu"
    assert record["command"].startswith("python -m helpers.train --stage distill")
    with pytest.raises(SystemExit):  # the run is there: neither resumable nor replaced without --overwrite
        cli.main(["--stage", "distill", *WEIGHTS])
    shipped = SHIPPED_ADAPTERS["cfc"]  # another design than the recipe's default: read from the adapter's JSON
    again = cli.main(["--stage", "distill", "--minutes", "0.02", "--init-adapter", str(shipped),
                      "--out", str(tmp_path / "from-shipped"), *WEIGHTS])  # fmt: skip
    assert adapter_info(again)["surgery"] == adapter_info(shipped)["surgery"]
    assert json.loads((tmp_path / "from-shipped" / "results.json").read_text())["init_adapter"] == str(shipped)

    # stage 2 in the same runs folder: the picker weighs stage 1's adapter against the shipped one
    mamba = cli.main(["--stage", "finetune", "--steps", "2", *WEIGHTS])
    assert mamba == runs / "finetune" / "adapter"
    meta = adapter_info(mamba)["metadata"]
    choice = meta["init_choice"]
    assert set(choice["candidates"]) == {str(adapter), str(SHIPPED_ADAPTERS["mamba"])}, "yours and the shipped one"
    best = min(choice["candidates"], key=lambda p: choice["candidates"][p]["drift_ms"])
    assert meta["init_adapter"] == choice["adapter"] == best
    assert meta["student"] == "mamba" and Path(meta["voice"]).parent == runs / "voices", "the fitted voice"
    assert meta["split_hash"] and meta["train_ids"] and meta["selection_ids"]
    targets = _targets(cache)
    manifest = next((cache / "datasets").glob("librivox-*/manifest.json"))
    key = json.loads(manifest.read_text())["settings"]["duration_encoder"]
    assert key == encoder_identity(kokoro_offline), "targets prepared with Kokoro as shipped, not a student"

    lstm = cli.main(["--stage", "finetune", "--student", "lstm", "--steps", "2", *WEIGHTS])
    control = adapter_info(lstm)["metadata"]
    assert lstm == runs / "finetune-lstm" / "adapter" and adapter_block(adapter_info(lstm)) == "lstm"
    assert control["init_adapter"] is None and control["split_hash"] == meta["split_hash"]
    assert control["voice"] == meta["voice"] and control["train_ids"] == meta["train_ids"]

    cfc = cli.main(["--stage", "finetune", "--student", "cfc", "--init-adapter", str(shipped), "--steps", "1",
                    "--out", str(runs / "finetune-cfc"), *WEIGHTS])  # fmt: skip
    assert adapter_block(adapter_info(cfc)) == "cfc" and adapter_info(cfc)["metadata"]["init_adapter"] == str(shipped)
    assert _targets(cache) == targets, "no student changed the cached targets"
