"""Duration targets by DTW, the per-item cache, the split and the text corpus (helpers.data.targets/prepare)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import stubs

from helpers.data.align import DTWSettings, align_durations, edges_to_durations, silent_frames
from helpers.data.features import FeatureSettings, extract_features, fit_to_grid
from helpers.data.prepare import PrepareConfig, prepare_dataset
from helpers.data.readers import read_ljspeech
from helpers.data.targets import ItemTargets, compute_targets, voice_style
from helpers.data.text_corpus import TextCorpus, prepare_text_corpus
from helpers.data.validate import ValidationSettings, validate_items
from helpers.data.wordcheck import check_word_boundaries
from helpers.grid import SAMPLES_PER_FRAME
from helpers.kokoro.g2p import phonemes_to_ids
from helpers.settings import REPO_ROOT, Settings

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
LIBRIVOX = REPO_ROOT / "data" / "librivox"
SHORT_CLIP = "sense_and_sensibility_01_austen_64kb-0880"  # 3 s: "He was not an ill-disposed young man,"


# ------------------------------------------------------------------------------------- pure functions


@pytest.mark.parametrize("seed", range(5))
def test_edges_to_durations_always_valid(seed):
    rng = np.random.default_rng(seed)
    T, F = int(rng.integers(3, 60)), 0
    F = T + int(rng.integers(0, 200))
    edges = np.sort(rng.uniform(-5, F + 5, T - 1))
    edges[rng.integers(0, T - 1)] = F + 50  # out of range and out of order
    d = edges_to_durations(edges, F)
    assert d.shape == (T,) and d.sum() == F and (d >= 1).all()


def test_edges_to_durations_keeps_good_edges_and_refuses_impossible():
    assert edges_to_durations(np.array([2.4, 5.6, 9.0]), 12).tolist() == [2, 4, 3, 3]
    assert edges_to_durations(np.array([0.0, 0.0]), 3).tolist() == [1, 1, 1]
    with pytest.raises(ValueError, match="cannot fit"):
        edges_to_durations(np.zeros(5), 4)


def test_silent_frames_needs_60ms():
    sr = 24_000
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(sr) / sr)).astype(np.float32)
    gap_long, gap_short = np.zeros(int(0.2 * sr), np.float32), np.zeros(int(0.03 * sr), np.float32)
    y = fit_to_grid(np.concatenate([tone, gap_long, tone, gap_short, tone]))
    y = y + np.random.default_rng(0).normal(0, 1e-4, len(y)).astype(np.float32)
    silent = silent_frames(y, DTWSettings())
    t = np.arange(len(silent)) * 0.0125
    assert silent[(t > 1.03) & (t < 1.17)].all()  # inside the 200 ms gap
    assert not silent[(t > 2.2) & (t < 2.24)].any()  # the 30 ms gap is too short
    assert not silent[t < 0.95].any()


# ----------------------------------------------------------------------------- with the real model


@pytest.mark.slow
def test_known_truth_alignment(kokoro_offline):
    """Kokoro in another voice, slower, with a pause and noise: the edges come back within tens of ms."""
    from bench_alignment import boundary_errors, make_case

    ps = "ðə fˈɛɹi lˈivz æt nˈun, ænd wˌi ɑɹ lˈAt ɐɡˈɛn tədˈA."
    style = voice_style(kokoro_offline, "jf_alpha")
    case = make_case(kokoro_offline, ps, "jf_nezumi", 0.85, pauses=1, noise_db=-35.0, seed=3)
    al = align_durations(kokoro_offline, ps, case.audio, style(ps))
    F = len(case.audio) // SAMPLES_PER_FRAME
    assert al.durations.sum() == F and (al.durations >= 1).all()
    assert len(al.durations) == len(phonemes_to_ids(ps, strict=False))
    err = boundary_errors(al.durations, case.true_edges_ms)
    assert err.mean() < 40, f"mean boundary error {err.mean():.1f} ms"


@pytest.mark.slow
def test_targets_of_a_real_clip_share_one_grid(kokoro_offline):
    from helpers.data.audio import load_audio

    item = next(i for i in read_ljspeech(LIBRIVOX) if i.id == SHORT_CLIP)
    audio = load_audio(item.wav_path).samples
    ps = "hˌi wʌz nˌɑt ɐn ˌɪldəspˈOzd jˈʌŋ mˈæn,"
    tg, al = compute_targets(kokoro_offline, item.id, item.tts_text, ps, audio, voice_style(kokoro_offline))
    tg.validate()
    F = len(audio) // SAMPLES_PER_FRAME
    assert tg.n_frames == F == al.n_frames
    assert tg.mel.shape == (80, 2 * F) and len(tg.f0) == len(tg.energy) == 2 * F == 2 * tg.durations.sum()
    assert len(tg.audio) == SAMPLES_PER_FRAME * F
    assert tg.check["checked"], tg.check  # pocketsphinx knows every word of this clip
    assert tg.check["mean_error_ms"] < 60 and not tg.suspect
    assert tg.voice == "voice:af_heart" and tg.style.shape == (256,)


def test_wrong_transcript_is_suspect():
    """pocketsphinx against the audio of one clip and the transcript of another: flagged, with a reason."""
    from helpers.data.audio import load_audio
    from helpers.kokoro.g2p import phonemize

    items = {i.id[-4:]: i for i in read_ljspeech(LIBRIVOX)}
    y = fit_to_grid(load_audio(items["0890"].wav_path).samples)
    text = items["0930"].tts_text
    ps = phonemize(text)
    T, F = len(phonemes_to_ids(ps, strict=False)), len(y) // SAMPLES_PER_FRAME
    uniform = edges_to_durations(np.linspace(0, F, T + 1)[1:-1], F)
    wc = check_word_boundaries(text, ps, uniform, y)
    assert wc.checked and wc.suspect and wc.reason


# ------------------------------------------------------------------------------------------- cache


class StubKokoro(stubs.StubKokoro):
    """The stand-in with a voice pack whose rows all differ."""

    def voice(self, name=None):
        import torch

        return torch.arange(510 * 256, dtype=torch.float32).reshape(510, 1, 256)


def _fake_compute(calls):
    """A stand-in for compute_targets (no synthesis): uniform durations, features without F0."""

    def fake(kokoro, item_id, text, phonemes, audio, style, *, features, dtw, check, keep_audio):
        calls.append(item_id)
        y = fit_to_grid(audio)
        ids = np.asarray(phonemes_to_ids(phonemes, strict=False))
        F = len(y) // SAMPLES_PER_FRAME
        d = edges_to_durations(np.linspace(0, F, len(ids) + 1)[1:-1], F)
        f = extract_features(y, features, with_f0=False)
        tg = ItemTargets(
            item_id, text, phonemes, ids, d, f.mel, f.f0, f.voiced_prob, f.energy,
            np.zeros(256, np.float32), d.copy(), y if keep_audio else None, voice=style.name,
            suspect=item_id.endswith("0890"), reason="fake" if item_id.endswith("0890") else "",
        )  # fmt: skip
        return tg, None

    return fake


def test_cache_skips_invalidates_and_splits(tmp_path, monkeypatch):
    import helpers.data.prepare as P

    calls: list[str] = []
    monkeypatch.setattr(P, "compute_targets", _fake_compute(calls))
    data_dir = tmp_path / "data"
    shutil.copytree(LIBRIVOX, data_dir)
    no_rate = ValidationSettings(check_rate=False)  # the fake phonemes are far too short for the clips
    report = validate_items(read_ljspeech(data_dir), lambda text: "ðə tˈɛst.", no_rate, progress=False)
    S = Settings(mode="ci", cache_dir=tmp_path / "cache")
    kw = dict(report=report, progress=False, verbose=False)

    first = prepare_dataset(StubKokoro(), data_dir, S, **kw)
    assert len(calls) == 5 and first.stats["computed"] == 5
    manifest = json.loads((first.cache_dir / "manifest.json").read_text())
    assert manifest["settings_hash"] and manifest["settings"]["dtw"]["pause_aware"] is True
    chosen = manifest["reference_voice"]  # voice "auto": the English pack nearest the reader's F0
    assert manifest["settings"]["style"] == f"voice:{chosen['voice']}"  # so the choice is in the cache key
    assert chosen["voice"][:3] in ("am_", "bm_"), chosen  # the starter reader is a man (F0 85-130 Hz)
    assert chosen["n_clips"] == 5 and "semitones" in chosen["reason"]
    assert len(first.suspect) == 1 and first.suspect.ids[0].endswith("0890")
    assert first.suspect.ids[0] not in first.train.ids + first.dev.ids + first.test.ids  # reported, not kept
    assert (len(first.train), len(first.dev), len(first.test)) == (2, 1, 1)  # split after the suspect is set aside
    split = json.loads(first.split_file.read_text())
    assert split["suspect_set_aside"] == first.suspect.ids and first.split_file.parent == first.cache_dir
    assert (split["train"], split["dev"], split["test"]) == (first.train.ids, first.dev.ids, first.test.ids)
    item = first.train[0]
    assert isinstance(item, ItemTargets) and item.split == "train"
    item.validate()

    again = prepare_dataset(StubKokoro(), data_dir, S, **kw)
    assert len(calls) == 5 and again.stats == {**again.stats, "computed": 0, "cached": 5}
    assert (again.train.ids, again.dev.ids, again.test.ids) == (first.train.ids, first.dev.ids, first.test.ids)
    assert again.split_hash == first.split_hash

    (data_dir / "wavs" / f"{SHORT_CLIP}.wav").write_bytes(
        (LIBRIVOX / "wavs" / f"{SHORT_CLIP}.wav").read_bytes()
    )
    prepare_dataset(StubKokoro(), data_dir, S, **kw)  # one wav rewritten: only it is redone
    assert calls[5:] == [SHORT_CLIP]

    changed = PrepareConfig(dtw=DTWSettings(silence_margin_db=6.0))
    redo = prepare_dataset(StubKokoro(), data_dir, S, changed, **kw)
    assert len(calls) == 11 and redo.manifest["settings_hash"] != manifest["settings_hash"]
    assert redo.train.ids == first.train.ids  # the split does not depend on the settings

    keep = prepare_dataset(
        StubKokoro(), data_dir, S, PrepareConfig(features=FeatureSettings(), keep_suspect=True), **kw
    )
    assert len(keep.train) + len(keep.dev) + len(keep.test) == 5

    n = len(calls)
    named = prepare_dataset(StubKokoro(), data_dir, S, PrepareConfig(voice="af_heart"), **kw)
    assert named.manifest["reference_voice"]["voice"] == "af_heart"
    assert len(calls) == n + 5  # another voice: every item's targets are computed again


def test_the_dataset_setting_reaches_prepare(tmp_path, monkeypatch):
    """Settings.dataset -> prepare_recordings, the one call of notebooks 04, 05 and 06: an LJSpeech-shaped folder
    (metadata.csv + wavs/) is prepared with the workbook's recipe and split; a missing one is named."""
    import helpers.data.prepare as P
    from helpers.data.recordings import prepare_recordings, recordings_config

    calls: list[str] = []
    monkeypatch.setattr(P, "compute_targets", _fake_compute(calls))
    lj = tmp_path / "LJSpeech-like"
    (lj / "wavs").mkdir(parents=True)
    rows = [ln.split("|") for ln in (LIBRIVOX / "metadata.csv").read_text(encoding="utf-8").splitlines() if ln]
    lines = []
    for k in range(3):  # 15 clips: the starter's five, three times under LJSpeech-style ids
        for j, (clip, text, *_) in enumerate(rows):
            shutil.copy(LIBRIVOX / "wavs" / f"{clip}.wav", lj / "wavs" / f"LJ{k:03d}-{j:04d}.wav")
            lines.append(f"LJ{k:03d}-{j:04d}|{text}|{text}")
    (lj / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = validate_items(read_ljspeech(lj), lambda text: "ðə tˈɛst.", ValidationSettings(check_rate=False),
                            progress=False)  # fmt: skip
    S = Settings(mode="full", dataset=str(lj), cache_dir=tmp_path / "cache", voice="af_heart")
    data = prepare_recordings(StubKokoro(), S, report=report, progress=False, verbose=False)
    assert data.manifest["root"] == str(lj) and len(calls) == 15
    assert data.manifest["limit"] == recordings_config(S).limit and data.manifest["split"]["min_test"] == 20
    assert len(data.dev) >= 15 // 8 and len(data.test) >= 15 // 5 and len(data.train) >= 8  # minimums n/8, n/5
    assert len({*data.train.ids, *data.dev.ids, *data.test.ids}) == 15
    S.dataset = str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        prepare_recordings(StubKokoro(), S)


def test_text_corpus_cached_and_refusals_reported(tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text(
        "The cat sat on the mat.\n...\nIs it raining again?\nWe left at noon.\n", encoding="utf-8"
    )
    S = Settings(mode="ci", cache_dir=tmp_path / "cache")
    corpus = prepare_text_corpus(StubKokoro(), path, S, progress=False, verbose=False)
    assert isinstance(corpus, TextCorpus) and len(corpus) == 3
    assert [f["id"] for f in corpus.failed] == ["s00001"]
    x = corpus[0]
    assert x.token_ids[0] == x.token_ids[-1] == 0 and x.style.shape == (256,) and x.split in ("train", "val")
    assert not corpus.manifest["from_cache"]
    again = prepare_text_corpus(StubKokoro(), path, S, progress=False, verbose=False)
    assert again.manifest["from_cache"] and [a.phonemes for a in again] == [c.phonemes for c in corpus]
    assert np.array_equal(again[2].token_ids, corpus[2].token_ids)
    small = prepare_text_corpus(StubKokoro(), path, S, limit=2, progress=False, verbose=False)
    assert len(small) == 1 and not small.manifest["from_cache"]  # a different subset is prepared anew
