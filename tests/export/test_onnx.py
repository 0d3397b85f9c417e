"""ONNX export: the iSTFT is real, existing files are kept, and onnxruntime speaks as torch does (the scan's Loop:
tests/mamba/test_scan_loop.py).

Parity bounds (full model, shipped Mamba adapter, 20 held-out sentences of data/text/heldout.txt):
durations identical on all 20; audio (first 5) against `synthesize` in torch: MCD (no DTW, same length) under
1.0 dB and waveform correlation over 0.98. The only intended difference is the decoder's random noise, drawn
by each runtime: two torch runs with different seeds differ by MCD ~0.3 dB, correlation ~0.997.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.export.onnx import OnnxKokoro, RealISTFT, export_onnx, loop_ops
from helpers.settings import REPO_ROOT

ort = pytest.importorskip("onnxruntime")


def test_real_istft_is_torch_istft():
    from kokoro.istftnet import TorchSTFT

    ref = TorchSTFT(filter_length=20, hop_length=5, win_length=20)
    real = RealISTFT(20, 5, ref.window)
    g = torch.Generator().manual_seed(0)
    mag, phase = torch.rand(2, 11, 37, generator=g), torch.rand(2, 11, 37, generator=g) * 6 - 3
    a, b = real.inverse(mag, phase), ref.inverse(mag, phase)
    assert a.shape == b.shape == (2, 1, 5 * 36)
    assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()
    x = torch.randn(2, 800, generator=g)
    (m1, p1), (m2, p2) = real.transform(x), ref.transform(x)
    assert m1.shape == m2.shape == (2, 11, 161) and torch.allclose(m1, m2, atol=1e-4)
    sure = m2 > 1e-3  # the phase of a (near) zero bin is arbitrary
    assert torch.allclose(torch.cos(p1[sure]), torch.cos(p2[sure]), atol=1e-4)
    assert torch.allclose(torch.sin(p1[sure]), torch.sin(p2[sure]), atol=1e-4)
    # the phase itself: the decoder convolves it, so a 2 pi flip between -pi and pi changes the audio. The FFT's
    # exact zeros (always at DC and Nyquist) must give pi as torch.angle does; a rare interior bin whose
    # imaginary part is 0 in one rounding and -1e-7 in the other may still flip
    assert ((p1 - p2).abs() > 1e-3).float().mean() < 1e-3


def test_export_refuses_to_overwrite(tmp_path, kokoro_small_random):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_onnx(kokoro_small_random, path)
    with pytest.raises(ValueError, match=r"\.onnx"):
        export_onnx(kokoro_small_random, tmp_path / "m.onx")
    assert path.read_bytes() == b"mine"


@pytest.mark.slow
def test_onnxruntime_matches_torch_on_8_heldout_sentences(tmp_path, kokoro_offline):
    from helpers.compare.contenders import adapter_twin
    from helpers.compare.metrics import mcd
    from helpers.kokoro.g2p import phonemize
    from helpers.kokoro.synth import predict_prosody, synthesize
    from helpers.transplant.adapters import SHIPPED_ADAPTER

    mamba = adapter_twin(kokoro_offline, SHIPPED_ADAPTER)
    path = export_onnx(mamba, tmp_path / "mamba.onnx")
    assert loop_ops(path) >= 3  # one scan per layer, each a Loop
    onnx_model = OnnxKokoro(path)
    pack = kokoro_offline.voice("af_heart")
    sentences = (REPO_ROOT / "data" / "text" / "heldout.txt").read_text().splitlines()[:8]  # benchmarks/bench_onnx.py: all 20
    lengths = set()
    for i, text in enumerate(sentences):
        audio, dur = onnx_model.synthesize(text, pack)
        lengths.add(len(dur))
        if i < 2:  # the whole path in torch, audio included
            want = synthesize(mamba, text, voice=pack, seed=0)
            assert np.array_equal(dur, want.durations), (text, np.flatnonzero(dur != want.durations))
            assert audio.shape == want.audio.shape
            assert mcd(audio, want.audio, use_dtw=False) < 1.0, text
            assert np.corrcoef(audio, want.audio)[0, 1] > 0.98, text
        else:  # the same torch path stopped before the decoder (durations do not depend on it)
            want_dur = predict_prosody(mamba, phonemize(text), pack)["durations"]
            assert np.array_equal(dur, want_dur), (text, np.flatnonzero(dur != want_dur))
    assert len(lengths) >= 6  # one graph, many sequence lengths
