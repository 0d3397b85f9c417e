"""The English voice packs load offline from the project's own files, exactly as the NOTICE records them."""

from __future__ import annotations

import hashlib
import re

import pytest
import torch

from helpers.kokoro.loading import LoadedKokoro
from helpers.kokoro.voices import (
    DEFAULT_VOICE,
    ENGLISH_VOICES,
    JAPANESE_VOICES,
    VOICES_DIR,
    VoiceError,
    english_pack,
    load_voice,
    pack_file,
    tensor_sha256,
)

ROW = re.compile(r"^\| (\w+) \| `([0-9a-f]{64})` \| `([0-9a-f]{64})` \| `([0-9a-f]{64})` \|$", re.M)


def notice_rows() -> dict[str, tuple[str, str, str]]:
    """{voice: (original .pt sha256, .safetensors sha256, tensor sha256)} from data/voices/NOTICE.md."""
    return {m[1]: (m[2], m[3], m[4]) for m in ROW.finditer((VOICES_DIR / "NOTICE.md").read_text())}


def test_notice_lists_every_english_pack_and_the_licence_ships():
    assert set(notice_rows()) == set(ENGLISH_VOICES)
    assert "Apache License" in (VOICES_DIR / "LICENSE").read_text()
    assert "RobViren/kvoicewalk" in (VOICES_DIR / "NOTICE.md").read_text()


@pytest.mark.parametrize("source", ["offline-int8", "hub"])
def test_english_packs_load_offline_and_match_the_notice(no_network, source):
    """Network blocked: every English pack loads from data/voices/ (even when the weights came from the hub)."""
    rows = notice_rows()
    for name in ENGLISH_VOICES:
        pack = load_voice(name, source)
        assert pack.shape == (510, 1, 256) and pack.dtype == torch.float32, name
        _, file_sha, tensor_sha = rows[name]
        assert hashlib.sha256(pack_file(name).read_bytes()).hexdigest() == file_sha, name
        assert tensor_sha256(pack) == tensor_sha, f"{name}: values differ from the converted pack"
        assert torch.isfinite(pack).all()


def test_packs_are_distinct_voices():
    a, b = load_voice("af_heart"), load_voice("am_michael")
    assert not torch.equal(a, b)


def test_default_voice_is_english_for_every_source(no_network):
    for source in ("offline-int8", "hub", "random"):
        kk = LoadedKokoro(torch.nn.Linear(1, 1), source, "", {})
        assert kk.default_voice() == DEFAULT_VOICE == "af_heart"
        assert kk.voices()[0] == "af_heart"
        assert set(ENGLISH_VOICES) | set(JAPANESE_VOICES) <= set(kk.voices())  # Japanese packs stay
        assert torch.equal(kk.voice(), load_voice("af_heart")) and torch.equal(kk.voice("auto"), kk.voice())


def test_hub_only_voices_are_listed_only_with_hub_weights():
    offline = LoadedKokoro(torch.nn.Linear(1, 1), "offline-int8", "", {})
    hub = LoadedKokoro(torch.nn.Linear(1, 1), "hub", "", {})
    assert "af_sarah" in hub.voices() and "af_sarah" not in offline.voices()


def test_missing_or_wrong_pack_file_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(VoiceError, match=r"af_heart\.safetensors is missing"):
        english_pack("af_heart", tmp_path)
    save_file({"pack": torch.zeros(10, 1, 256)}, str(tmp_path / "af_heart.safetensors"))
    with pytest.raises(VoiceError, match=r"af_heart\.safetensors: expected a float32 voice pack"):
        english_pack("af_heart", tmp_path)
    save_file({"style": torch.zeros(510, 1, 256)}, str(tmp_path / "af_bella.safetensors"))
    with pytest.raises(VoiceError, match="no tensor named 'pack'"):
        english_pack("af_bella", tmp_path)
