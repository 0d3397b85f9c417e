"""helpers.compare.recording_scores: the recordings' own WER, DNSMOS and speaker embedding are computed once per clip
(notebook 06's `evaluate_systems` with `cache_dir`); a changed clip, transcript or scorer version is scored again."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pandas as pd
import pytest

import helpers.compare.recording_scores as RS
from helpers.compare import metrics as M
from helpers.compare import similarity as SIM
from helpers.compare.evaluation import EvalItem
from helpers.compare.systems import evaluate_systems


@pytest.fixture
def scorers(monkeypatch):
    """Stand-ins for pocketsphinx, DNSMOS and the speaker encoder that count their calls (scorer -> calls)."""
    calls = Counter()

    def asr_wer(audio, text, sample_rate=24000):
        calls["wer"] += 1
        return float(len(text)) + float(np.abs(audio).sum()), f"heard {len(text)}"

    def dnsmos(audio, sr=24000, threads=1):
        calls["dnsmos"] += 1
        return {"ovrl": 1.0 + float(np.abs(audio).mean()), "sig": 0.0, "bak": 0.0}

    def embed(wav, sr):
        calls["embedding"] += 1
        v = np.abs(np.fft.rfft(wav)[1:257]).astype(np.float32)
        return v / np.linalg.norm(v)

    monkeypatch.setattr(M, "asr_wer", asr_wer)
    monkeypatch.setattr(M, "dnsmos", dnsmos)
    monkeypatch.setattr(SIM, "embed", embed)
    return calls


def _clips(n=3):
    rng = np.random.default_rng(0)
    return [EvalItem(f"c{i}", f"clip number {i}", rng.normal(0, 0.1, 4800).astype(np.float32)) for i in range(n)]


def _recordings(items, cache_dir):
    # no system at all: only the recordings' own rows
    df = evaluate_systems({}, items, voice=None, cache_dir=cache_dir)
    assert set(df["model"]) == {"recording"}
    return df


def test_a_second_run_scores_nothing_again_and_returns_equal_rows(scorers, tmp_path):
    items = _clips()
    first = _recordings(items, tmp_path)
    assert scorers == {"wer": 3, "dnsmos": 3, "embedding": 3}
    assert len(list((tmp_path / RS.FOLDER).rglob("*.json"))) == 9
    again = _recordings(items, tmp_path)
    assert scorers == {"wer": 3, "dnsmos": 3, "embedding": 3}, "the second run called a scorer"
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    uncached = _recordings(items, None)  # no folder: every score computed, the same values
    assert scorers == {"wer": 6, "dnsmos": 6, "embedding": 6}
    pd.testing.assert_frame_equal(uncached, first, check_exact=True)


def test_a_changed_clip_or_transcript_is_scored_again_and_nothing_else(scorers, tmp_path):
    items = _clips()
    first = _recordings(items, tmp_path)
    items[1] = dataclasses.replace(items[1], audio=items[1].audio * 0.5)  # another recording under the same id
    changed = _recordings(items, tmp_path)
    assert scorers == {"wer": 4, "dnsmos": 4, "embedding": 4}
    a, b = first.set_index("id"), changed.set_index("id")
    assert a.loc["c1", "wer_pct"] != b.loc["c1", "wer_pct"] and a.loc["c1", "dnsmos_ovrl"] != b.loc["c1", "dnsmos_ovrl"]
    assert a.loc["c0", "wer_pct"] == b.loc["c0", "wer_pct"]
    items[2] = dataclasses.replace(items[2], text="another transcript")  # the WER depends on it, nothing else does
    _recordings(items, tmp_path)
    assert scorers == {"wer": 5, "dnsmos": 4, "embedding": 4}


def test_a_new_scorer_version_scores_again(scorers, tmp_path, monkeypatch):
    items = _clips(1)
    _recordings(items, tmp_path)
    monkeypatch.setattr(RS, "VERSION", RS.VERSION + 1)
    RS.scorer_identity.cache_clear()
    try:
        _recordings(items, tmp_path)
    finally:
        RS.scorer_identity.cache_clear()
    assert scorers == {"wer": 2, "dnsmos": 2, "embedding": 2}
    assert "pocketsphinx==" in RS.scorer_identity("wer")  # the package that computes it is part of the identity
