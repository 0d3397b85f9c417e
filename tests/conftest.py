"""Shared fixtures: the real offline model is loaded once per test session (cached on disk)."""

from __future__ import annotations

import os
import socket

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


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection attempt fails loudly, and the hub is marked offline."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from helpers.kokoro import g2p

    g2p.english_g2p.cache_clear()
    yield
    g2p.english_g2p.cache_clear()
