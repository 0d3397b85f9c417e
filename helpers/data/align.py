"""Per-token durations for a recording by pause-aware DTW against Kokoro's own synthesis.

The recipe and its measurements: benchmarks/README.md, "Duration targets by DTW" (benchmarks/bench_alignment.py).

    phonemes --Kokoro (voice pack, speed S/N)--> reference audio, token durations known
    reference log-mel vs recording log-mel --DTW (pause-aware)--> path
    reference token edges --carried along the path--> recording token edges --> durations (T,)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from helpers.data.features import FeatureSettings, fit_to_grid, mel_power, n_duration_frames
from helpers.grid import F0_FRAME_MS, FRAME_MS, SAMPLES_PER_F0_FRAME, SAMPLES_PER_FRAME
from helpers.kokoro.forward import predict_durations, synthesize_ids
from helpers.kokoro.g2p import kokoro_vocab, phonemes_to_ids

# -------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class DTWSettings:
    """Every knob of the alignment; defaults are the measured recipe (benchmarks/README.md, "Duration targets by DTW")."""

    n_mels: int = 80
    n_fft: int = 1024
    win_length: int = 600
    hop_length: int = SAMPLES_PER_F0_FRAME  # 12.5 ms: two DTW frames per duration frame
    fmin: float = 50.0
    fmax: float = 7600.0
    mel_floor_db: float | None = None  # floor the log-mel this far below its maximum (None: no floor)
    pause_aware: bool = True  # False: plain DTW (the baseline of benchmarks/bench_alignment.py)
    silence_percentile: float = 5.0  # silent recording frame: RMS below this percentile's level ...
    silence_margin_db: float = 10.0  # ... plus this many dB,
    min_silence_s: float = 0.06  # ... for at least this long;
    silence_range_db: float | None = 50.0  # ... and anything this far below the loudest frame is silent too
    reference_silence: str = "absolute"  # "absolute": below reference_silence_dbfs; "relative": same rule
    reference_silence_dbfs: float = -50.0  # reference frames quieter than this are its (digital) silence
    silence_cost_scale: float = 0.0  # reference silence vs recording silence: cost times this (0 = free)
    pause_cost: str = "median"  # pause column's cost on non-silent frames: "median" of the cost matrix, or
    # "neighbour" (a copy of the space frame's costs before it)
    length_matched: bool = True  # synthesize the reference at speed S/N so it lasts as long as the clip
    seed: int = 0  # the decoder's noise seed for the reference synthesis

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

# ------------------------------------------------------------------------------------- frame features


def dtw_features(y: np.ndarray, st: DTWSettings = DTWSettings()) -> np.ndarray:
    """[600 F] samples -> (2F, n_mels) log-mel with the per-utterance mean of each band removed."""
    fs = FeatureSettings(
        n_fft=st.n_fft, win_length=st.win_length, hop_length=st.hop_length, n_mels=st.n_mels,
        fmin=st.fmin, fmax=st.fmax, htk=False,
    )  # the DTW's own band layout (Slaney scale, 50-7600 Hz), through the workbook's one mel function
    mel = mel_power(fit_to_grid(y), fs)  # (n_mels, 2F)
    logmel = np.log(mel + 1e-6)
    if st.mel_floor_db is not None:  # digital silence would otherwise dominate the distances
        logmel = np.maximum(logmel, logmel.max() - st.mel_floor_db * np.log(10) / 10)
    logmel -= logmel.mean(axis=1, keepdims=True)
    return logmel.T.astype(np.float64)  # (2F, n_mels)


def frame_db(y: np.ndarray, hop: int = SAMPLES_PER_F0_FRAME) -> np.ndarray:
    """[600 F] samples -> (2F,) RMS level in dBFS of 2-hop windows centred on samples 0, hop, 2 hop, ..."""
    y = np.asarray(y, dtype=np.float64)
    n = 2 * (len(y) // SAMPLES_PER_FRAME)
    blocks = np.square(np.pad(y[: n * hop], hop)).reshape(-1, hop).sum(axis=1)  # (n + 2,) energy per hop
    rms = np.sqrt((blocks[:n] + blocks[1 : n + 1]) / (2 * hop))  # frame i spans samples (i-1)hop .. (i+1)hop
    return 20 * np.log10(rms + 1e-9)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop), ...] of the True runs of a 1-D bool mask."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def silent_frames(y: np.ndarray, st: DTWSettings = DTWSettings()) -> np.ndarray:
    """(2F,) bool: recording frames below (percentile level + margin), or more than `silence_range_db`
    below the loudest frame, for at least `min_silence_s`."""
    db = frame_db(y, st.hop_length)
    if len(db) == 0:
        return np.zeros(0, dtype=bool)
    threshold = np.percentile(db, st.silence_percentile) + st.silence_margin_db
    if st.silence_range_db is not None:  # a digitally clean clip: its 5th percentile is -150 dB
        threshold = max(threshold, db.max() - st.silence_range_db)
    quiet = db < threshold
    min_len = int(np.ceil(st.min_silence_s * 1000 / F0_FRAME_MS - 1e-9))
    out = np.zeros_like(quiet)
    for a, b in _runs(quiet):
        if b - a >= min_len:
            out[a:b] = True
    return out


# ------------------------------------------------------------------------------------------ alignment


@dataclass
class Alignment:
    """The DTW result for one clip. Rows = recording frames (12.5 ms), columns = reference columns."""

    durations: np.ndarray  # (T,) int64 frames of 25 ms, >= 1, sum == n_frames
    edges_ms: np.ndarray  # (T - 1,) float token edges in the recording before rounding, ms
    path: np.ndarray  # (K, 2) int (recording frame, reference column), in time order
    col_token: np.ndarray  # (C,) token index of every reference column
    col_frame: np.ndarray  # (C,) reference mel frame of every column, -1 for the inserted pause columns
    silent: np.ndarray  # (2F,) bool silent recording frames
    reference_durations: np.ndarray  # (T,) durations of the reference synthesis (frames of 25 ms)
    reference_audio: np.ndarray = field(repr=False)  # (600 M,) the reference synthesis
    speed: float = 1.0  # speed the reference was synthesized at
    n_frames: int = 0  # F
    cost: float = 0.0  # mean cost along the path

    @property
    def boundaries_s(self) -> np.ndarray:
        """(T + 1,) token edges in seconds, from 0 to F * 25 ms (after rounding)."""
        return np.concatenate([[0], np.cumsum(self.durations)]) * FRAME_MS / 1000.0


def _space_id() -> int:
    return kokoro_vocab()[" "]


@dataclass
class Reference:
    """Kokoro's synthesis of the item's phonemes: what the recording is aligned against."""

    audio: np.ndarray = field(repr=False)  # (600 M,) float32 at 24 kHz
    durations: np.ndarray  # (T,) int64 frames of 25 ms, M in total
    speed: float  # the speed it was synthesized at (S / N when length-matched)


def reference_synthesis(
    kokoro, phonemes: str, ref_s: torch.Tensor, n_frames: int, settings: DTWSettings = DTWSettings()
) -> Reference:
    """Synthesize the phonemes with style `ref_s` (1, 256); length-matched to `n_frames` when asked:
    the duration predictor gives the total S at speed 1, the reference is then made at speed S / n_frames."""
    model = getattr(kokoro, "model", kokoro)
    device = next(model.parameters()).device
    ids = torch.as_tensor(phonemes_to_ids(phonemes, strict=False), device=device).reshape(1, -1)
    ref_s = ref_s.reshape(1, -1).to(device)
    speed = 1.0
    with torch.no_grad():
        if settings.length_matched:
            _, _, d1 = predict_durations(model, ids, ref_s, 1.0)
            speed = float(d1.sum()) / max(n_frames, 1)
        out = synthesize_ids(model, ids[0], ref_s, speed=speed, seed=settings.seed)
    return Reference(
        out["audio"].float().cpu().numpy(), out["durations"].cpu().numpy().astype(np.int64), speed
    )


def _columns(ref_durations: np.ndarray, token_ids: np.ndarray, pause_aware: bool):
    """Reference columns: every mel frame, plus one pause column in the middle of each inner space token."""
    space = _space_id()
    col_token, col_frame = [], []
    frame = 0
    T = len(ref_durations)
    for t, d in enumerate(ref_durations):
        n = 2 * int(d)
        frames = list(range(frame, frame + n))
        if pause_aware and token_ids[t] == space and 0 < t < T - 1:
            mid = n // 2
            frames = frames[:mid] + [-1] + frames[mid:]
        col_frame += frames
        col_token += [t] * len(frames)
        frame += n
    return np.asarray(col_token), np.asarray(col_frame)


def _edges_from_path(path: np.ndarray, col_token: np.ndarray, T: int) -> np.ndarray:
    """(T - 1,) token edges in recording mel frames (floats): between the last recording frame mapped
    from a token's final column and the first one mapped from the next token's first column."""
    C = len(col_token)
    first_row = np.full(C, np.iinfo(np.int64).max)
    last_row = np.full(C, -1)
    np.minimum.at(first_row, path[:, 1], path[:, 0])
    np.maximum.at(last_row, path[:, 1], path[:, 0])
    edges = np.empty(T - 1)
    bounds = np.flatnonzero(np.diff(col_token)) + 1  # first column of tokens 1..T-1
    for i, c in enumerate(bounds):
        edges[i] = 0.5 * (last_row[c - 1] + 1 + first_row[c])
    return edges


def edges_to_durations(edges: np.ndarray, n_frames: int) -> np.ndarray:
    """(T-1,) edges in 25 ms frames (floats) -> (T,) int durations, every one >= 1, summing to n_frames."""
    T = len(edges) + 1
    if n_frames < T:
        raise ValueError(f"{T} tokens cannot fit in {n_frames} frames of 25 ms (each needs at least one)")
    e = np.clip(np.round(edges).astype(np.int64), 1, n_frames - 1)
    for i in range(len(e)):  # forward: strictly increasing, room for everything before
        e[i] = max(e[i], i + 1, e[i - 1] + 1 if i else 1)
    for i in range(len(e) - 1, -1, -1):  # backward: room for everything after
        e[i] = min(e[i], n_frames - (T - 1 - i), e[i + 1] - 1 if i + 1 < len(e) else n_frames - 1)
    return np.diff(np.concatenate([[0], e, [n_frames]])).astype(np.int64)


def align_durations(
    kokoro,
    phonemes: str,
    audio: np.ndarray,
    ref_s: torch.Tensor,
    settings: DTWSettings = DTWSettings(),
    reference: Reference | None = None,
) -> Alignment:
    """Per-token durations (T,) for `audio` (600 F samples, 24 kHz) by DTW against Kokoro's own synthesis.

    `ref_s` (1, 256) is the style the reference is synthesized with (the item's style). The durations are
    on Kokoro's grid: one value per token id (BOS/EOS included), >= 1 each, summing to F exactly.
    `reference`: a `reference_synthesis` made earlier for this clip (to compare settings without
    synthesizing again); by default it is synthesized here.
    """
    import librosa
    from scipy.spatial.distance import cdist

    st = settings
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) % SAMPLES_PER_FRAME:
        raise ValueError(f"{len(audio)} samples is not on the 600-sample grid: call fit_to_grid first")
    n_frames = n_duration_frames(len(audio))
    token_ids = np.asarray(phonemes_to_ids(phonemes, strict=False), dtype=np.int64)  # (T,)
    T = len(token_ids)
    if n_frames < T:
        raise ValueError(f"clip of {n_frames} frames is too short for {T} tokens")
    ref = reference if reference is not None else reference_synthesis(kokoro, phonemes, ref_s, n_frames, st)
    ref_audio, ref_dur = ref.audio, ref.durations
    if len(ref_dur) != T:
        raise ValueError(f"reference has {len(ref_dur)} tokens, the phonemes {T}")

    x_rec = dtw_features(audio, st)  # (2F, n_mels)
    x_ref = dtw_features(ref_audio, st)  # (2M, n_mels)
    col_token, col_frame = _columns(ref_dur, token_ids, st.pause_aware)
    cost = cdist(x_rec, x_ref[np.maximum(col_frame, 0)])  # (2F, C) Euclidean
    silent = silent_frames(audio, st)  # (2F,)
    if st.pause_aware:
        if st.reference_silence == "relative":  # the recording's rule, applied to the reference
            ref_silent = silent_frames(ref_audio, st)  # (2M,)
        else:
            ref_silent = frame_db(ref_audio, st.hop_length) < st.reference_silence_dbfs  # (2M,)
        pause_cols = col_frame < 0
        if st.pause_cost == "median":
            cost[:, pause_cols] = np.median(cost[:, ~pause_cols])
        elif st.pause_cost == "neighbour":  # the cost of the space frame just before the pause column
            cost[:, pause_cols] = cost[:, np.flatnonzero(pause_cols) - 1]
        else:
            raise ValueError(f"unknown pause_cost {st.pause_cost!r}")
        quiet_cols = np.where(col_frame >= 0, ref_silent[np.maximum(col_frame, 0)], False)
        cost[np.ix_(silent, quiet_cols)] *= st.silence_cost_scale
        cost[np.ix_(silent, pause_cols)] = 0.0

    _, wp = librosa.sequence.dtw(C=cost, step_sizes_sigma=np.array([[1, 1], [0, 1], [1, 0]]), backtrack=True)
    path = np.asarray(wp[::-1], dtype=np.int64)  # (K, 2) (row, column), time order
    edges = _edges_from_path(path, col_token, T) / 2.0  # in 25 ms frames

    # leading silence belongs to BOS, trailing silence to EOS; where the path already gave part of the
    # trailing silence to the final phone or mark (as the teacher itself does), the path wins
    runs = _runs(silent)
    if runs and runs[0][0] == 0:
        edges[0] = max(edges[0], runs[0][1] / 2.0)
    if runs and runs[-1][1] == len(silent):
        edges[-1] = min(edges[-1], runs[-1][0] / 2.0)
    durations = edges_to_durations(edges, n_frames)
    return Alignment(
        durations=durations,
        edges_ms=edges * FRAME_MS,
        path=path,
        col_token=col_token,
        col_frame=col_frame,
        silent=silent,
        reference_durations=ref_dur,
        reference_audio=ref_audio,
        speed=ref.speed,
        n_frames=n_frames,
        cost=float(cost[path[:, 0], path[:, 1]].mean()),
    )


