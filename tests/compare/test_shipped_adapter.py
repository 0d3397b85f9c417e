"""CI guard for the shipped stage-1 adapters: each loads onto the offline weights and still scores what it scored.

Mamba (results/distill-cpu) and, once its run has been shipped, the CfC (results/distill-cfc-cpu; skipped until then).

Only the DurationEncoder, the duration head and the F0/N branch run (no decoder), on the 24 sentences of the test
half the docs report (heldout_test.json): about ten seconds per adapter on a CPU.
A change that breaks the adapter format, the surgery or the forward path fails here.
"""

from __future__ import annotations

import json

import pytest

from helpers.compare.distillation import BAR, evaluate_distillation
from helpers.settings import REPO_ROOT
from helpers.transplant.adapters import SHIPPED_ADAPTERS, encoder_from_adapter


@pytest.fixture(params=sorted(SHIPPED_ADAPTERS))
def shipped(request):
    """(adapter path, its results.json record) for each kind of block; the CfC's is skipped until it ships."""
    path = SHIPPED_ADAPTERS[request.param]
    if request.param != "mamba" and not path.with_name(path.name + ".json").is_file():
        pytest.skip(f"no {request.param} adapter shipped yet ({path})")
    return path, json.loads((path.parent / "results.json").read_text())


def test_the_shipped_adapter_is_small_fp16_and_documented(shipped):
    adapter, record = shipped
    info = json.loads(adapter.with_name(adapter.name + ".json").read_text())
    st = adapter.with_name(adapter.name + ".safetensors")
    assert st.stat().st_size < 25 * 2**20
    for key in ("command", "code_commit", "steps", "train_minutes", "data", "final", "milestones"):
        assert key in record, key
    assert record["train_minutes"] <= 60.0
    assert info["surgery"] == record["design"]
    from safetensors import safe_open

    with safe_open(str(st), "pt") as f:
        assert all(f.get_slice(k).get_dtype() == "F16" for k in f.keys())


@pytest.mark.slow
def test_the_shipped_adapter_reproduces_its_test_half_scores(kokoro_offline, shipped):
    """The figures the docs report (heldout_test.json: the test half of the held-out sentences, three voices),
    measured again today with the same scorer."""
    adapter, record = shipped
    reported = json.loads((adapter.parent / "heldout_test.json").read_text())
    assert reported["sentences_file"] == "data/text/heldout_test.txt" and reported["weights"] == kokoro_offline.source
    sentences = [s for s in (REPO_ROOT / reported["sentences_file"]).read_text().splitlines() if s.strip()]
    assert len(sentences) == 24 and not reported["refused_sentences"]
    voices = [v for v in reported["voices"] if v != "overall"]
    assert voices == record["eval_voices"], "the voices its milestones were chosen with"
    r = evaluate_distillation(kokoro_offline, encoder_from_adapter(adapter), sentences, voices, progress=False)
    for voice, want in reported["voices"].items():
        got = r["voices"][voice]
        assert got["within_1_pct"] >= want["within_1_pct"] - 0.5, (voice, got, want)
        assert got["drift_ms"] <= want["drift_ms"] + 2.0, (voice, got, want)
        assert got["f0_rmse_hz"] <= want["f0_rmse_hz"] + 0.5, (voice, got, want)
    # the bar's verdict per voice, today's evaluation against today's BAR, is the one recorded: a bar changed
    # without re-recording the shipped results, or a regression across the bar, fails here
    assert reported["bar"] == BAR and r["meets_bar"] == reported["meets_bar"], (r["meets_bar"], reported["meets_bar"])
