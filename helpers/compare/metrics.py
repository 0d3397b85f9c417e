"""Objective metrics for comparing two prosody models (LSTM vs Mamba) against targets or a teacher.

Every metric takes plain NumPy arrays (or strings) and returns one float, so it works on anything: a
`Synthesis`, dataset targets, a teacher's output. The grids are Kokoro's (see `helpers.data.features`):

* durations: integer frames of 25 ms per token (BOS/EOS included), as in ``Synthesis.durations``;
* F0: Hz on the 12.5 ms grid (80 frames per second), as in ``Synthesis.f0`` or pYIN targets (0 = unvoiced);
* audio: mono float samples (24 kHz unless told otherwise).

Which metric answers which question:

=====================  ==========================================================  ======
metric                 definition                                                  units
=====================  ==========================================================  ======
duration_mae           mean |d_pred - d_ref| over tokens                           frames
duration_within        share of tokens with |d_pred - d_ref| <= tol (tol = 1)      %
boundary_mae_ms        mean |edge_pred - edge_ref| over the inner token edges      ms
tempo_boundary_mae_ms  the same after scaling d_pred to the total of d_ref:        ms
                       rhythm only, blind to a uniformly faster or slower tempo
f0_rmse                RMS of (f0 - f0_ref) over frames voiced in both             Hz
  (remove_mean=True)   the same after subtracting each curve's mean: shape only    Hz
voicing_error          share of frames whose voiced/unvoiced decision differs      %
mcd                    mel-cepstral distortion, DTW-aligned, c1..cK (no c0)        dB
wer                    word error rate of a transcript against the reference text  %
dnsmos                 DNSMOS P.835 quality predicted from the audio alone:        MOS 1..5
                       overall (ovrl), speech signal (sig), background (bak)
=====================  ==========================================================  ======

"Within 1 frame" flatters (scaling a model's own durations to a clip's length already scores >90% on
real speech): read it next to the boundary error in ms (benchmarks/README.md, "Duration targets by DTW").

Against the teacher (the original LSTM Kokoro) the same functions are used: `duration_agreement` is
`duration_within` against the teacher's durations, and the F0 RMSE against the teacher is `f0_rmse` on the
teacher's F0 with the student forced onto the teacher's durations (so the two curves share one time grid).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from helpers.data.asr import normalize_text, transcribe  # noqa: F401  (re-exported)
from helpers.grid import FRAME_MS, SAMPLE_RATE

VOICED_MIN_HZ = 40.0  # an F0 value above this counts as voiced (the rule helpers.plots draws with)
MCD_CONSTANT = 10.0 / math.log(10.0) * math.sqrt(2.0)  # dB per unit of Euclidean cepstral distance


# --------------------------------------------------------------------------------------------- durations


def _durations_pair(pred, ref) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred, dtype=np.float64).ravel(), np.asarray(ref, dtype=np.float64).ravel()
    if pred.shape != ref.shape:
        raise ValueError(f"duration vectors differ in length: {pred.shape[0]} vs {ref.shape[0]} tokens")
    if pred.size == 0:
        raise ValueError("empty duration vectors")
    return pred, ref


def duration_mae(pred, ref) -> float:
    """Mean absolute duration error over tokens, in frames of 25 ms: mean(|d_pred - d_ref|)."""
    pred, ref = _durations_pair(pred, ref)
    return float(np.abs(pred - ref).mean())


def duration_within(pred, ref, tol: int = 1) -> float:
    """Share of tokens whose duration is within `tol` frames of the reference, in % (100 = all)."""
    pred, ref = _durations_pair(pred, ref)
    return float(100.0 * (np.abs(pred - ref) <= tol + 1e-9).mean())


def boundary_errors_ms(pred, ref) -> np.ndarray:
    """|edge_pred - edge_ref| in ms for every inner token edge (cumulative durations; 1 frame = 25 ms).

    Unlike the per-token error, a token that is one frame too long shifts every later edge: this is what a
    listener hears as drift. The final edge (total length) is excluded.
    """
    pred, ref = _durations_pair(pred, ref)
    return FRAME_MS * np.abs(np.cumsum(pred)[:-1] - np.cumsum(ref)[:-1]).astype(np.float64)


def boundary_mae_ms(pred, ref) -> float:
    """Mean of `boundary_errors_ms`: the token-boundary drift in ms; NaN when there is only one token."""
    err = boundary_errors_ms(pred, ref)
    return float(err.mean()) if err.size else float("nan")


def tempo_boundary_mae_ms(pred, ref) -> float:
    """Tempo-normalised boundary error in ms: `boundary_mae_ms` after scaling the predicted durations by
    sum(ref) / sum(pred), so both span the same total time; NaN with one token or an empty prediction.

    Pass the spoken tokens only (`helpers.kokoro.g2p.spoken_tokens`): then the scaling matches the predicted
    speech to the recording's speech without its edge silences. A copy of the targets spoken uniformly
    faster or slower scores 0 (the plain boundary error grows with every edge); a reordered one does not.
    """
    pred, ref = _durations_pair(pred, ref)
    total = pred.sum()
    if total <= 0:
        return float("nan")
    return boundary_mae_ms(pred * (ref.sum() / total), ref)


def duration_agreement(student, teacher, tol: int = 1) -> float:
    """Agreement with the teacher: share of tokens within `tol` frames of the teacher's duration, in %."""
    return duration_within(student, teacher, tol)


def duration_errors(pred, ref, tol: int = 1) -> dict[str, float]:
    """The duration metrics at once: ``dur_mae_frames``, ``dur_within1_pct``, ``boundary_mae_ms`` and
    ``boundary_tempo_ms`` (`tempo_boundary_mae_ms`)."""
    return {
        "dur_mae_frames": duration_mae(pred, ref),
        f"dur_within{tol}_pct": duration_within(pred, ref, tol),
        "boundary_mae_ms": boundary_mae_ms(pred, ref),
        "boundary_tempo_ms": tempo_boundary_mae_ms(pred, ref),
    }


# -------------------------------------------------------------------------------------------------- F0


def _f0_pair(f0, ref) -> tuple[np.ndarray, np.ndarray]:
    f0, ref = np.asarray(f0, dtype=np.float64).ravel(), np.asarray(ref, dtype=np.float64).ravel()
    if f0.shape != ref.shape:
        raise ValueError(
            f"F0 curves differ in length ({f0.shape[0]} vs {ref.shape[0]} frames): put both on one grid "
            "first, e.g. synthesize with the reference's durations"
        )
    return np.nan_to_num(f0), np.nan_to_num(ref)


def voiced(f0, voiced_min_hz: float = VOICED_MIN_HZ) -> np.ndarray:
    """Boolean voicing decision per frame: F0 above `voiced_min_hz` (pYIN's 0 and Kokoro's dips are unvoiced)."""
    return np.nan_to_num(np.asarray(f0, dtype=np.float64)) > voiced_min_hz


def f0_rmse(f0, ref, voiced_min_hz: float = VOICED_MIN_HZ, remove_mean: bool = False) -> float:
    """Root-mean-square F0 difference in Hz over the frames voiced in both curves; NaN if there are none.

    ``remove_mean=True`` first subtracts each curve's mean over those frames: the error of the intonation
    *shape*, blind to a constant register offset (e.g. a voice pack that speaks higher than the reader).
    """
    f0, ref = _f0_pair(f0, ref)
    both = voiced(f0, voiced_min_hz) & voiced(ref, voiced_min_hz)
    if not both.any():
        return float("nan")
    a, b = f0[both], ref[both]
    if remove_mean:
        a, b = a - a.mean(), b - b.mean()
    return float(np.sqrt(np.mean((a - b) ** 2)))


def voicing_error(f0, ref, voiced_min_hz: float = VOICED_MIN_HZ) -> float:
    """Share of frames whose voiced/unvoiced decision differs between the two curves, in %."""
    f0, ref = _f0_pair(f0, ref)
    if f0.size == 0:
        return float("nan")
    return float(100.0 * (voiced(f0, voiced_min_hz) != voiced(ref, voiced_min_hz)).mean())


def f0_errors(f0, ref, voiced_min_hz: float = VOICED_MIN_HZ) -> dict[str, float]:
    """``f0_rmse_hz`` (voiced in both), ``f0_shape_rmse_hz`` (means removed) and ``voicing_err_pct``."""
    return {
        "f0_rmse_hz": f0_rmse(f0, ref, voiced_min_hz),
        "f0_shape_rmse_hz": f0_rmse(f0, ref, voiced_min_hz, remove_mean=True),
        "voicing_err_pct": voicing_error(f0, ref, voiced_min_hz),
    }


# ------------------------------------------------------------------------------------------------- MCD


def mel_cepstrum(
    audio,
    sample_rate: int = 24_000,
    order: int = 24,
    n_mels: int = 80,
    fmax: float | None = None,
    floor_db: float = 80.0,
) -> np.ndarray:
    """Audio -> (frames, order + 1) mel-cepstra c0..c_order on the 12.5 ms grid (at 24 kHz).

    Computed from the log-mel spectrum by a DCT (no pysptk/pyworld needed): the power mel spectrogram of
    `helpers.data.features` (80 HTK bands, 0..sr/2, window 1200, hop 300, at 24 kHz), natural log with a 1e-5
    floor, DCT-II (orthonormal) over the bands, divided by sqrt(2 * n_mels) and halved from log power to
    log amplitude, which puts the coefficients on the scale of SPTK's mel-cepstrum (log|H| = c0 +
    sum c_m cos(m w)). The mel filterbank stands in for SPTK's all-pass frequency warping, so absolute
    values are close to but not identical with WORLD/SPTK-based MCDs in papers; comparisons between
    models measured the same way are sound.
    """
    from scipy.fft import dct

    from helpers.data.audio import resample
    from helpers.data.features import FeatureSettings, fit_to_grid, mel_power

    y = np.asarray(audio, dtype=np.float32).ravel()
    settings = FeatureSettings(n_mels=n_mels, fmax=fmax)
    if sample_rate != settings.sample_rate:
        y = resample(y, sample_rate, settings.sample_rate)
    y = fit_to_grid(y, "pad")
    if y.size == 0:
        raise ValueError("empty audio")
    mel = mel_power(y, settings).astype(np.float64)  # (n_mels, frames)
    floor = max(float(mel.max()), 1e-12) * 10.0 ** (-floor_db / 10.0)
    log_power = np.log(np.maximum(mel, floor))
    cep = dct(log_power, type=2, norm="ortho", axis=0) / math.sqrt(2.0 * n_mels)  # log power -> amplitude
    return cep[: order + 1].T  # (frames, order + 1)


def mcd(
    audio,
    ref,
    sample_rate: int = 24_000,
    ref_sample_rate: int | None = None,
    order: int = 24,
    use_dtw: bool = True,
    fmax: float | None = None,
) -> float:
    """Mel-cepstral distortion in dB: mean over aligned frame pairs of 10/ln10 * sqrt(2 * sum_{m=1..K} dc_m^2).

    K = `order` (24): c0 (loudness) is excluded. Frames are paired by DTW on the cepstra c1..cK (librosa,
    Euclidean cost, steps (1,1), (1,0), (0,1)); with ``use_dtw=False`` the two must have equal length and
    are paired frame by frame. All frames count, silence included. Mel-cepstra: see `mel_cepstrum`;
    `fmax` limits the analysis band for both (e.g. 8000 against a recording made at 16 kHz, whose empty
    upper band would otherwise dominate).
    """
    a = mel_cepstrum(audio, sample_rate, order, fmax=fmax)[:, 1:]
    b = mel_cepstrum(ref, ref_sample_rate or sample_rate, order, fmax=fmax)[:, 1:]
    if use_dtw:
        import librosa

        _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")  # path: (steps, 2), end -> start
        a, b = a[path[:, 0]], b[path[:, 1]]
    elif a.shape != b.shape:
        raise ValueError(f"use_dtw=False needs equal lengths, got {a.shape[0]} and {b.shape[0]} frames")
    dist = np.sqrt(np.sum((a - b) ** 2, axis=1))  # (pairs,)
    return float(10.0 / math.log(10.0) * math.sqrt(2.0) * dist.mean())


def effective_bandwidth(
    audio, sample_rate: int = 24_000, floor_db: float = 70.0, step_hz: float = 250.0
) -> float:
    """Highest frequency (Hz, rounded down to `step_hz`) where the long-term spectrum is within `floor_db`
    of its peak: ~8000 for a 16 kHz recording resampled to 24 kHz, ~12000 for Kokoro's own output."""
    import librosa

    y = np.asarray(audio, dtype=np.float32).ravel()
    if y.size < 2048:
        return sample_rate / 2
    spec = np.mean(np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2, axis=1)  # (1025,)
    if spec.max() <= 0:
        return sample_rate / 2
    freqs = librosa.fft_frequencies(sr=sample_rate, n_fft=2048)
    above = np.nonzero(10 * np.log10(spec / spec.max() + 1e-30) > -floor_db)[0]
    top = freqs[above[-1]] if above.size else sample_rate / 2
    return float(max(step_hz, np.floor(top / step_hz) * step_hz))


# ------------------------------------------------------------------------------------------------- WER



def wer(reference: str, hypothesis: str) -> float:
    """Word error rate in %: (substitutions + deletions + insertions) / reference words, after `normalize_text`.

    0 = perfect; it can exceed 100 when the hypothesis inserts many words. Computed by jiwer.
    """
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        raise ValueError(f"reference has no words: {reference!r}")
    return float(100.0 * jiwer.wer(ref, hyp))



def asr_wer(audio, reference: str, sample_rate: int = SAMPLE_RATE) -> tuple[float, str]:
    """(WER in %, transcript): `transcribe` the audio with pocketsphinx and score it with `wer`.

    A relative check only (see `transcribe`).
    """
    hyp = transcribe(audio, sample_rate)
    return wer(reference, hyp), hyp


# ---------------------------------------------------------------------------------------------- DNSMOS

DNSMOS_RATE = 16_000  # the DNSMOS models' only sample rate


@functools.lru_cache(maxsize=2)
def _dnsmos_model(threads: int):
    """speechmos' DNSMOS P.835 predictor (its onnx models ship inside the wheel), on CPU with `threads`
    intra-op threads (speechmos' own constructor would take every core)."""
    from pathlib import Path

    import onnxruntime as ort

    try:
        from speechmos import dnsmos as D
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "DNSMOS needs speechmos (the eval extra): pip install -e '.[eval]' -c constraints.txt"
        ) from e

    folder = Path(D.__file__).parent / "dnsmos_models"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1

    class _DNSMOS(D.DNSMOS):  # the features, windows and polynomial mapping stay speechmos'
        def __init__(self) -> None:
            self.primary_model_path = str(folder / "sig_bak_ovr.onnx")
            cpu = ["CPUExecutionProvider"]
            self.onnx_sess = ort.InferenceSession(self.primary_model_path, opts, providers=cpu)
            self.p808_onnx_sess = ort.InferenceSession(str(folder / "model_v8.onnx"), opts, providers=cpu)

    return _DNSMOS()


def dnsmos(audio, sr: int = SAMPLE_RATE, threads: int = 1) -> dict[str, float]:
    """DNSMOS P.835 (Reddy et al., ICASSP 2022): predicted listener scores, 1 (bad) .. 5 (excellent), from
    the audio alone: ``ovrl`` overall quality, ``sig`` the speech signal, ``bak`` the background noise.

    Runs offline: `speechmos` 0.0.1.1 (MIT) carries Microsoft's onnx models. The audio is resampled to
    16 kHz (soxr HQ, librosa's default) and clipped to [-1, 1]; speechmos scores 9.01 s windows hopped by
    1 s and averages them, repeating a shorter clip until it fills one window (so a 1-2 s clip is judged
    on several copies of itself). A model trained on noisy and enhanced speech: it ranks clean synthesis
    above noisy synthesis; small differences between two clean TTS systems are within its noise.
    """
    from helpers.data.audio import resample

    y = np.asarray(audio, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"dnsmos needs mono, non-empty audio; got shape {y.shape}")
    y = np.clip(resample(np.nan_to_num(y), sr, DNSMOS_RATE), -1.0, 1.0)
    out = _dnsmos_model(threads)(y, DNSMOS_RATE, False)  # is_personalized_MOS=False: plain DNSMOS
    return {"ovrl": float(out["ovrl_mos"]), "sig": float(out["sig_mos"]), "bak": float(out["bak_mos"])}
