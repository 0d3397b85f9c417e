"""Speaking with the real model: kokoro's own KPipeline on the operated model, offline; speak() end to end."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mamba(kokoro_offline):
    from helpers.compare.contenders import adapter_twin
    from helpers.transplant.adapters import SHIPPED_ADAPTER

    return adapter_twin(kokoro_offline, SHIPPED_ADAPTER)


def test_kpipeline_reads_a_paragraph_offline(mamba, no_network):
    from kokoro import KPipeline

    from helpers.speak import kpipeline

    pipe = kpipeline(mamba)
    assert isinstance(pipe, KPipeline) and pipe.model is mamba.model
    paragraph = "The rain stopped at noon. Everyone went outside to look at the sky. Was that a rainbow?"
    results = list(pipe(paragraph, voice="af_heart"))
    audio = torch.cat([r.audio for r in results])
    assert len(results) >= 1 and audio.numel() > 24000 * 2 and torch.isfinite(audio).all()
    assert audio.abs().max() > 0.05  # speech, not silence


def test_kpipeline_durations_equal_synthesize(mamba, tmp_path):
    from helpers.kokoro.synth import synthesize
    from helpers.kokoro.voices import pack_file
    from helpers.speak import kpipeline

    pipe = kpipeline(mamba)
    sentence = "Could you tell me which platform the northbound train leaves from?"
    for voice in ("am_michael", str(pack_file("am_michael"))):  # a name, and the same pack as a file
        (result,) = list(pipe(sentence, voice=voice))
        ours = synthesize(mamba, phonemes=result.phonemes, voice="am_michael")
        assert np.array_equal(result.pred_dur.numpy(), ours.durations)
    assert result.phonemes == ours.phonemes


def test_speak_writes_one_wav_and_pieces(kokoro_offline, tmp_path):
    from helpers.speak import speak, write_speech

    text = "One short sentence. And another, a little longer, with a comma!\n\nA new paragraph."
    speech = speak(kokoro_offline, text, voice="af_heart", progress=False)
    assert len(speech.pieces) == 3 and speech.seconds > 2
    assert len(speech.audio) == sum(len(a) for a in speech.piece_audio)
    paths = write_speech(speech, tmp_path / "out.wav", per_piece=True)
    assert [p.name for p in paths] == ["out.wav", "out-001.wav", "out-002.wav", "out-003.wav"]
    y, sr = sf.read(str(paths[0]))
    assert sr == 24000 and abs(len(y) - len(speech.audio)) == 0
    with pytest.raises(FileExistsError):
        write_speech(speech, tmp_path / "out.wav")
