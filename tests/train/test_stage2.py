"""Stage 2 compares like with like: silences out of the duration loss, unvoiced frames out of the F0 loss,
and the F0/N and mel utterances drawn at random, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.kokoro.g2p import phonemes_to_ids, spoken_tokens
from helpers.train import losses as L
from helpers.train.config import TrainConfig
from helpers.train.items import TrainItem, collate, draw_prosody_items, prosody_mask
from helpers.train.trainer import Trainer
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

SMALL = SurgeryConfig(n_layers=1, d_state=4, expand=1)
PHONEMES = ["“hˈɛlO, wˈɜɹld.”", "ðə kˈæt sˈæt.", "wˈʌt ɪz ɪt?", "nˈO pˈʌŋktʃuˌeɪʃən"]


def test_spoken_tokens_drop_bos_eos_and_the_punctuation_next_to_them():
    ids = phonemes_to_ids("“hˈɛlO, wˈɜɹld.”")  # BOS “ h ˈ ɛ l O , ␣ w ˈ ɜ ɹ l d . ” EOS
    keep = spoken_tokens(ids)
    assert keep.tolist() == [False, False] + [True] * 13 + [False, False, False]
    assert spoken_tokens(phonemes_to_ids("ɑː")).tolist() == [False, True, True, False]  # ː is spoken
    with pytest.raises(ValueError, match="BOS/EOS"):
        spoken_tokens([5, 6, 7])


def _items(seed: int = 0) -> list[TrainItem]:
    g = np.random.default_rng(seed)
    items = []
    for i, ph in enumerate(PHONEMES):
        ids = np.asarray(phonemes_to_ids(ph))
        dur = g.integers(1, 4, len(ids))
        F = int(dur.sum())
        f0 = np.abs(g.normal(150, 30, 2 * F)).astype(np.float32)
        f0[g.random(2 * F) < 0.3] = 0.0  # pYIN's unvoiced frames
        items.append(
            TrainItem(
                f"u{i}",
                ids,
                (g.standard_normal(256) * 0.1).astype(np.float32),
                dur,
                f0,
                g.normal(0, 1, 2 * F).astype(np.float32),
                g.normal(-1, 1, (80, 2 * F)).astype(np.float32),
            )
        )
    return items


def _trainer(fresh_small_model, tmp_path, items, **cfg):
    model = fresh_small_model()
    report = replace_duration_encoder(model, SMALL)
    base = dict(stage="finetune", steps=4, batch_size=len(items), prosody_items=0, mel_items=0)
    base.update(cfg, out_dir=str(tmp_path / "run"))
    return Trainer(model, report.removed, items, TrainConfig(**base))


def _terms(tr: Trainer, items: list[TrainItem]) -> dict[str, float]:
    batch = collate(items).to(tr.device)
    batch.d_en = tr._cached_upstream(batch)
    with torch.no_grad():
        return tr.compute_loss(batch)[1]


def test_silent_tokens_do_not_contribute_to_the_duration_loss(fresh_small_model, tmp_path):
    items = _items()
    tr = _trainer(fresh_small_model, tmp_path, items)
    base = _terms(tr, items)
    edited = _items()
    for it in edited:  # BOS, EOS and the punctuation next to them: the recording's silences
        silent = ~spoken_tokens(it.token_ids)
        it.durations[silent] += 17
    again = _terms(tr, edited)
    assert again["dur_l1"] == pytest.approx(base["dur_l1"], abs=1e-6)
    assert again["dur_bce"] == pytest.approx(base["dur_bce"], abs=1e-6)
    inner = _items()
    inner[0].durations[5] += 17  # a spoken token
    moved = _terms(tr, inner)
    assert abs(moved["dur_l1"] - base["dur_l1"]) > 1e-3 and abs(moved["dur_bce"] - base["dur_bce"]) > 1e-4


def test_prosody_mask_is_false_on_padding():
    items = _items()
    batch = collate(items)
    mask = prosody_mask(batch)
    assert mask.shape == batch.ids.shape and not mask[batch.pad].any()
    for b, it in enumerate(items):
        assert mask[b, : len(it)].numpy().tolist() == spoken_tokens(it.token_ids).tolist()


def test_unvoiced_frames_do_not_contribute_to_the_f0_loss():
    g = torch.Generator().manual_seed(0)
    target = 100 + 50 * torch.rand(40, generator=g)
    target[::3] = 0.0  # unvoiced
    pred = 120 + 10 * torch.randn(40, generator=g)
    other = pred.clone()
    other[::3] += 80.0  # change the prediction on unvoiced frames only
    voiced = target > 0
    assert L.f0_loss(other, target, voiced) == pytest.approx(float(L.f0_loss(pred, target, voiced)))
    expected = torch.nn.functional.smooth_l1_loss(pred[voiced], target[voiced]) / 10
    assert float(L.f0_loss(pred, target, voiced)) == pytest.approx(float(expected), rel=1e-6)
    assert float(L.f0_loss(other, target)) > float(L.f0_loss(pred, target))  # stage 1: every frame counts


def test_stage2_f0_term_reads_voiced_frames_only(fresh_small_model, tmp_path):
    items = _items()
    for it in items:
        it.f0[:] = 0.0  # nothing voiced: nothing to imitate
    tr = _trainer(fresh_small_model, tmp_path, items, prosody_items=2)
    terms = _terms(tr, items)
    assert terms["f0"] == 0.0 and terms["energy"] > 0


def test_prosody_items_are_drawn_at_random_and_reproducibly():
    draws = [draw_prosody_items(16, 4, seed=0, step=s) for s in range(50)]
    assert all(len(d) == 4 == len(set(d)) and all(0 <= i < 16 for i in d) for d in draws)
    assert len({tuple(d) for d in draws}) > 40  # they vary from step to step
    assert {i for d in draws for i in d} == set(range(16))  # every utterance gets its turn
    assert draws[7] == draw_prosody_items(16, 4, seed=0, step=7)  # a resumed run draws the same
    assert draws[7] != draw_prosody_items(16, 4, seed=1, step=7)
    assert draw_prosody_items(3, 4, 0, 0) != [] and sorted(draw_prosody_items(3, 4, 0, 0)) == [0, 1, 2]
    assert draw_prosody_items(5, 0, 0, 0) == []


def test_trainer_draws_the_prosody_items_of_its_step(fresh_small_model, tmp_path, monkeypatch):
    import helpers.train.stage_losses as SL

    calls = []
    real = SL.draw_prosody_items

    def spy(n, k, seed, step):
        calls.append((n, k, seed, step))
        return real(n, k, seed, step)

    monkeypatch.setattr(SL, "draw_prosody_items", spy)
    items = _items()
    tr = _trainer(fresh_small_model, tmp_path, items, prosody_items=2, mel_items=1, mel_crop_frames=4, seed=5)
    for _ in range(2):
        assert tr.train_step() is not None
    assert calls == [(4, 2, 5, 0), (4, 2, 5, 1)]


def test_stage2_validation_leaves_the_silences_out(fresh_small_model, tmp_path):
    items = _items()
    tr = _trainer(fresh_small_model, tmp_path, items)
    base = tr.evaluate(items)
    edited = _items()
    for it in edited:
        it.durations[~spoken_tokens(it.token_ids)] += 9  # longer recorded silences: same prosody
        it.f0 = np.zeros(2 * int(it.durations.sum()), np.float32)
        it.f0[: 2 * 20] = 140.0
    again = tr.evaluate(edited)
    assert np.isfinite(base["val_boundary_ms"]) and base["val_dur_within_1"] == again["val_dur_within_1"]
    assert again["val_boundary_ms"] == base["val_boundary_ms"]
