"""Shared fixtures: the real offline model is loaded once per test session (cached on disk)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network


@pytest.fixture(scope="session")
def kokoro_offline():
    from helpers.kokoro.loading import load_kokoro

    return load_kokoro("offline-int8", verbose=False)


@pytest.fixture(scope="session")
def kokoro_small_random():
    from helpers.kokoro.loading import load_kokoro

    return load_kokoro("random", size="small", verbose=False)


@pytest.fixture
def fresh_small_model():
    """A factory of identical small random Kokoros (seeded; weight_norm modules cannot be deep-copied)."""
    from helpers.kokoro.loading import load_kokoro

    return lambda: load_kokoro("random", size="small", seed=0, verbose=False).model
