"""Datasets a new user might bring (issue 27): ids that leave the folder, flac/mp3 audio, extra columns, and
transcripts that are not the English speech of their clip."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from helpers.data.audio import load_audio
from helpers.data.readers import read_ljspeech, read_wav_txt_folder
from helpers.data.validate import validate_items
from helpers.data.wordcheck import check_word_boundaries, transcript_doubt

TONE = (0.3 * np.sin(2 * np.pi * 220 * np.arange(24_000) / 24_000)).astype(np.float32)  # 1 s


def _ljspeech(root, rows):
    (root / "wavs").mkdir(parents=True)
    (root / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("bad_id", ["../secret", "../../etc/passwd", "/tmp/elsewhere", "wavs/../../x"])
def test_ids_cannot_name_files_outside_the_dataset(tmp_path, bad_id):
    outside = tmp_path / "secret.wav"
    sf.write(outside, TONE, 24_000)
    root = _ljspeech(tmp_path / "data", [f"{bad_id}|Hello there.", "ok|Hello there."])
    sf.write(root / "wavs" / "ok.wav", TONE, 24_000)
    items = read_ljspeech(root)
    assert items[0].problem[0] == "bad_id" and "outside" in items[0].problem[1] and bad_id in items[0].problem[1]
    assert items[1].problem is None
    report = validate_items(items, lambda t: "hɛlˈO ðˈɛɹ.", progress=False)
    assert [(r.id, r.reason) for r in report.excluded][:1] == [(bad_id, "bad_id")]
    assert "ok" not in [r.id for r in report.excluded if r.reason == "bad_id"]


@pytest.mark.parametrize("fmt", ["FLAC", "MP3", "OGG"])
def test_flac_and_mp3_are_read(tmp_path, fmt):
    suffix = {"FLAC": ".flac", "MP3": ".mp3", "OGG": ".ogg"}[fmt]
    root = _ljspeech(tmp_path / "lj", ["clip|Hello there."])
    sf.write(root / "wavs" / f"clip{suffix}", TONE, 24_000, format=fmt)
    (item,) = read_ljspeech(root)
    assert item.wav_path.suffix == suffix and item.problem is None
    assert abs(load_audio(item.wav_path).duration_s - 1.0) < 0.1
    folder = tmp_path / "pairs"
    folder.mkdir()
    sf.write(folder / f"a{suffix}", TONE, 24_000, format=fmt)
    (folder / "a.txt").write_text("Hello there.")
    (pair,) = read_wav_txt_folder(folder)
    assert pair.wav_path.name == f"a{suffix}" and pair.text == "Hello there."


def test_missing_audio_names_every_suffix_looked_for(tmp_path):
    root = _ljspeech(tmp_path / "lj", ["gone|Hello there, my friend."])
    report = validate_items(read_ljspeech(root), lambda t: "hɛlˈO ðˈɛɹ.", progress=False)
    assert "audio file not found (looked for .wav, .flac, .mp3, .ogg)" in report.excluded[0].message


def test_a_fourth_column_is_not_dropped_silently(tmp_path):
    root = _ljspeech(tmp_path / "lj", ["a|Hello there.|Hello there.|speaker7", "b|Fine."])
    with pytest.warns(UserWarning, match=r"1 line\(s\) have more than 3 '\|' columns \(first: line 1\)"):
        a, b = read_ljspeech(root)
    assert any(n.startswith("extra_columns:") and "'speaker7'" in n for n in a.notes) and not b.notes


ENGLISH = [
    "He was not an ill-disposed young man, unless to be rather cold-hearted is to be ill-disposed.",
    "In 1999, Elinor Dashwood left Norland Park with Marianne.",
]
NOT_ENGLISH_SPEECH = {
    "french": ("Bonjour, je m'appelle Marie et j'habite à Paris depuis trois ans.", "English dictionary words"),
    "german": ("Guten Morgen, wie geht es dir heute? Ich hoffe, dass alles gut ist.", "English dictionary words"),
    "digits": ("1 2 3 4 5 6 7 8 9 10", "digits only"),
    "url": ("Visit https://www.example.com/index.html today.", "URL or e-mail"),
}


@pytest.mark.parametrize("text", ENGLISH)
def test_english_transcripts_pass_the_language_check(text):
    assert transcript_doubt(text) == ""


@pytest.mark.parametrize("name", NOT_ENGLISH_SPEECH)
def test_a_transcript_the_recogniser_cannot_align_gets_its_own_check(name):
    text, why = NOT_ENGLISH_SPEECH[name]
    assert why in transcript_doubt(text)
    wc = check_word_boundaries(text, "", np.ones(3, dtype=int), TONE)  # refused before any alignment
    assert wc.suspect and not wc.checked and why in wc.reason
