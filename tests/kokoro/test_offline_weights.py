"""The rebuilt offline weights are the real Kokoro: they agree with onnxruntime running the same export."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from helpers.grid import SAMPLES_PER_FRAME
from helpers.kokoro import weights as W
from helpers.kokoro.forward import style_for, synthesize_ids
from helpers.kokoro.g2p import phonemes_to_ids, phonemize
from helpers.kokoro.synth import synthesize

pytestmark = pytest.mark.slow

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Would you like a cup of tea before we leave for the station?",
    "On the third of May, nineteen people gathered in the old library to read aloud.",
    "Stop! Don't touch that wire, it is still live.",
    "Prosody is the music of speech: rhythm, stress, and intonation working together.",
    "I bought apples, pears, and two loaves of bread.",
]


@pytest.fixture(scope="module")
def ort_session():
    ort = pytest.importorskip("onnxruntime")
    blob = W.onnx_with_duration_output(W.assemble_onnx())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(blob, opts, providers=["CPUExecutionProvider"])


def _logmel(audio: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=audio, sr=24000, n_fft=2048, win_length=1200, hop_length=300, n_mels=80
    )
    return np.log(mel + 1e-5)


def test_rebuilt_weights_match_onnxruntime(kokoro_offline, ort_session):
    pack = kokoro_offline.voice("jf_alpha")
    same = total = 0
    worst = 0
    corrs = []
    for text in SENTENCES:
        ps = phonemize(text)
        ids = phonemes_to_ids(ps, strict=False)
        ref_s = style_for(pack, len(ps))
        audio_ort, dur_ort = ort_session.run(
            None,
            {
                "tokens": np.array([ids], dtype=np.int64),
                "style": ref_s.numpy(),
                "speed": np.ones(1, np.float32),
            },
        )
        dur_ort = np.asarray(dur_ort).reshape(-1).astype(int)
        out = synthesize_ids(kokoro_offline.model, ids, ref_s, seed=0, decoder=False)  # its durations only
        dur_pt = out["durations"].numpy()
        same += int((dur_pt == dur_ort).sum())
        total += len(ids)
        worst = max(worst, int(np.abs(dur_pt - dur_ort).max()))
        # durations forced equal: the rest of the network must give the same spectrum
        forced = synthesize_ids(kokoro_offline.model, ids, ref_s, seed=0, durations=torch.from_numpy(dur_ort))
        a_pt, a_ort = forced["audio"].numpy(), np.asarray(audio_ort).reshape(-1)
        n = min(len(a_pt), len(a_ort))
        corrs.append(np.corrcoef(_logmel(a_pt[:n]).ravel(), _logmel(a_ort[:n]).ravel())[0, 1])
    assert same / total >= 0.95, f"only {same}/{total} durations identical to onnxruntime"
    assert worst <= 1, f"a duration differs by {worst} frames"
    assert min(corrs) >= 0.95, f"log-mel correlation with onnxruntime {np.round(corrs, 3)}"


def test_offline_audio_is_real_speech_shaped(kokoro_offline):
    syn = synthesize(kokoro_offline, "This sentence checks the audio contract.", voice="jf_alpha", seed=1)
    assert syn.sample_rate == 24000
    assert np.isfinite(syn.audio).all()
    assert len(syn.audio) == SAMPLES_PER_FRAME * int(syn.durations.sum())
    rms = float(np.sqrt(np.mean(syn.audio**2)))
    assert rms > 0.01, f"audio is near-silent (rms {rms:.4f})"
    assert len(syn.f0) == 2 * int(syn.durations.sum()) == len(syn.energy)
    voiced = syn.f0[syn.f0 > 50]
    assert len(voiced) > 0.2 * len(syn.f0) and 70 < np.median(voiced) < 500


def test_every_kmodel_key_is_accounted_for(kokoro_offline):
    ref = kokoro_offline.model.state_dict()
    absent = kokoro_offline.absent_keys
    assert set(absent) <= set(ref)
    assert all(k.startswith("bert.pooler") or ".norm." in k for k in absent), absent
    # the InstanceNorm affine parameters kept at init are the identity
    for k in absent:
        if k.endswith("norm.weight"):
            assert torch.all(ref[k] == 1)
    assert all(torch.isfinite(v).all() for v in ref.values())


def test_wrong_checksum_is_a_clear_error():
    parts = [W.read_part(i) for i in range(4)]
    parts[2] = parts[2][:-10] + b"0123456789"
    with pytest.raises(W.WeightsError, match="sha256 mismatch"):
        W.assemble_onnx(parts)
