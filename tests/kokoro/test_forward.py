"""One forward path: synthesis, the training forward and evaluation agree exactly on durations and F0."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.kokoro.forward import (
    alignment_from_durations,
    decode,
    duration_logits,
    durations_from_logits,
    encode,
    f0_energy,
    style_for,
    upstream_features,
)
from helpers.kokoro.g2p import phonemes_to_ids
from helpers.kokoro.synth import predict_prosody, synthesize
from helpers.train.items import TrainItem, collate

PHONEMES = ["həlˈO wˈɜɹld.", "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɑɡ."]


@pytest.mark.slow
def test_synthesis_training_and_evaluation_share_durations_and_f0(kokoro_offline):
    kk = kokoro_offline
    pack = kk.voice()
    model = kk.model
    # synthesis (B = 1) and evaluation's prosody path
    syn = [synthesize(kk, phonemes=p, voice=pack, seed=0) for p in PHONEMES]
    pro = [predict_prosody(kk, p, pack) for p in PHONEMES]
    # the training forward: one right-padded batch of both sentences
    items = [
        TrainItem(str(i), np.asarray(phonemes_to_ids(p, strict=False)), style_for(pack, len(p)).numpy().reshape(-1))
        for i, p in enumerate(PHONEMES)
    ]
    batch = collate(items)
    assert bool(batch.pad.any()), "the test needs padding in the batch"
    with torch.no_grad():
        d_en = upstream_features(model, batch.ids, batch.pad)  # (2, 512, T)
        s = batch.ref_s[:, 128:]
        d = encode(model, d_en, s, batch.lengths, batch.pad)  # (2, T, 640)
        dur = durations_from_logits(duration_logits(model, d, batch.lengths))  # (2, T)
        for b in range(2):
            n = int(batch.lengths[b])
            f0, _ = f0_energy(model, d[b, :n], dur[b, :n], s[b : b + 1])
            np.testing.assert_array_equal(dur[b, :n].numpy(), syn[b].durations)
            np.testing.assert_array_equal(pro[b]["durations"], syn[b].durations)
            np.testing.assert_allclose(f0.numpy(), syn[b].f0, atol=1e-3)
            np.testing.assert_allclose(pro[b]["f0"], syn[b].f0, atol=1e-3)


def test_decoder_seed_leaves_the_global_rng_alone(kokoro_small_random):
    model = kokoro_small_random.model
    ids = torch.tensor([0, 50, 83, 54, 0])
    dur = torch.tensor([1, 2, 3, 2, 1])
    aln = alignment_from_durations(dur)  # (5, 9)
    f0 = torch.full((18,), 120.0)
    n = torch.zeros(18)
    timbre = torch.zeros(1, 128)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with torch.no_grad():
        a = decode(model, ids, aln, f0, n, timbre, seed=7)
        b = decode(model, ids, aln, f0, n, timbre, seed=7)
    assert torch.equal(torch.rand(3), expected), "a seeded synthesis must not move the global RNG"
    assert torch.equal(a, b) and a.shape == (600 * 9,)
    crop = decode(model, ids, aln, f0, n, timbre, seed=7, crop=(2, 6))
    assert crop.shape == (600 * 4,)
