"""Long voice fits resume: the state saved after each epoch continues a fit exactly where it stopped (the same
pack and history as an uninterrupted fit), is itself a readable voice (the best pack so far), an early-stopped
fit stays stopped, and a state written by another fit is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors import safe_open

from helpers.kokoro.voices import read_pack_file
from helpers.train.fit_state import FitStateRefused
from helpers.train.fit_voice import FitVoiceConfig, fit_voice


def _fit(kokoro, items, state, history=None, **cfg):
    base = dict(epochs=2, lr=0.05, patience=10, crop_frames=4)
    return fit_voice(kokoro, (items[:1], items[2:]), FitVoiceConfig(**{**base, **cfg}), start="af_heart",
                     history=history, progress=False, state_path=state)  # fmt: skip


@pytest.fixture
def clips(voice_clips):
    return voice_clips()


def test_an_interrupted_fit_resumes_exactly(kokoro_small_random, clips, tmp_path):
    full_history: list[dict] = []
    full = _fit(kokoro_small_random, clips, tmp_path / "full.fitstate.safetensors", full_history)
    state = tmp_path / "cut.fitstate.safetensors"
    first = _fit(kokoro_small_random, clips, state, epochs=1)  # a session limit after epoch 1
    assert state.is_file() and not list(tmp_path.glob("*.tmp"))
    assert torch.equal(read_pack_file(state), first), "the state file is the best pack so far"
    with safe_open(str(state), framework="pt") as f:
        assert {"offset", "best_offset", "rng.torch"} <= set(f.keys()) and any(k.startswith("optimizer.") for k in f.keys())
    rng = torch.get_rng_state()
    resumed_history: list[dict] = []
    resumed = _fit(kokoro_small_random, clips, state, resumed_history)  # the same fit, run again: epoch 2
    assert torch.equal(resumed, full), "resume continues exactly: same Adam state, clip order and crops"
    assert resumed_history == full_history and [r["epoch"] for r in resumed_history] == [0, 1, 2]
    assert torch.equal(torch.get_rng_state(), rng)


def test_an_early_stopped_fit_stays_stopped(kokoro_small_random, clips, tmp_path):
    state = tmp_path / "s.fitstate.safetensors"
    history: list[dict] = []
    pack = _fit(kokoro_small_random, clips, state, history, epochs=4, lr=50.0, patience=1)  # diverges: stops early
    assert len(history) == 2, "epoch 0 and the one epoch that made it worse"
    again: list[dict] = []
    assert torch.equal(_fit(kokoro_small_random, clips, state, again, epochs=4, lr=50.0, patience=1), pack)
    np.testing.assert_equal(again, history)  # nothing ran again (NaN rows compare equal here)


def test_a_state_from_another_fit_is_refused_by_name(kokoro_small_random, clips, tmp_path):
    state = tmp_path / "s.fitstate.safetensors"
    _fit(kokoro_small_random, clips, state, epochs=1)
    before = state.read_bytes()
    with pytest.raises(FitStateRefused, match=r"settings\.lr: 0\.05 -> 0\.01"):
        _fit(kokoro_small_random, clips, state, lr=0.01)
    items = clips
    with pytest.raises(FitStateRefused, match=r"train: .* -> "):
        fit_voice(kokoro_small_random, (items[1:2], items[2:]), FitVoiceConfig(epochs=2, lr=0.05, patience=10,
                  crop_frames=4), start="af_heart", progress=False, state_path=state)  # fmt: skip
    assert state.read_bytes() == before, "a refused state is left as it was"
    state.write_bytes(b"not a state")
    with pytest.raises(FitStateRefused, match="not a readable fit state"):
        _fit(kokoro_small_random, clips, state)
