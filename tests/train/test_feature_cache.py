"""The trainer's frozen-feature cache is keyed by content, and prosody_items=0 works (issue 16, item 6).

Two corpora prepared separately both number their sentences s00000, s00001, ...: a cache keyed by item
id would hand the second corpus the first one's ALBERT features (a shape error, or, for equal lengths,
silently wrong numbers).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from helpers.kokoro.forward import upstream_features
from helpers.train.config import TrainConfig
from helpers.train.items import TrainItem, collate
from helpers.train.trainer import Trainer
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder


def _corpus(seed: int, lengths: list[int]) -> list[TrainItem]:
    g = np.random.default_rng(seed)
    return [
        TrainItem(
            f"s{i:05d}",
            np.array([0, *g.integers(1, 178, n - 2), 0]),
            (g.standard_normal(256) * 0.1).astype(np.float32),
        )
        for i, n in enumerate(lengths)
    ]


def test_features_follow_the_tokens_not_the_ids_and_prosody_items_zero_trains(fresh_small_model, tmp_path):
    model = fresh_small_model()
    report = replace_duration_encoder(model, SurgeryConfig(n_layers=1, d_state=4, expand=1))
    first = _corpus(0, [8, 11, 6])
    same_lengths = _corpus(1, [8, 11, 6])  # same ids and lengths, other sentences
    other_lengths = _corpus(2, [12, 7, 9])  # same ids, other lengths
    cfg = TrainConfig(steps=2, batch_size=3, prosody_items=0, out_dir=str(tmp_path / "run"))
    tr = Trainer(model, report.removed, first, cfg)

    assert tr.evaluate(first)  # fills the cache with the first corpus under ids s00000..s00002
    for corpus in (same_lengths, other_lengths):
        batch = collate(corpus)
        expected = upstream_features(model, batch.ids, batch.pad)  # (B, 512, T)
        valid = (~batch.pad)[:, None, :]  # the cache keeps each item's own T columns (0 beyond)
        got = tr._cached_upstream(batch)
        torch.testing.assert_close(got * valid, expected * valid, rtol=0, atol=1e-6)
    # equal lengths: an id-keyed cache would not crash but silently score the wrong sentences
    alone = Trainer(
        model, report.removed, same_lengths, dataclasses.replace(cfg, out_dir=str(tmp_path / "b"))
    )
    np.testing.assert_equal(tr.evaluate(same_lengths), alone.evaluate(same_lengths))  # NaN == NaN here

    row = tr.train_step()  # prosody_items=0: no F0/N passes, the duration and feature losses still train
    assert row is not None and np.isfinite(row["loss"]) and "f0" not in row and row["feature"] > 0
