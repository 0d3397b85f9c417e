"""The rehearsal speaker: Festival's slt voice writes a dataset with true word timing, and a few of its clips go
through the workbook's preparation (pause-aware DTW against Kokoro) and one stage-2 step.

Festival is installed by `scripts/workbook.sh setup` on Debian-like machines (as root, with apt-get); elsewhere
the tests that need it are skipped, saying why."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from scipy.io import wavfile

from helpers.data import festival
from helpers.data.festival import APT_LINE, festival_available, make_speaker, read_timing
from helpers.data.prepare import PrepareConfig, prepare_dataset
from helpers.data.readers import read_dataset
from helpers.data.truth import compare_words, word_spans
from helpers.grid import SAMPLE_RATE
from helpers.settings import REPO_ROOT, Settings
from helpers.train.config import TrainConfig
from helpers.train.stage2 import finetune
from helpers.transplant.adapters import save_adapter
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

SENTENCES = (REPO_ROOT / "data" / "text" / "rehearsal_slt.txt").read_text(encoding="utf-8").splitlines()
FEW = [SENTENCES[1], SENTENCES[6], SENTENCES[8]]  # a question, a number spelled out, commas


@pytest.fixture(scope="module")
def speaker(tmp_path_factory):
    why = festival_available()
    if why:
        pytest.skip(why)
    out = tmp_path_factory.mktemp("rehearsal") / "slt"
    build = make_speaker(FEW, out, progress=False)
    return out, build


def test_the_rehearsal_sentences_are_ours_and_fit_the_brief():
    assert len(SENTENCES) >= 300 and len(set(SENTENCES)) == len(SENTENCES)
    assert all(4 <= len(s.split()) <= 20 and "|" not in s and not any(c.isdigit() for c in s) for s in SENTENCES)
    others = set()
    for name in ("handwritten", "heldout", "sentences", "written"):
        others |= {s.strip().lower() for s in (REPO_ROOT / "data" / "text" / f"{name}.txt").read_text().splitlines()}
    assert not [s for s in SENTENCES if s.strip().lower() in others], "a rehearsal sentence is in another corpus"


def test_without_festival_it_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setattr(festival.shutil, "which", lambda name: None)
    why = festival_available()
    assert why and "not installed" in why and APT_LINE in why
    with pytest.raises(RuntimeError, match="apt-get install -y festival festvox-us-slt-hts"):
        make_speaker(FEW, tmp_path / "out", progress=False)


def test_the_speaker_folder_is_a_dataset_with_true_timing(speaker, tmp_path):
    out, build = speaker
    items = read_dataset(out)
    assert [it.text for it in items] == FEW and [it.id for it in items] == build.ids
    for it in items:
        rate, pcm = wavfile.read(it.wav_path)
        assert rate == SAMPLE_RATE and pcm.dtype == np.int16 and pcm.ndim == 1
        t = read_timing(out, it.id)
        words = [w.lower() for w, _, _ in t["words"]]
        assert words == [w.strip(",.?!").lower() for w in it.text.split()]
        times = np.array([[a, b] for _, a, b in t["words"]])  # (W, 2) seconds
        assert (times[:, 1] > times[:, 0]).all() and (np.diff(times.ravel()) >= -1e-6).all()
        phones = t["phones"]
        assert phones[0][0] == "pau" and phones[-1][0] == "pau"  # silence either side, as `pau` phones
        assert abs(phones[-1][2] - len(pcm) / SAMPLE_RATE) < 0.03  # the timing covers the audio
        level = np.abs(pcm[: int(phones[0][2] * SAMPLE_RATE * 0.8)]).max()
        assert level < 0.05 * np.abs(pcm).max(), "the leading pause is silent in the audio"
    again = make_speaker(FEW, out, progress=False)
    assert again.skipped and again.ids == build.ids  # the same build is found, not redone
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        make_speaker(FEW, mine, progress=False)
    assert (mine / "notes.txt").read_text() == "keep me" and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


@pytest.mark.slow
def test_rehearsal_clips_go_through_preparation_and_one_stage2_step(
    speaker, kokoro_offline, kokoro_small_random, fresh_small_model, tmp_path
):
    out, _ = speaker
    S = Settings(mode="ci", cache_dir=tmp_path / "cache", dataset=str(out))
    config = PrepareConfig(voice="bf_emma")  # the pack "auto" picks for slt (nearest F0), minus the pYIN
    data = prepare_dataset(kokoro_offline, out, S, config, progress=False, verbose=False)
    assert not data.failed and not data.report.summary()["excluded"] and [len(data.train), len(data.dev), len(data.test)] == [1, 1, 1]
    # the DTW durations put word boundaries near Festival's: within Kokoro's constant offset (its audio runs
    # ~45 ms ahead of its own durations: benchmarks/README.md), and tight around it
    errs = []
    for tg in [*data.train, *data.dev, *data.test]:
        assert tg.check["checked"], tg.check  # the pocketsphinx word check ran on every clip
        cmp = compare_words(word_spans(tg.text, tg.phonemes, tg.durations), read_timing(out, tg.id)["words"])
        errs.append(np.concatenate([cmp["start_ms"], cmp["end_ms"]]))
    e = np.concatenate(errs)
    offset = np.median(e)
    assert len(e) >= 40 and 0 <= offset <= 100, offset
    assert np.median(np.abs(e - offset)) <= 35, np.median(np.abs(e - offset))
    # one stage-2 step at tiny size on these clips (the small random Kokoro stands in for the student)
    stage1 = fresh_small_model()
    replace_duration_encoder(stage1, SurgeryConfig(n_layers=1, d_state=4, expand=1))
    save_adapter(stage1, tmp_path / "stage1")
    cfg = TrainConfig(stage="finetune", steps=1, batch_size=2, prosody_items=1, mel_items=0, warmup_steps=1,
                      lr=1e-3, eval_every=1, sample_every=100, out_dir=str(tmp_path / "run"))  # fmt: skip
    pack = kokoro_offline.voice("bf_emma")
    run = finetune(kokoro_small_random, data, pack, cfg, "mamba", tmp_path / "stage1", tmp_path / "mamba",
                   fresh_small_model, progress=False, samples=False)  # fmt: skip
    assert run.trainer.step == 1 and (tmp_path / "mamba" / "adapter.safetensors").is_file()
    losses = [r["loss"] for r in run.trainer.history if "loss" in r]
    assert losses and all(np.isfinite(losses))
    trained = {it.id: it for it in run.trainer.items + run.trainer.val_items}
    for tg in [*data.train, *data.dev]:  # the step read the prepared DTW durations (train, and dev to choose)
        assert torch.equal(torch.as_tensor(trained[tg.id].durations), torch.as_tensor(tg.durations))
    assert not {tg.id for tg in data.test} & set(trained), "stage 2 never reads the test clip"
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)
