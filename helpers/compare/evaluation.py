"""Objective evaluation: held-out recordings (vs their targets) and sentences (vs the LSTM teacher).

Each row's duration and F0 errors come from helpers.compare.scoring (`against`: the contender's own durations,
its F0 on the reference's durations), the comparison the training and distillation scores make too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.compare import metrics as M
from helpers.compare.scoring import ProsodyPair, prosody_pair
from helpers.grid import SAMPLE_RATE
from helpers.kokoro.forward import STYLE_DIM
from helpers.kokoro.synth import Synthesis, as_pack, synthesize

# ------------------------------------------------------------------------------------------ evaluation


@dataclass
class EvalItem:
    """One real recording for evaluation. Targets are optional: metrics that need them are skipped."""

    id: str
    text: str  # transcript: the WER reference
    audio: np.ndarray  # (n,) float32 at 24 kHz
    phonemes: str | None = None
    durations: np.ndarray | None = None  # (T,) target frames per token (BOS/EOS included)
    f0: np.ndarray | None = None  # (2F,) target F0 in Hz, 0 = unvoiced, on the durations' grid
    style: np.ndarray | None = None  # (256,) ref_s to speak with (else the evaluation's voice)
    source_sample_rate: int = SAMPLE_RATE  # the recording's own rate: limits the MCD band


def _get(obj, name, default=None):
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def eval_items(items: Iterable, targets: Mapping | Iterable | None = None) -> list[EvalItem]:
    """Turn anything item-like into EvalItems: `helpers.data.readers.Item`, `helpers.data.targets.ItemTargets`, dicts.

    Reads ``id``, ``tts_text``/``text``, ``audio`` (24 kHz) or ``wav_path``, and when present ``phonemes``,
    ``durations``, ``f0``, ``style``. `targets` (a mapping id -> target, or an iterable of targets with
    ``id``) supplies durations/F0/style for items that lack them.
    """
    from helpers.data.audio import load_audio

    if targets is not None and not isinstance(targets, Mapping):
        targets = {_get(t, "id"): t for t in targets}
    out = []
    for it in items:
        if isinstance(it, EvalItem):
            out.append(it)
            continue
        iid = str(_get(it, "id"))
        tg = (targets or {}).get(iid)
        audio, sr = _get(it, "audio"), SAMPLE_RATE
        if audio is None:
            loaded = load_audio(_get(it, "wav_path"))
            audio, sr = loaded.samples, loaded.source_sample_rate
        elif _get(it, "wav_path") is not None:
            from helpers.data.audio import probe

            sr = probe(_get(it, "wav_path")).sample_rate
        text = _get(it, "tts_text") or _get(it, "normalized") or _get(it, "text")

        def pick(name, it=it, tg=tg):
            v = _get(it, name)
            return v if v is not None or tg is None else _get(tg, name)

        f0, dur, sty = pick("f0"), pick("durations"), pick("style")
        out.append(
            EvalItem(
                id=iid,
                text=text,
                audio=np.asarray(audio, dtype=np.float32),
                phonemes=pick("phonemes"),
                durations=None if dur is None else np.asarray(dur),
                f0=None if f0 is None else np.asarray(f0, dtype=np.float32),
                style=None if sty is None else np.asarray(sty, dtype=np.float32),
                source_sample_rate=int(sr),
            )
        )
    return out


@dataclass
class EvalSentence:
    """One held-out text sentence (no recording): the teacher (LSTM) is the reference."""

    id: str
    text: str
    phonemes: str | None = None
    style: np.ndarray | None = None


def eval_sentences(sentences: Iterable) -> list[EvalSentence]:
    """Strings, `helpers.data.text_corpus.TextItem`s or dicts with ``text`` (and optional ``id``, ``phonemes``, ``style``)."""
    out = []
    for i, s in enumerate(sentences):
        if isinstance(s, EvalSentence):
            out.append(s)
        elif isinstance(s, str):
            out.append(EvalSentence(f"t{i:03d}", s))
        else:
            sty = _get(s, "style")
            out.append(
                EvalSentence(
                    str(_get(s, "id") or f"t{i:03d}"),
                    _get(s, "text"),
                    _get(s, "phonemes"),
                    None if sty is None else np.asarray(sty, dtype=np.float32),
                )
            )
    return out


def against(syn: Synthesis, model, ref_durations, ref_f0=None) -> ProsodyPair:
    """A contender's synthesis against a reference's durations and F0 (helpers.compare.scoring, as every scorer):
    its own durations, and its F0 on the reference's durations, from the DurationEncoder output and style the
    synthesis kept (no second text pass). `model` is the contender that spoke `syn`."""
    d, ref_s = syn.extras["d"], syn.extras["ref_s"]  # (T, 640), (1, 256)
    s = ref_s.to(d.device)[:, STYLE_DIM:]  # (1, 128) the prosody half
    return prosody_pair(getattr(model, "model", model), s, d, syn.durations, ref_durations, ref_f0=ref_f0)


METRICS = {  # column -> (label, units, which way is better)
    "dur_mae_frames": ("duration MAE", "frames (25 ms)", "lower"),
    "dur_within1_pct": ("durations within 1 frame", "% tokens", "higher"),
    "boundary_mae_ms": ("token boundary error", "ms", "lower"),
    "boundary_tempo_ms": ("token boundary error, tempo-normalised", "ms", "lower"),
    "f0_rmse_hz": ("F0 RMSE (voiced in both)", "Hz", "lower"),
    "f0_shape_rmse_hz": ("F0 RMSE, means removed (shape)", "Hz", "lower"),
    "voicing_err_pct": ("voicing error", "% frames", "lower"),
    "mcd_db": ("MCD (DTW, c1..c24)", "dB", "lower"),
    "wer_pct": ("WER (pocketsphinx, relative only)", "%", "lower"),
    "dnsmos_ovrl": ("DNSMOS overall quality", "MOS 1..5", "higher"),
    "speaker_sim": ("speaker similarity (resemblyzer)", "cosine", "higher"),
}
SETS = {"real": "held-out recordings vs targets", "text": "held-out sentences vs teacher (LSTM)"}


def evaluate_recordings(
    models: Mapping,
    items: Iterable,
    *,
    voice=None,
    speed: float = 1.0,
    seed: int | None = 0,
    asr: bool = True,
    dnsmos: bool = False,
    similarity: bool = False,
    mcd_order: int = 24,
    progress: bool = False,
    notes: list[str] | None = None,
    cache_dir: str | Path | None = None,
) -> list[dict]:
    """The "real" rows of `evaluate`: one per (recording, model), plus one per recording (model "recording")
    with the recording's own WER (and DNSMOS). Any number of models (name -> model), one is enough.
    ``cache_dir`` (the workbook's cache, `Settings.cache_dir`) keeps the recordings' own scores per clip
    (`helpers.compare.recording_scores`): a second run on the same clips computes none of them again.

    Duration metrics score the spoken tokens only (`helpers.kokoro.g2p.spoken_tokens`): BOS, EOS and the
    punctuation touching them hold the recording's leading and trailing silences, which no text predicts.
    ``dnsmos=True`` adds ``dnsmos_ovrl`` (`metrics.dnsmos`, overall quality 1..5) for every audio.
    ``similarity=True`` adds ``speaker_sim``: the cosine between each audio's speaker embedding and the speaker's,
    embedded once from all of these recordings (`helpers.compare.similarity`; the recording's own row is a ceiling,
    since it is part of that reference). Messages on skipped metrics are appended to `notes`.
    """
    from tqdm.auto import tqdm

    from helpers.compare.recording_scores import RecordingScores
    from helpers.data.features import f0_pyin, fit_to_grid
    from helpers.kokoro.g2p import phonemize

    notes = [] if notes is None else notes
    items = eval_items(items)
    scores = RecordingScores(cache_dir)  # the recordings' own WER, DNSMOS and embeddings (cached with a folder)
    if similarity:
        from helpers.compare import similarity as SIM

        own = [scores.embedding(it.audio) for it in items]  # (256,) each, unit norm
        speaker = SIM.speaker_of(own)  # (256,) unit norm
    rows = []
    for k, it in enumerate(tqdm(items, desc="recordings", disable=not progress)):
        phon = it.phonemes or phonemize(it.text)
        v = it.style if it.style is not None else voice
        fmax = min(it.source_sample_rate / 2, M.effective_bandwidth(it.audio))  # MCD band: the recording's
        base = {
            "set": "real",
            "id": it.id,
            "text": it.text,
            "recording_s": round(len(it.audio) / SAMPLE_RATE, 3),
        }
        if asr or dnsmos or similarity:
            rec = {**base, "model": "recording"}
            if asr:
                rec["wer_pct"], rec["transcript"] = scores.wer(it.audio, it.text)
            if dnsmos:
                rec["dnsmos_ovrl"] = scores.dnsmos(it.audio)
            if similarity:
                rec["speaker_sim"] = float(own[k] @ speaker)
            rows.append(rec)
        target_f0 = None
        if it.durations is not None:
            n = int(np.sum(it.durations))
            target_f0 = it.f0 if it.f0 is not None else f0_pyin(fit_to_grid(it.audio))[0]
            if abs(len(target_f0) - 2 * n) > 4:
                notes.append(
                    f"{it.id}: target F0 has {len(target_f0)} frames, durations need {2 * n}: F0 skipped"
                )
                target_f0 = None
        else:
            notes.append(f"{it.id}: no target durations: duration and F0 metrics skipped")
        for name, kk in models.items():
            syn = synthesize(kk, phonemes=phon, voice=as_pack(kk, v), speed=speed, seed=seed)
            row = {**base, "model": name, "tokens": len(syn.durations), "seconds": round(syn.seconds, 3)}
            if it.durations is not None and len(it.durations) == len(syn.durations):
                pair = against(syn, kk, it.durations, target_f0)  # target_f0 None: durations only
                row.update(pair.spoken(syn.token_ids).scores())  # BOS/EOS and edge punctuation left out
            elif it.durations is not None:
                notes.append(f"{it.id}: {len(it.durations)} target durations for {len(syn.durations)} tokens")
            row["mcd_db"] = M.mcd(syn.audio, it.audio, order=mcd_order, fmax=fmax)
            if asr:
                row["wer_pct"], row["transcript"] = M.asr_wer(syn.audio, it.text)
            if dnsmos:
                row["dnsmos_ovrl"] = M.dnsmos(syn.audio)["ovrl"]
            if similarity:
                row["speaker_sim"] = float(SIM.embed(syn.audio, SAMPLE_RATE) @ speaker)
            rows.append(row)
    return rows


def evaluate(
    models,
    items: Iterable = (),
    sentences: Iterable = (),
    *,
    voice=None,
    speed: float = 1.0,
    seed: int | None = 0,
    asr: bool = True,
    dnsmos: bool = False,
    mcd_order: int = 24,
    progress: bool = False,
) -> pd.DataFrame:
    """Objective comparison of every contender; one row per (utterance, model). ``df.attrs['notes']`` lists
    what was skipped, ``df.attrs['models']`` the contenders' names, the reference first.

    `models`: name -> model, the reference (the LSTM, the teacher) first, e.g. ``{"LSTM": lstm, "Mamba":
    mamba, "CfC": cfc}``.
    Real recordings (`items`, see `eval_items`; `evaluate_recordings`): each model speaks the transcript
    freely; durations are compared with the target durations on the spoken tokens (when the item has them,
    same token count), F0 and voicing with
    the target F0 after forcing the model onto the target durations (F0 predicted without the decoder;
    the target F0 is pYIN of the recording when the item carries none), MCD against the recording
    (DTW; band limited to the recording's own bandwidth, `metrics.effective_bandwidth`), WER of the free
    synthesis (and, as a ceiling, of the recording itself: model "recording"); ``dnsmos=True`` adds DNSMOS
    overall quality for every audio, the recording's included.
    Held-out sentences: the reference's output is the reference. Each other model's free durations vs the
    reference's (agreement), F0 vs the reference's with the model forced onto the reference's durations, MCD
    vs the reference's audio (DTW, same seed), and WER for every model.
    """
    from tqdm.auto import tqdm

    from helpers.compare.contenders import as_contenders
    from helpers.kokoro.g2p import phonemize

    models = as_contenders(models)
    ref_name, ref = next(iter(models.items()))
    rows, notes = [], []
    items, sentences = eval_items(items), eval_sentences(sentences)
    rows += evaluate_recordings(models, items, voice=voice, speed=speed, seed=seed, asr=asr, dnsmos=dnsmos,
                                mcd_order=mcd_order, progress=progress, notes=notes)  # fmt: skip
    for s in tqdm(sentences, desc="sentences", disable=not progress):
        phon = s.phonemes or phonemize(s.text)
        v = s.style if s.style is not None else voice
        base = {"set": "text", "id": s.id, "text": s.text}
        a = synthesize(ref, phonemes=phon, voice=as_pack(ref, v), speed=speed, seed=seed)
        ra = {**base, "model": ref_name, "tokens": len(a.durations), "seconds": round(a.seconds, 3)}
        if asr:
            ra["wer_pct"], ra["transcript"] = M.asr_wer(a.audio, s.text)
        rows.append(ra)
        for name, kk in list(models.items())[1:]:
            b = synthesize(kk, phonemes=phon, voice=as_pack(kk, v), speed=speed, seed=seed)
            rb = {**base, "model": name, "tokens": len(b.durations), "seconds": round(b.seconds, 3)}
            rb.update(against(b, kk, a.durations, a.f0).scores())
            rb["mcd_db"] = M.mcd(b.audio, a.audio, order=mcd_order)
            if asr:
                rb["wer_pct"], rb["transcript"] = M.asr_wer(b.audio, s.text)
            rows.append(rb)
    if not items:
        notes.append("no recordings given: the 'real' metrics are absent")
    if not sentences:
        notes.append("no sentences given: the teacher-agreement metrics are absent")
    if not asr:
        notes.append("ASR off: no WER")
    df = pd.DataFrame(rows)
    for col in ("set", "id", "model", "text", *METRICS, "transcript"):
        if col not in df.columns:
            df[col] = np.nan
    df.attrs["notes"] = notes
    df.attrs["models"] = list(models)
    return df
