"""The DTW reference voice: the English pack nearest the speaker's F0 register (helpers.data.reference_voice)."""

from __future__ import annotations

import numpy as np
import pytest

import helpers.data.reference_voice as R
from helpers.data.audio import save_wav
from helpers.grid import SAMPLE_RATE
from helpers.kokoro.voices import DEFAULT_VOICE, ENGLISH_VOICES


def voiced_tone(f0_hz: float, seconds: float = 1.0) -> np.ndarray:
    """A harmonic tone (a crude vowel) at f0_hz, 24 kHz, with a little noise so pYIN has something real."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    y = sum(np.sin(2 * np.pi * k * f0_hz * t) / k for k in range(1, 6))
    y = y + np.random.default_rng(0).normal(0, 0.01, len(t))
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def test_pack_table_covers_every_english_pack_and_separates_registers():
    assert set(R.PACK_MEDIAN_F0_HZ) == set(ENGLISH_VOICES)
    female = [f for v, f in R.PACK_MEDIAN_F0_HZ.items() if v[1] == "f"]
    male = [f for v, f in R.PACK_MEDIAN_F0_HZ.items() if v[1] == "m"]
    assert max(male) < min(female), R.PACK_MEDIAN_F0_HZ  # a table that could not tell them apart is useless


def test_median_f0_of_a_tone():
    f0, n = R.median_f0([voiced_tone(140.0), voiced_tone(160.0, 0.5)])
    assert n > 100 and 138 < f0 < 152  # pooled: two thirds of the frames are at 140 Hz
    assert np.isnan(R.median_f0([np.zeros(24_000, np.float32)])[0])


def test_nearest_pack_in_semitones_and_the_reason_says_why():
    packs = {"low": 90.0, "mid": 112.0, "high": 220.0}
    # 100 Hz: 12 Hz below "mid" and 10 Hz above "low" -- but 1.96 vs 1.82 semitones, so "low"
    c = R.choose_reference_voice(100.0, n_clips=3, n_voiced_frames=400, pack_f0_hz=packs)
    assert c.voice == "low"
    assert "100 Hz" in c.reason and "low" in c.reason and "3 clips" in c.reason and "next: mid" in c.reason
    assert list(c.distances()) == ["low", "mid", "high"]
    t = c.table()
    assert t.loc[0, "voice"] == "low" and bool(t.loc[0, "chosen"]) and t["chosen"].sum() == 1
    assert R.VoiceChoice.from_dict(c.to_dict()) == c  # what the manifest stores is the whole record
    assert R.choose_reference_voice(200.0, pack_f0_hz=packs).voice == "high"


def test_unvoiced_speaker_gets_the_default_voice_with_a_reason():
    c = R.choose_reference_voice(float("nan"), n_clips=2, n_voiced_frames=0)
    assert c.voice == DEFAULT_VOICE and c.speaker_f0_hz is None and "no voiced frames" in c.reason


def test_choose_for_clips_measures_once_then_reuses(tmp_path, monkeypatch):
    paths = []
    for i, f0 in enumerate([115.0, 125.0]):
        paths.append(tmp_path / f"c{i}.wav")
        save_wav(paths[-1], voiced_tone(f0), SAMPLE_RATE)
    first = R.choose_for_clips(paths, clips_key="k1")
    assert 110 < first.speaker_f0_hz < 130 and first.n_clips == 2
    male = {v: f for v, f in R.PACK_MEDIAN_F0_HZ.items() if v[1] == "m"}
    assert first.voice in male  # a 120 Hz speaker is nearest a male pack

    def no_audio(*args, **kwargs):
        raise AssertionError("the speaker's F0 should have been reused")

    monkeypatch.setattr(R, "load_audio", no_audio)
    again = R.choose_for_clips(paths, clips_key="k1", previous=first.to_dict())
    assert again == first
    with pytest.raises(AssertionError, match="reused"):  # other clips: measured again
        R.choose_for_clips(paths, clips_key="k2", previous=first.to_dict())


@pytest.mark.slow
def test_stored_pack_figures_match_a_fresh_measurement(kokoro_offline):
    for voice in ("af_heart", "am_michael"):
        assert R.pack_median_f0(kokoro_offline, voice) == pytest.approx(R.PACK_MEDIAN_F0_HZ[voice], rel=0.02)
