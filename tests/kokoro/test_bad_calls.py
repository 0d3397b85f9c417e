"""Bad calls to synthesis fail early and say why (issue 16, item 2 for synthesis; item 4 for voice packs).

Text that is not English is screened before G2P: synthesis strips emoji, control characters and other
scripts with a warning, and refuses text with nothing English left. Speed must satisfy 0 < speed <= 4.
A voice pack of the wrong shape, or a pack file that cannot be read, is refused naming the file.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from helpers.kokoro.forward import synthesize_ids
from helpers.kokoro.g2p import G2PError, phonemize
from helpers.kokoro.synth import as_pack, predict_prosody, synthesize
from helpers.kokoro.textscreen import screen_text
from helpers.kokoro.voices import VoiceError, read_pack_file

PACK = torch.randn(510, 1, 256, generator=torch.Generator().manual_seed(0)) * 0.1


def test_screen_codes_and_cleaned_text():
    cases = {
        "Hello \U0001f642 there.": (("emoji",), "Hello there."),
        "Hi \U0001f44d\U0001f3fd!": (("emoji",), "Hi!"),
        "你好": (("other_script", "no_latin_letters"), ""),
        "Hello Привет.": (("other_script",), "Hello."),
        "ring\x07 now": (("control_chars",), "ring now"),
        "Café, naïve, 42 °C, $5 & 10% © 2020.\tOk\r\n": ((), "Café, naïve, 42 °C, $5 & 10% © 2020. Ok"),
        "1984": ((), "1984"),
    }
    for text, (codes, cleaned) in cases.items():
        s = screen_text(text)
        assert (s.codes, s.cleaned) == (codes, cleaned), text
    assert "U+1F642" in screen_text("\U0001f642").describe()


def test_g2p_strips_with_a_warning_or_refuses_in_strict_mode():
    with pytest.warns(UserWarning, match=r"removed before G2P \(emoji: '🙂' \(U\+1F642\)\)"):
        stripped = phonemize("Good morning \U0001f642.")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clean text: no warning
        assert stripped == phonemize("Good morning.")
    with pytest.raises(G2PError, match="not English speech"):
        phonemize("Good morning \U0001f642.", strict=True)
    for text in ("\U0001f642", "你好。", "\x07\x07"):
        with pytest.raises(G2PError, match="no pronounceable symbols"):
            phonemize(text)  # nothing English left: refused even when stripping


@pytest.mark.parametrize("speed", [0, -1, 4.5, float("nan"), float("inf"), "fast", None])
def test_speed_outside_0_to_4_is_a_clear_error(kokoro_small_random, speed):
    ps = "hˈI."
    with pytest.raises(ValueError, match=r"speed must"):
        predict_prosody(kokoro_small_random, ps, PACK, speed=speed)
    with pytest.raises(ValueError, match=r"speed must"):
        synthesize(kokoro_small_random, phonemes=ps, voice=PACK, speed=speed)
    with pytest.raises(ValueError, match=r"speed must"):
        synthesize_ids(kokoro_small_random.model, [0, 50, 0], PACK[0], speed=speed)


def test_synthesis_speaks_the_english_part_and_says_what_it_dropped(kokoro_small_random):
    pros = predict_prosody(kokoro_small_random, "hˈI.", PACK, speed=4)  # the limit itself is allowed
    assert len(pros["durations"]) == 6
    with pytest.warns(UserWarning, match="emoji"):
        out = synthesize(kokoro_small_random, "Hi \U0001f642.", voice=PACK)
    assert out.phonemes == phonemize("Hi.") and np.isfinite(out.audio).all() and len(out.audio) > 0
    with pytest.raises(G2PError, match="no_latin_letters"):
        synthesize(kokoro_small_random, "\U0001f642", voice=PACK)


def test_voice_pack_files_and_shapes_are_checked(kokoro_small_random, tmp_path):
    good = tmp_path / "my voice.v2.pt"
    torch.save(PACK, good)
    assert torch.equal(as_pack(kokoro_small_random, str(good)), PACK)
    np.save(tmp_path / "pack.npy", PACK.numpy())
    assert torch.equal(as_pack(kokoro_small_random, tmp_path / "pack.npy"), PACK)

    torch.save(torch.zeros(510, 128), tmp_path / "half.pt")
    with pytest.raises(VoiceError, match=r"half\.pt: expected a float32 voice pack \[510, 1, 256\].*\[510, 128\]"):
        read_pack_file(tmp_path / "half.pt")
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:200])
    with pytest.raises(VoiceError, match=r"cut\.pt: not a readable voice pack"):
        read_pack_file(tmp_path / "cut.pt")
    marker = tmp_path / "ran"
    torch.save({"pack": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(VoiceError, match=r"evil\.pt: not a readable voice pack"):
        read_pack_file(tmp_path / "evil.pt")
    assert not marker.exists()  # read weights-only: the payload never ran
    with pytest.raises(FileNotFoundError, match="voice pack file not found"):
        as_pack(kokoro_small_random, str(tmp_path / "missing.pt"))
    with pytest.raises(VoiceError, match=r"\[3, 7\]"):
        as_pack(kokoro_small_random, torch.zeros(3, 7))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (self.marker,))
