"""Training targets for one recording: per-token durations by DTW, a style vector, features on one grid.

Kokoro learns durations per phoneme token, but a (text, wav) dataset only says *what* was said, not *when*.
We have no external aligner offline, so we use the teacher itself (FIELD_NOTES section 8, measured there):

    phonemes --Kokoro (voice pack, speed S/N)--> reference audio, token durations known
    reference log-mel  vs  recording log-mel --DTW (pause-aware)--> path (recording frame <-> reference frame)
    reference token edges --carried along the path--> recording token edges --> durations (T,) in 25 ms frames

Pause-aware DTW: a reader pauses where the synthesis does not. Every inter-word space token of the
reference gets one extra column that costs 0 against *silent* recording frames (and a constant elsewhere),
so a pause in the recording is absorbed by the space token instead of stretching a phoneme; the
reference's own silent frames (BOS/EOS, punctuation) also cost 0 against silent recording frames.

Public API (shapes in comments; F = 25 ms duration frames of the clip, T = tokens incl. BOS/EOS):

    DTWSettings(...)                                  # frozen; every alignment knob, hashed into caches
    CheckSettings(max_junction_error_ms=150.0, ...)   # the pocketsphinx cross-check
    StyleSource (protocol): .name: str; __call__(phonemes: str) -> torch.Tensor (1, 256)
    VoicePackStyle(pack, name)                        # ref_s = pack[len(phonemes) - 1], Kokoro's own rule
    voice_style(kokoro, voice="auto") -> VoicePackStyle

    align_durations(kokoro, phonemes, audio, ref_s, settings=DTWSettings()) -> Alignment
        audio: (600 F,) float32 at 24 kHz (already on the grid: helpers.features.fit_to_grid)
        Alignment.durations (T,) int64, all >= 1, sum == F; .path, .cost, .reference, ...
    check_word_boundaries(text, phonemes, durations, audio, settings=CheckSettings()) -> WordCheck
        WordCheck.checked, .suspect, .reason, .max_error_ms, .words (a table of word edges)
    compute_targets(kokoro, item_id, text, phonemes, audio, style, ...) -> ItemTargets

    ItemTargets: one utterance's targets, all on one grid (mel frames == 2 * durations.sum() == len(f0)):
        id, text, phonemes: str
        token_ids       (T,) int64, BOS/EOS = 0 at both ends
        durations       (T,) int64, 25 ms frames, >= 1, sum F
        mel             (80, 2F) float32, normalised log-mel (log(1e-5 + mel) + 4) / 4 (StyleTTS2's recipe)
        f0              (2F,) float32 Hz at 80 Hz (12.5 ms), 0 = unvoiced (pYIN)
        voiced_prob     (2F,) float32 pYIN voicing probability; .voiced (2F,) bool = f0 > 0
        energy          (2F,) float32 StyleTTS2's N: log L2 norm of the mel frame
        style           (256,) float32 ref_s: [:128] decoder timbre, [128:] prosody
        audio           (600 F,) float32 at 24 kHz, or None when the cache was built without audio
        teacher_durations (T,) int64: Kokoro's own prediction at speed 1 for this voice
        voice, split ("train"/"val"), suspect (bool), reason (str), check (dict of the word check)
        .n_frames = F; .tensors() -> dict of torch tensors; .save(path) / ItemTargets.load(path)

`helpers.prepare` runs this over a dataset, caches one file per item and splits train/validation.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from helpers.features import DEFAULT as DEFAULT_FEATURES
from helpers.features import (
    DURATION_HOP,
    HOP,
    FeatureSettings,
    extract_features,
    fit_to_grid,
    n_duration_frames,
)
from helpers.g2p import NON_SPEECH, kokoro_vocab, phonemes_to_ids
from helpers.synth import predict_durations, style_for, synthesize_ids

SAMPLE_RATE = 24_000
FRAME_MS = 1000.0 * DURATION_HOP / SAMPLE_RATE  # 25 ms per duration frame
HOP_MS = 1000.0 * HOP / SAMPLE_RATE  # 12.5 ms per mel / DTW frame


# ------------------------------------------------------------------------------------------------ style


@runtime_checkable
class StyleSource(Protocol):
    """Where an item's ref_s comes from. `name` goes into cache manifests (a new name invalidates them)."""

    name: str

    def __call__(self, phonemes: str) -> torch.Tensor:  # (1, 256)
        ...


@dataclass
class VoicePackStyle:
    """Kokoro's own rule: ref_s = pack[len(phonemes) - 1] of a voice pack [510, 1, 256]."""

    pack: torch.Tensor = field(repr=False)  # [510, 1, 256]
    name: str = "voice"

    def __call__(self, phonemes: str) -> torch.Tensor:
        return style_for(self.pack, len(phonemes)).float()  # (1, 256)


def voice_style(kokoro, voice: str | None = "auto") -> VoicePackStyle:
    """The StyleSource for a named voice of this Kokoro ("auto" = the source's default voice)."""
    name = kokoro.default_voice() if voice in (None, "auto") else voice
    return VoicePackStyle(kokoro.voice(name), f"voice:{name}")


# -------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class DTWSettings:
    """Every knob of the alignment; defaults are the measured recipe of FIELD_NOTES section 8."""

    n_mels: int = 80
    n_fft: int = 1024
    win_length: int = 600
    hop_length: int = HOP  # 12.5 ms: two DTW frames per duration frame
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


@dataclass(frozen=True)
class CheckSettings:
    """The independent check against pocketsphinx's forced word alignment."""

    enabled: bool = True
    max_junction_error_ms: float = (
        150.0  # any word edge this far off (speech only, after the offset): suspect
    )
    max_offset_ms: float = 300.0  # a constant offset larger than this: suspect too

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------- frame features


def dtw_features(y: np.ndarray, st: DTWSettings = DTWSettings()) -> np.ndarray:
    """[600 F] samples -> (2F, n_mels) log-mel with the per-utterance mean of each band removed."""
    import librosa

    n = 2 * (len(y) // DURATION_HOP)
    mel = librosa.feature.melspectrogram(
        y=np.asarray(y, dtype=np.float32),
        sr=SAMPLE_RATE,
        n_fft=st.n_fft,
        win_length=st.win_length,
        hop_length=st.hop_length,
        n_mels=st.n_mels,
        fmin=st.fmin,
        fmax=st.fmax,
        center=True,
    )[:, :n]  # (n_mels, 2F)
    logmel = np.log(mel + 1e-6)
    if st.mel_floor_db is not None:  # digital silence would otherwise dominate the distances
        logmel = np.maximum(logmel, logmel.max() - st.mel_floor_db * np.log(10) / 10)
    logmel -= logmel.mean(axis=1, keepdims=True)
    return logmel.T.astype(np.float64)  # (2F, n_mels)


def frame_db(y: np.ndarray, hop: int = HOP) -> np.ndarray:
    """[600 F] samples -> (2F,) RMS level in dBFS of 2-hop windows centred on samples 0, hop, 2 hop, ..."""
    y = np.asarray(y, dtype=np.float64)
    n = 2 * (len(y) // DURATION_HOP)
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
    min_len = int(np.ceil(st.min_silence_s * 1000 / HOP_MS - 1e-9))
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
    if len(audio) % DURATION_HOP:
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


# ------------------------------------------------------------------------------ pocketsphinx word check


@dataclass
class WordCheck:
    """Our word edges vs pocketsphinx's forced alignment, after removing a constant offset (starts, ends)."""

    checked: bool
    suspect: bool = False
    reason: str = ""
    offset_start_ms: float = 0.0  # median (ours - pocketsphinx) over word starts
    offset_end_ms: float = 0.0  # the same over word ends
    mean_error_ms: float = float("nan")
    max_error_ms: float = float("nan")
    within_50ms: float = float("nan")  # fraction of junctions within 50 ms
    max_speech_error_ms: float = float("nan")  # the largest disagreement not explained by a pause
    words: list[dict] = field(default_factory=list)  # word, ours_start/end_ms, ps_start/end_ms, errors

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("words")
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in d.items()}

    def frame(self):
        import pandas as pd

        return pd.DataFrame(self.words)


@functools.lru_cache(maxsize=1)
def _ps_decoder():
    """pocketsphinx's bundled US English model, set up for forced alignment at 16 kHz (quiet logs)."""
    from pocketsphinx import Decoder

    return Decoder(lm=None, samprate=16000, logfn="/dev/null")


def pocketsphinx_available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


def _word_units(text: str, phonemes: str):
    """Per misaki word token: (dictionary words, first token index, last token index); None if the phoneme
    string cannot be matched to misaki's tokens (then the check is skipped)."""
    from helpers.g2p import english_g2p

    _, tokens = english_g2p(False)(text)
    vocab = kokoro_vocab()
    pieces, spans, pos = [], [], 0
    for tok in tokens:
        ph = tok.phonemes or ""
        spans.append((pos, pos + len(ph), tok))
        pieces.append(ph + (" " if tok.whitespace else ""))
        pos += len(pieces[-1])
    full = "".join(pieces)
    lead = len(full) - len(full.lstrip())
    if full.strip() != phonemes:
        return None
    tok_index = np.cumsum([1 if ch in vocab else 0 for ch in full])  # token id index (BOS = 0) per char
    units = []
    for a, b, tok in spans:
        phone_pos = [i for i in range(a, b) if full[i] in vocab and full[i] not in NON_SPEECH]
        if not phone_pos or a < lead:
            continue
        words = re.findall(r"[a-z0-9']+", tok.text.lower())
        units.append((words, int(tok_index[phone_pos[0]]), int(tok_index[phone_pos[-1]])))
    return units


def check_word_boundaries(
    text: str,
    phonemes: str,
    durations: np.ndarray,
    audio: np.ndarray,
    settings: CheckSettings = CheckSettings(),
    silent: np.ndarray | None = None,
) -> WordCheck:
    """Compare word starts/ends implied by `durations` with pocketsphinx's forced alignment of `text`.

    Both sets of edges are compared after removing a constant offset (the median difference, separately
    for word starts and ends: pocketsphinx starts words early). An edge counts against us only for the
    *speech* between the two positions: pocketsphinx often lets a word swallow the pause after it, and a
    disagreement over which side of a pause an edge sits is no error. `silent` (2F,) are the recording's
    silent frames (computed with the default DTWSettings when not given). Suspect: more than
    `max_junction_error_ms` of speech at any edge, or an offset beyond `max_offset_ms`.

    Skipped (checked=False, with the reason) when pocketsphinx is missing, a word is not in its dictionary,
    or the phoneme string does not come from misaki's tokens of `text`. When pocketsphinx finds no
    alignment at all for a transcript it knows every word of, the item is suspect (the text likely does
    not match the audio).
    """
    if not settings.enabled:
        return WordCheck(False, reason="check disabled")
    if not pocketsphinx_available():
        return WordCheck(False, reason="pocketsphinx not installed (pip install pocketsphinx)")
    units = _word_units(text, phonemes)
    if units is None:
        return WordCheck(False, reason="phonemes do not match the G2P tokens of the text")
    dec = _ps_decoder()
    oov = sorted({w for ws, _, _ in units for w in ws if dec.lookup_word(w) is None})
    if oov or any(not ws for ws, _, _ in units):
        return WordCheck(
            False, reason=f"not in pocketsphinx's dictionary: {', '.join(oov) or '(no letters)'}"
        )
    from helpers.audio import resample

    pcm = (np.clip(resample(np.asarray(audio, np.float32), SAMPLE_RATE, 16000), -1, 1) * 32767).astype(
        np.int16
    )
    words = [w for ws, _, _ in units for w in ws]
    try:
        dec.set_align_text(" ".join(words))
        dec.start_utt()
        dec.process_raw(pcm.tobytes(), full_utt=True)
        dec.end_utt()
        segs = [(re.sub(r"\(\d+\)$", "", s.word), s.start_frame, s.end_frame) for s in dec.seg()]
    except Exception:  # no segmentation: no path through the transcript's words reached the end
        segs = []
    segs = [s for s in segs if not s[0].startswith(("<", "["))]
    if [s[0] for s in segs] != words:  # every word is in the dictionary, so the audio disagrees
        return WordCheck(True, True, "pocketsphinx cannot align the transcript to the audio (wrong text?)")
    edges = np.concatenate([[0], np.cumsum(durations)]) * FRAME_MS  # (T + 1,) ms
    rows, k = [], 0
    for ws, t0, t1 in units:
        first, last = segs[k], segs[k + len(ws) - 1]
        k += len(ws)
        rows.append(
            {
                "word": " ".join(ws),
                "ours_start_ms": float(edges[t0]),
                "ours_end_ms": float(edges[t1 + 1]),
                "ps_start_ms": first[1] * 10.0,
                "ps_end_ms": (last[2] + 1) * 10.0,
            }
        )
    ds = np.array([r["ours_start_ms"] - r["ps_start_ms"] for r in rows])
    de = np.array([r["ours_end_ms"] - r["ps_end_ms"] for r in rows])
    off_s, off_e = float(np.median(ds)), float(np.median(de))
    if silent is None:
        silent = silent_frames(fit_to_grid(audio), DTWSettings())
    speech_ms = np.concatenate([[0.0], np.cumsum(~silent) * HOP_MS])  # non-silent ms before frame i

    def speech_between(a_ms: float, b_ms: float) -> float:
        """Milliseconds of non-silent recording between two instants (a pause separates them for free)."""
        ia, ib = (int(np.clip(round(x / HOP_MS), 0, len(silent))) for x in sorted((a_ms, b_ms)))
        return float(speech_ms[ib] - speech_ms[ia])

    errs = []
    for r, a, b in zip(rows, ds, de):
        r["start_error_ms"], r["end_error_ms"] = round(float(a - off_s), 1), round(float(b - off_e), 1)
        r["start_speech_ms"] = speech_between(r["ours_start_ms"], r["ps_start_ms"] + off_s)
        r["end_speech_ms"] = speech_between(r["ours_end_ms"], r["ps_end_ms"] + off_e)
        errs.append((r["start_speech_ms"], r["word"], "start"))
        errs.append((r["end_speech_ms"], r["word"], "end"))
    err = np.abs(np.concatenate([ds - off_s, de - off_e]))
    wc = WordCheck(
        True,
        offset_start_ms=off_s,
        offset_end_ms=off_e,
        mean_error_ms=float(err.mean()),
        max_error_ms=float(err.max()),
        within_50ms=float((err <= 50).mean()),
        max_speech_error_ms=max(e for e, _, _ in errs),
        words=rows,
    )
    problems = []
    worst, word, side = max(errs)
    if worst > settings.max_junction_error_ms:
        problems.append(
            f"word {word!r} {side}: {worst:.0f} ms of speech between our edge and pocketsphinx's "
            f"(limit {settings.max_junction_error_ms:g})"
        )
    if max(abs(off_s), abs(off_e)) > settings.max_offset_ms:
        problems.append(f"constant offset {off_s:.0f}/{off_e:.0f} ms (limit {settings.max_offset_ms:g})")
    wc.suspect, wc.reason = bool(problems), "; ".join(problems)
    return wc


# --------------------------------------------------------------------------------------- item targets


@dataclass
class ItemTargets:
    """Everything training needs for one utterance, on one grid (see the module docstring for shapes)."""

    id: str
    text: str
    phonemes: str
    token_ids: np.ndarray  # (T,) int64
    durations: np.ndarray  # (T,) int64, sum F
    mel: np.ndarray  # (80, 2F) float32 normalised log-mel
    f0: np.ndarray  # (2F,) float32 Hz, 0 = unvoiced
    voiced_prob: np.ndarray  # (2F,) float32
    energy: np.ndarray  # (2F,) float32
    style: np.ndarray  # (256,) float32
    teacher_durations: np.ndarray  # (T,) int64
    audio: np.ndarray | None = field(default=None, repr=False)  # (600 F,) float32 or None
    voice: str = ""
    split: str = "train"
    suspect: bool = False
    reason: str = ""
    check: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.durations.sum())

    @property
    def voiced(self) -> np.ndarray:
        return self.f0 > 0

    def validate(self) -> None:
        """Raise AssertionError unless every array sits on the same grid."""
        F = self.n_frames
        assert len(self.token_ids) == len(self.durations), "one duration per token"
        assert (self.durations >= 1).all(), "every token needs >= 1 frame"
        assert self.mel.shape[1] == 2 * F == len(self.f0) == len(self.energy) == len(self.voiced_prob)
        assert self.audio is None or len(self.audio) == DURATION_HOP * F
        assert self.style.shape == (256,)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The arrays as torch tensors (same shapes), e.g. for a Dataset's __getitem__."""
        out = {
            "token_ids": torch.from_numpy(self.token_ids),
            "durations": torch.from_numpy(self.durations),
            "mel": torch.from_numpy(self.mel),
            "f0": torch.from_numpy(self.f0),
            "voiced_prob": torch.from_numpy(self.voiced_prob),
            "energy": torch.from_numpy(self.energy),
            "style": torch.from_numpy(self.style),
            "teacher_durations": torch.from_numpy(self.teacher_durations),
        }
        if self.audio is not None:
            out["audio"] = torch.from_numpy(self.audio)
        return out

    _ARRAYS = ("token_ids", "durations", "mel", "f0", "voiced_prob", "energy", "style", "teacher_durations")

    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        """One .npz per item: the arrays, audio as int16 (when present) and a JSON string of the rest."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "id": self.id,
            "text": self.text,
            "phonemes": self.phonemes,
            "voice": self.voice,
            "suspect": self.suspect,
            "reason": self.reason,
            "check": self.check,
            **(extra or {}),
        }
        arrays = {k: getattr(self, k) for k in self._ARRAYS}
        if self.audio is not None:
            arrays["audio_int16"] = (np.clip(self.audio, -1, 1) * 32767).round().astype(np.int16)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
        tmp.replace(path)  # atomic: an interrupted run never leaves half a file
        return path

    @staticmethod
    def read_meta(path: str | Path) -> dict:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["meta"]))

    @classmethod
    def load(cls, path: str | Path, split: str = "train") -> ItemTargets:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in cls._ARRAYS}
            audio = z["audio_int16"].astype(np.float32) / 32767 if "audio_int16" in z else None
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**arrays, audio=audio, split=split, **{k: v for k, v in meta.items() if k in fields})


def compute_targets(
    kokoro,
    item_id: str,
    text: str,
    phonemes: str,
    audio: np.ndarray,
    style: StyleSource,
    *,
    features: FeatureSettings = DEFAULT_FEATURES,
    dtw: DTWSettings = DTWSettings(),
    check: CheckSettings = CheckSettings(),
    keep_audio: bool = True,
) -> tuple[ItemTargets, Alignment]:
    """All targets of one clip (mono 24 kHz samples, any length: cut to the 600-sample grid here)."""
    y = fit_to_grid(audio, "trim")  # (600 F,)
    ref_s = style(phonemes)  # (1, 256)
    al = align_durations(kokoro, phonemes, y, ref_s, dtw)
    feats = extract_features(y, features, mode="trim")
    model = getattr(kokoro, "model", kokoro)
    device = next(model.parameters()).device
    ids = torch.as_tensor(phonemes_to_ids(phonemes, strict=False), device=device).reshape(1, -1)
    with torch.no_grad():
        _, _, teacher = predict_durations(model, ids, ref_s.reshape(1, -1).to(device), 1.0)
    wc = check_word_boundaries(text, phonemes, al.durations, y, check, silent=al.silent)
    tg = ItemTargets(
        id=item_id,
        text=text,
        phonemes=phonemes,
        token_ids=ids[0].cpu().numpy().astype(np.int64),
        durations=al.durations,
        mel=feats.mel,
        f0=feats.f0,
        voiced_prob=feats.voiced_prob,
        energy=feats.energy,
        style=ref_s.reshape(-1).cpu().numpy().astype(np.float32),
        teacher_durations=teacher.cpu().numpy().astype(np.int64),
        audio=y if keep_audio else None,
        voice=getattr(style, "name", "custom"),
        suspect=wc.suspect,
        reason=wc.reason,
        check=wc.to_dict(),
    )
    tg.validate()
    return tg, al


# ------------------------------------------------------------------------------------------- figures


def plot_alignment(al: Alignment, phonemes: str | None = None, ax=None):
    """The DTW path: recording time (x) against reference column (y); grey = silent recording frames,
    dotted = the pause columns, thin lines = token edges on both sides."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 6))
    sec = HOP_MS / 1000.0
    for a, b in _runs(al.silent):
        ax.axvspan(a * sec, b * sec, color="0.85", lw=0)
    for c in np.flatnonzero(al.col_frame < 0):
        ax.axhline(c, color="tab:green", ls=":", lw=1)
    for c in np.flatnonzero(np.diff(al.col_token)) + 0.5:
        ax.axhline(c, color="0.6", lw=0.3)
    for e in np.cumsum(al.durations)[:-1] * FRAME_MS / 1000.0:
        ax.axvline(e, color="tab:red", lw=0.3, alpha=0.6)
    ax.plot(al.path[:, 0] * sec, al.path[:, 1], color="tab:blue", lw=1.5)
    ax.set(
        xlabel="recording time (s)",
        ylabel="reference column (12.5 ms frames + pause columns)",
        title=f"DTW path (reference at speed {al.speed:.2f}); green: pause columns, grey: silence",
        xlim=(0, len(al.silent) * sec),
        ylim=(0, len(al.col_token)),
    )
    return ax


def plot_segmentation(audio: np.ndarray, durations: np.ndarray, phonemes: str, ax=None, f0=None, title=""):
    """Log-mel of `audio` with token edges and one label per token (BOS/EOS as <s> </s>)."""
    import matplotlib.pyplot as plt

    from helpers.plots import phoneme_labels, plot_mel, plot_token_boundaries

    if ax is None:
        _, ax = plt.subplots(figsize=(13, 3.5))
    plot_mel(audio, ax=ax, f0=f0, title=title or "token boundaries from the DTW durations")
    plot_token_boundaries(durations, ax, color="white", alpha=0.7)
    edges = np.concatenate([[0], np.cumsum(durations)]) * FRAME_MS / 1000.0
    top = ax.get_ylim()[1]
    for k, lab in enumerate(phoneme_labels(phonemes)[: len(durations)]):
        if lab != "␣":
            ax.text(
                (edges[k] + edges[k + 1]) / 2,
                top * 0.97,
                lab,
                color="white",
                ha="center",
                va="top",
                fontsize=8,
            )
    return ax
