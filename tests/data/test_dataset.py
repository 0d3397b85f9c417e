"""Readers, the validation report (one item of every bad kind), the starter data and the text corpus."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from helpers.data.corpus import (
    build_corpus,
    check_sentences,
    generate_sentences,
    load_sentences,
    load_written,
)
from helpers.data.features import extract_features
from helpers.data.readers import (
    Item,
    download_ljspeech,
    ljspeech_url,
    read_dataset,
    read_ljspeech,
    read_wav_txt_folder,
    write_ljspeech_metadata,
)
from helpers.data.validate import REASONS, ValidationSettings, count_phones, validate_items

REPO = Path(__file__).resolve().parents[2]
SR = 24_000


def fake_phonemize(text: str) -> str:
    """Letters and spaces only: one 'phone' per letter; "" for text without letters."""
    return " ".join("".join(c for c in text.lower() if c.isalpha() or c.isspace()).split())


def tone(seconds: float, sr: int = SR, amp: float = 0.5, f0: float = 150.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * f0 * t)).astype(np.float32)  # [n]


GOOD_TEXT = "hello there my friend"  # 18 letters: 12 phones/s over 1.5 s


def write(path: Path, y: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, subtype=subtype)


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory) -> Path:
    """An LJSpeech-style folder with one item of each problem, plus good ones."""
    root = tmp_path_factory.mktemp("ljs")
    wavs = root / "wavs"
    rows = []

    def add(item_id: str, text: str, y: np.ndarray | None = None, sr: int = SR, subtype: str = "PCM_16"):
        if y is not None:
            write(wavs / f"{item_id}.wav", y, sr, subtype)
        rows.append((item_id, text, None))

    for i in range(3):
        add(f"good{i}", GOOD_TEXT, tone(1.5, f0=120 + 40 * i))
    add("stereo48k", GOOD_TEXT, np.stack([tone(1.5, 48_000), tone(1.5, 48_000, 0.3)], axis=1), sr=48_000)
    add("missing", GOOD_TEXT)
    (wavs / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    rows.append(("corrupt", GOOD_TEXT, None))
    add("empty", GOOD_TEXT, np.zeros(0, np.float32))
    add("zeros", GOOD_TEXT, np.zeros(int(1.5 * SR), np.float32))
    y = tone(1.5)
    y[1000:1010] = np.nan
    add("nan", GOOD_TEXT, y, subtype="FLOAT")
    add("clipped", GOOD_TEXT, np.clip(tone(1.5, amp=3.0), -1, 1))
    add("short", "hi", tone(0.3))
    add("long", "la " * 100, tone(31.0, sr=8_000), sr=8_000)  # 200 phones over 31 s: plausible rate
    add("notext", "", tone(1.5))
    add("nophones", "!!! ...", tone(1.5))
    add("overlimit", "abcde " * 110, tone(1.5))  # 550 letters
    add("fast", "a" * 100, tone(1.5))  # 67 phones/s
    add("slow", "ok", tone(3.0))  # 0.7 phones/s
    rows.append(("good0", GOOD_TEXT, None))  # duplicate id
    write_ljspeech_metadata(root / "metadata.csv", rows)
    return root


EXPECTED = {
    "missing": "missing_wav",
    "corrupt": "unreadable_wav",
    "empty": "empty_audio",
    "zeros": "silent_audio",
    "nan": "non_finite",
    "clipped": "clipping",
    "short": "too_short",
    "long": "too_long",
    "notext": "empty_text",
    "nophones": "no_latin_letters",  # screened before G2P
    "overlimit": "too_many_phonemes",
    "fast": "implausible_rate",
    "slow": "implausible_rate",
}
GOOD = {"good0", "good1", "good2", "stereo48k"}


@pytest.fixture(scope="module")
def report(bad_folder):
    return validate_items(read_ljspeech(bad_folder), fake_phonemize, progress=False)


def test_every_bad_item_has_its_reason(report):
    by_id = {r.id: r for r in report.rows if r.kept or r.reason != "duplicate_id"}
    for item_id, reason in EXPECTED.items():
        row = by_id[item_id]
        assert not row.kept, item_id
        assert row.reason == reason, (item_id, row.reason, row.message)
        assert reason in REASONS
        assert row.message  # human-readable
    assert "missing.wav" in by_id["missing"].message and "corrupt.wav" in by_id["corrupt"].message
    assert "implausible_rate" in by_id["overlimit"].reasons  # secondary reasons are kept too


def test_good_items_kept_with_notes_and_phonemes(report):
    assert {it.id for it in report.kept} == GOOD
    for it in report.kept:
        assert it.phonemes == fake_phonemize(GOOD_TEXT)
        assert it.duration_s == pytest.approx(1.5, abs=0.01)
    stereo = next(it for it in report.kept if it.id == "stereo48k")
    assert any(n.startswith("resampled: 48000") for n in stereo.notes)
    assert any(n.startswith("down_mixed: 2") for n in stereo.notes)
    long_row = next(r for r in report.rows if r.id == "long")
    assert any(n.startswith("resampled: 8000") for n in long_row.notes)


def test_nothing_dropped_silently(report, bad_folder):
    n_lines = len((bad_folder / "metadata.csv").read_text().splitlines())
    assert len(report.rows) == n_lines
    s = report.summary()
    assert s["items"] == n_lines and s["kept"] + s["excluded"] == n_lines
    assert s["excluded_by_reason"]["implausible_rate"] == 2
    assert s["excluded_by_reason"]["duplicate_id"] == 1
    assert s["notes"]["resampled"] == 2 and s["notes"]["down_mixed"] == 1
    df = report.to_frame()
    assert len(df) == n_lines and {"id", "kept", "reason", "message", "notes"} <= set(df.columns)
    assert report.summary_frame()["items"].sum() == s["excluded"]
    text = report.describe()
    assert all(item_id in text for item_id in EXPECTED)


def test_kept_items_can_be_processed(report):
    from helpers.data.audio import load_audio

    for it in report.kept:
        audio = load_audio(it.wav_path)  # resampled and down-mixed on load
        feats = extract_features(audio.samples, with_f0=False)
        assert audio.sample_rate == SR and audio.samples.ndim == 1
        assert feats.mel.shape == (80, 2 * feats.n_frames) and feats.n_frames == int(1.5 * SR) // 600


def test_phonemizer_errors(tmp_path):
    write(tmp_path / "wavs" / "a.wav", tone(1.5))
    items = [Item("a", GOOD_TEXT, tmp_path / "wavs" / "a.wav")]

    def raises_value_error(text: str) -> str:
        raise ValueError("unpronounceable")

    def crashes(text: str) -> str:
        raise RuntimeError("boom")

    assert validate_items(items, raises_value_error, progress=False).rows[0].reason == "no_phonemes"
    assert validate_items(items, crashes, progress=False).rows[0].reason == "phonemize_failed"
    relaxed = ValidationSettings(min_duration_s=2.0, check_rate=False)
    row = validate_items(items, fake_phonemize, relaxed, progress=False).rows[0]
    assert row.reason == "too_short" and row.phones_per_s is None


def test_count_phones_skips_marks():
    assert count_phones("həlˈO wˈɜɹld, ðɪs ɪz ɐ tˈɛst.") == 19
    assert count_phones("!!! … —") == 0


def test_ljspeech_reader(tmp_path):
    (tmp_path / "metadata.csv").write_text(
        "LJ001|Dr. Smith paid $5.|Doctor Smith paid five dollars.\n\nLJ002|Two columns only\nLJ003|\n"
    )
    items = read_ljspeech(tmp_path)
    assert [it.id for it in items] == ["LJ001", "LJ002", "LJ003"]
    assert items[0].tts_text == "Doctor Smith paid five dollars." and items[0].text == "Dr. Smith paid $5."
    assert items[1].normalized is None and items[1].tts_text == "Two columns only"
    assert items[2].text == "" and items[0].wav_path == tmp_path / "wavs" / "LJ001.wav"
    assert [it.id for it in read_dataset(tmp_path)] == ["LJ001", "LJ002", "LJ003"]
    (tmp_path / "metadata.csv").write_text("LJ001|ok\nno pipe here\n")
    ok, bad = read_ljspeech(tmp_path)  # the malformed row becomes a refused item; the rest is read
    assert ok.problem is None and bad.problem[0] == "malformed_row" and "metadata.csv:2" in bad.problem[1]


def test_wav_txt_reader(tmp_path):
    write(tmp_path / "a.wav", tone(1.5))
    (tmp_path / "a.txt").write_text("  Hello there,\n my friend \n")
    write(tmp_path / "b.wav", tone(1.5))
    (tmp_path / "c.txt").write_text("No audio for this one.")
    (tmp_path / "notes.md").write_text("ignored")
    items = read_dataset(tmp_path)
    assert [it.id for it in items] == ["a", "b", "c"]
    assert items[0].text == "Hello there, my friend"
    assert items[1].text == "" and items[1].notes == ["no_transcript: b.txt not found"]
    rep = validate_items(items, fake_phonemize, progress=False)
    assert [r.reason for r in rep.rows] == ["", "empty_text", "missing_wav"]
    assert "b.txt" in rep.rows[1].message
    write(tmp_path / "sub" / "d.wav", tone(1.0))
    assert "sub/d" in [it.id for it in read_wav_txt_folder(tmp_path, recursive=True)]


def test_ljspeech_download_is_explicit_and_offline_testable(tmp_path):
    assert ljspeech_url().startswith("https://") and ljspeech_url().endswith("LJSpeech-1.1.tar.bz2")
    archive = tmp_path / "src" / "LJSpeech-1.1.tar.bz2"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:bz2") as tar:
        data = b"LJ001-0001|Hi.|Hi.\n"
        info = tarfile.TarInfo("LJSpeech-1.1/metadata.csv")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    folder = download_ljspeech(tmp_path / "dest", url=archive.as_uri(), progress=False)
    assert [it.id for it in read_ljspeech(folder)] == ["LJ001-0001"]


# ---------------------------------------------------------------------------------------- starter data


def test_librivox_starter_data():
    root = REPO / "data" / "librivox"
    items = read_dataset(root)
    assert len(items) == 5 and all(it.normalized for it in items)
    for it in items:
        info = sf.info(str(it.wav_path))
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    assert "a more— a amiable" in items[3].text
    assert (root / "LICENSE").is_file() and "8 kHz" in (root / "NOTICE.md").read_text()
    rep = validate_items(items, fake_phonemize, progress=False)
    assert len(rep.kept) == 5, rep.describe()


def test_text_corpus():
    sentences = load_sentences(REPO / "data" / "text" / "sentences.txt")
    raw = (REPO / "data" / "text" / "sentences.txt").read_text(encoding="utf-8").splitlines()
    assert len(sentences) >= 1000 and len(raw) == len(sentences)  # no blank lines
    assert check_sentences(sentences) == []
    assert sum(s.endswith("?") for s in sentences) > 100 and sum(s.endswith("!") for s in sentences) > 100
    assert sum(any(c.isdigit() for c in s) for s in sentences) > 100
    written = load_written(REPO / "data" / "text")  # handwritten.txt + written.txt
    assert len(written) > len(sentences) / 2  # the templates are the minority
    assert build_corpus(written, len(sentences) - len(written), seed=0) == sentences  # rebuilt exactly
    heldout = load_sentences(REPO / "data" / "text" / "heldout.txt")
    assert not {s.lower() for s in heldout} & {s.lower() for s in sentences}  # evaluation stays out


def test_generator_is_deterministic():
    a, b = generate_sentences(50, seed=3), generate_sentences(50, seed=3)
    assert a == b and len(set(a)) == 50 and a != generate_sentences(50, seed=4)


def test_the_target_cache_key_knows_which_duration_encoder_made_the_targets(fresh_small_model):
    """A student's DTW reference and teacher durations must never be read back as Kokoro's (issue 24)."""
    from types import SimpleNamespace

    from helpers.data.prepare import PrepareConfig, settings_record
    from helpers.transplant.surgery import (
        SurgeryConfig,
        encoder_identity,
        replace_duration_encoder,
        restore,
    )

    model = fresh_small_model()
    kokoro, style = SimpleNamespace(model=model, source="random"), SimpleNamespace(name="voice:af_heart")
    shipped = settings_record(kokoro, PrepareConfig(), style)
    report = replace_duration_encoder(model, SurgeryConfig(n_layers=1, d_state=4, expand=1))
    operated = settings_record(kokoro, PrepareConfig(), style)
    assert operated["duration_encoder"] != shipped["duration_encoder"]
    restore(model, report)
    assert settings_record(kokoro, PrepareConfig(), style) == shipped
    with torch.no_grad():  # a fine-tuned LSTM (stage 2's control) is another DurationEncoder too
        next(model.predictor.text_encoder.parameters()).add_(1e-3)
    assert encoder_identity(model) != shipped["duration_encoder"]
