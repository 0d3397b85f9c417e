"""Values that would load and fail much later are refused where they are read, naming the file (issue 27)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from helpers.kokoro.voices import PACK_KEY, VoiceError, float_pack, read_pack_file


@pytest.mark.parametrize("scale", [1e30, 1e3])
def test_a_scaled_voice_pack_is_refused(tmp_path, scale):
    pack = torch.rand(510, 1, 256) * 2 - 1
    path = tmp_path / "loud.safetensors"
    save_file({PACK_KEY: pack * scale}, str(path))
    with pytest.raises(VoiceError, match=rf"{path}: values up to .*every stock pack stays within"):
        read_pack_file(path)
    with pytest.raises(VoiceError, match="a scaled or damaged pack"):
        float_pack(pack * scale)
    float_pack(pack * 3)  # a stock pack's range is fine
