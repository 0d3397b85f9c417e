"""The full-mode rehearsal (scripts/rehearse.py, helpers/rehearsal.py) runs end to end at a tiny size: a few clips
of the Festival speaker through preparation, the alignment against the truth, the fitted voice, stage 2 for the
Mamba and the LSTM control, and the four systems on the test split; every file the shipped results/rehearsal-slt/
holds is written, the plan before the verdicts, and the test clips are read by nothing but the last phase.

Skipped, saying why, where Festival is not installed (scripts/workbook.sh setup installs it on Debian-like machines).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json

import pandas as pd
import pytest

from helpers.data.festival import festival_available, make_speaker
from helpers.kokoro import weights as W
from helpers.settings import REPO_ROOT, Settings

SENTENCES = (REPO_ROOT / "data" / "text" / "rehearsal_slt.txt").read_text(encoding="utf-8").splitlines()


def _driver():
    spec = importlib.util.spec_from_file_location("rehearse", REPO_ROOT / "scripts" / "rehearse.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    why = festival_available()
    if why:
        pytest.skip(why)
    weights = W.cache_path(Settings().cache_dir)
    cache = tmp_path / "cache"
    cache.mkdir()
    if weights.is_file():  # the offline weights, not rebuilt for this test
        (cache / weights.name).symlink_to(weights)
    monkeypatch.setenv("KOKORO_MAMBA_CACHE", str(cache))
    monkeypatch.delenv("KOKORO_MAMBA_DATASET", raising=False)
    make_speaker(SENTENCES[:8], cache / "rehearsal-slt", progress=False)
    return tmp_path


def test_refuses_the_shipped_results_folder(tmp_path):
    out = REPO_ROOT / "results" / "rehearsal-slt-test-never-written"
    assert _driver().main(["--out", str(out), "--runs", str(tmp_path / "runs")]) == 2
    assert not out.exists()


@pytest.mark.slow
def test_the_rehearsal_runs_every_phase_at_a_tiny_size(tiny):
    out, runs = tiny / "out", tiny / "runs"
    args = ["--out", str(out), "--runs", str(runs), "--steps", "2", "--batch-size", "2", "--eval-every", "1",
            "--voice-epochs", "1", "--voice-clips", "2", "--pilot-lrs", "1e-4,1e-3", "--pilot-steps", "1"]  # fmt: skip
    assert _driver().main(args) == 0
    timings = json.loads((out / "timings.json").read_text())
    assert list(timings) == ["prep", "alignment", "voice", "lr_pilot", "stage2", "systems", "anatomy"]
    assert all(t["computed"] and t["seconds"] >= 0 for t in timings.values()) and timings["stage2"]["seconds"] > 0
    split = json.loads((out / "split.json").read_text())
    test_ids = set(split["test"])
    assert test_ids and not test_ids & set(split["train"] + split["dev"])
    # the alignment phase scored the prepared clips against Festival's truth
    alignment = json.loads((out / "alignment.json").read_text())
    assert alignment["clips"] >= 6 and 0 < alignment["table"]["word starts and ends"]["mean_ms"] < 200
    # the fitted voice against the stock pack it started from, on the test clips only
    voice = pd.read_csv(out / "voice.csv")
    assert set(voice["id"]) == test_ids and set(voice["voice"]) == {"fitted", "bf_emma"}
    # the pilot tried both rates on both students, and stage 2 used the one it chose
    pilot = pd.read_csv(out / "lr_pilot.csv")
    assert sorted(pilot["lr"].unique()) == [1e-4, 1e-3] and set(pilot["student"]) == {"mamba", "lstm"}
    stage2 = json.loads((out / "stage2.json").read_text())
    assert stage2["config"]["lr"] == timings["lr_pilot"]["lr"] and stage2["config"]["steps"] == 2
    mamba, lstm = stage2["runs"]["mamba"], stage2["runs"]["lstm"]
    assert mamba["init_adapter"].endswith("distill-cpu/adapter") and lstm["init_adapter"] is None
    split_hash = hashlib.sha256((out / "split.json").read_text().encode()).hexdigest()[:12]
    assert mamba["split_hash"] == lstm["split_hash"] == split_hash
    # the four systems: the plan was written before the verdicts, on exactly the test clips
    plan = json.loads((out / "plan.json").read_text())
    assert set(plan["test_ids"]) == test_ids
    assert (out / "plan.json").stat().st_mtime <= (out / "differences.csv").stat().st_mtime
    per = pd.read_csv(out / "per_utterance.csv")
    assert set(per["id"]) == test_ids and {
        "LSTM (shipped)",
        "LSTM (stage 2)",
        "Mamba (stage 1)",
        "Mamba (stage 2)",
    } <= set(per["model"])
    diffs = pd.read_csv(out / "differences.csv")
    assert diffs["verdict"].str.startswith("too few clips").all(), "one test clip: no verdict"
    assert (out / "conclusion.txt").read_text().startswith("Primary question")
    anatomy = json.loads((out / "anatomy.json").read_text())
    assert "Mamba (stage 2) vs Mamba (stage 1)" in anatomy["paired"] and len(anatomy["means"]) == 4
    # one phase again, alone: what it needs comes from the caches, and a finished stage 2 is not trained again
    assert _driver().main([*args, "--only", "stage2"]) == 0
    again = json.loads((out / "timings.json").read_text())
    assert again["prep"] == timings["prep"] and again["stage2"] == timings["stage2"]
    assert _driver().main([*args, "--only", "nonsense"]) == 2
