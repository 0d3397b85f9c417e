"""Bad dataset input never takes the good items down with it (issue 16, items 1, 2, 3 and 7 for data).

Each test feeds bad input next to good items and checks both sides: the bad item is refused with its
reason (and a message naming the file and line), and the good items are read, validated and prepared.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import stubs

import helpers.data.prepare as P
from helpers.data.align import edges_to_durations
from helpers.data.features import extract_features, fit_to_grid
from helpers.data.prepare import PrepareConfig, prepare_dataset
from helpers.data.readers import read_dataset, read_ljspeech, read_wav_txt_folder
from helpers.data.targets import ItemTargets
from helpers.data.validate import REASONS, validate_items
from helpers.grid import SAMPLES_PER_FRAME
from helpers.kokoro.g2p import phonemes_to_ids
from helpers.settings import Settings

SR = 24_000
GOOD_TEXT = "hello there my friend"


def tone(seconds: float = 1.5, f0: float = 150.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def letters(text: str) -> str:
    """A stand-in phonemizer: one 'phone' per letter (validation only; preparation uses the real G2P)."""
    return " ".join("".join(c for c in text.lower() if c.isalpha() or c.isspace()).split())


class StubKokoro(stubs.StubKokoro):
    """The stand-in with a zero voice pack (the tests name the voice, so no reference voice is chosen by pYIN)."""

    def voice(self, name=None):
        import torch

        return torch.zeros(510, 1, 256)


@pytest.fixture
def fake_targets(monkeypatch):
    """compute_targets without synthesis: uniform durations, features without F0. Records the ids."""
    calls: list[str] = []

    def fake(kokoro, item_id, text, phonemes, audio, style, *, features, dtw, check, keep_audio):
        calls.append(item_id)
        y = fit_to_grid(audio)
        ids = np.asarray(phonemes_to_ids(phonemes, strict=False))
        F = len(y) // SAMPLES_PER_FRAME
        d = edges_to_durations(np.linspace(0, F, len(ids) + 1)[1:-1], F)
        f = extract_features(y, features, with_f0=False)
        suspect = item_id in fake.suspect
        tg = ItemTargets(
            item_id, text, phonemes, ids, d, f.mel, f.f0, f.voiced_prob, f.energy, np.zeros(256, np.float32),
            d.copy(), None, voice=style.name, suspect=suspect, reason="word 'x' end: 180 ms" if suspect else "",
        )  # fmt: skip
        return tg, None

    fake.suspect = set()
    fake.calls = calls
    monkeypatch.setattr(P, "compute_targets", fake)
    return fake


# ------------------------------------------------------------------------------------ the mixed folder

LATIN1_ROW = "latin|Caf\xe9 au lait for my friend".encode("latin-1")
REFUSED = {
    "latin": "bad_encoding",
    "metadata.csv:4": "malformed_row",
    "emoji": "emoji",
    "cjk": "other_script",
}


def _ljspeech_folder(root):
    (root / "wavs").mkdir(parents=True)
    rows = [
        f"good1|{GOOD_TEXT}.".encode(),
        f"good2|{GOOD_TEXT}!".encode(),
        LATIN1_ROW,  # one Latin-1 byte in a UTF-8 file
        b"this row has no separator",  # line 4
        f"emoji|{GOOD_TEXT} \U0001f642".encode(),
        "cjk|你好，我的朋友。".encode(),
        f"upper|{GOOD_TEXT}.".encode(),
    ]
    (root / "metadata.csv").write_bytes(b"\n".join(rows) + b"\n")
    for i, name in enumerate(["good1", "good2", "latin", "emoji", "cjk"]):
        sf.write(root / "wavs" / f"{name}.wav", tone(f0=120 + 20 * i), SR)
    sf.write(root / "wavs" / "upper.WAV", tone(f0=230), SR)  # upper-case suffix
    return root


def _wav_txt_folder(root):
    root.mkdir(parents=True)
    texts = {
        "good1": f"{GOOD_TEXT}.".encode(),
        "good2": f"{GOOD_TEXT}!".encode(),
        "latin": "Caf\xe9 au lait for my friend".encode("latin-1"),
        "utf16": f"{GOOD_TEXT}?".encode("utf-16"),  # with its BOM: read as UTF-16
        "emoji": f"{GOOD_TEXT} \U0001f642".encode(),
        "cjk": "你好，我的朋友。".encode(),
        "upper": f"{GOOD_TEXT}.".encode(),
    }
    for i, (name, data) in enumerate(texts.items()):
        (root / f"{name}.txt").write_bytes(data)
        wav = root / (f"{name.upper()}.WAV" if name == "upper" else f"{name}.wav")
        sf.write(wav, tone(f0=120 + 20 * i), SR)
    return root


LAYOUTS = {
    "ljspeech": (_ljspeech_folder, REFUSED, {"good1", "good2", "upper"}),
    "wav_txt": (
        _wav_txt_folder,
        {"latin": "bad_encoding", "emoji": "emoji", "cjk": "other_script"},
        {"good1", "good2", "utf16", "UPPER"},
    ),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_mixed_folder_refuses_each_bad_item_and_prepares_the_good(layout, tmp_path, fake_targets):
    make, refused, good = LAYOUTS[layout]
    root = make(tmp_path / "data")
    S = Settings(mode="ci", cache_dir=tmp_path / "cache", voice="af_heart")
    data = prepare_dataset(StubKokoro(), root, S, progress=False, verbose=False)  # the real G2P

    rows = {r.id: r for r in data.report.rows}
    assert {i: r.reason for i, r in rows.items() if not r.kept} == refused, data.report.describe()
    assert all(code in REASONS for code in refused.values())
    if layout == "ljspeech":
        assert "metadata.csv:3" in rows["latin"].message and "0xe9" in rows["latin"].message
        assert "metadata.csv:4" in rows["metadata.csv:4"].message
    else:
        assert "latin.txt:1" in rows["latin"].message
    assert "U+1F642" in rows["emoji"].message and "U+4F60" in rows["cjk"].message
    # the good ones (a UTF-16 transcript and an upper-case .WAV among them) are read and prepared
    assert set(data.train.ids + data.dev.ids + data.test.ids) == good
    assert sorted(fake_targets.calls) == sorted(good)  # refused items never reach G2P-based targets
    assert "refused" in json.dumps(data.manifest) and len(data.manifest["refused"]) == len(refused)


# ------------------------------------------------------------------------------------------ 1. readers


def test_readers_isolate_rows_and_files(tmp_path):
    root = tmp_path / "ljs"
    (root / "wavs").mkdir(parents=True)
    sf.write(root / "wavs" / "a.wav", tone(), SR)
    sf.write(root / "wavs" / "B.Wav", tone(), SR)
    (root / "metadata.csv").write_bytes(
        b"\xef\xbb\xbfa|"
        + GOOD_TEXT.encode()
        + b"\r\n\r\n"
        + b"\xff\xfe|broken\r\n"
        + b"b|"
        + GOOD_TEXT.encode()
    )
    items = read_ljspeech(root)
    assert [it.id for it in items] == ["a", "metadata.csv:3", "b"]  # BOM skipped, blank line skipped
    assert items[0].problem is None and items[0].text == GOOD_TEXT
    assert items[1].problem[0] == "bad_encoding" and f"{root / 'metadata.csv'}:3" in items[1].problem[1]
    assert items[2].wav_path.name == "B.Wav"  # case-insensitive match

    # the whole metadata file in UTF-16 (Windows Notepad's "Unicode"): read, not refused
    (root / "metadata.csv").write_bytes(f"a|{GOOD_TEXT}\nb|Ünïcode text\n".encode("utf-16"))
    assert [(it.id, it.text, it.problem) for it in read_ljspeech(root)] == [
        ("a", GOOD_TEXT, None),
        ("b", "Ünïcode text", None),
    ]
    # UTF-16 without a BOM: every line holds NUL bytes and is refused with that explanation
    (root / "metadata.csv").write_bytes(f"a|{GOOD_TEXT}\n".encode("utf-16-le"))
    (only,) = read_ljspeech(root)
    assert only.problem[0] == "bad_encoding" and "NUL bytes" in only.problem[1]

    folder = tmp_path / "pairs"
    folder.mkdir()
    sf.write(folder / "x.wav", tone(), SR)
    sf.write(folder / "X.WAV", tone(), SR)  # names differing in case only: paired exactly, not merged
    (folder / "x.txt").write_text(GOOD_TEXT)
    pairs = {it.id: it for it in read_wav_txt_folder(folder)}
    assert set(pairs) == {"x", "X"} and pairs["x"].text == GOOD_TEXT and pairs["X"].notes
    assert read_dataset(folder)[0].id == "X"


# ------------------------------------------------------------------------------ 2. not English speech


@pytest.mark.parametrize(
    "text, code",
    [
        ("\U0001f642", "emoji"),
        ("He waved \U0001f44b\U0001f3fd and left.", "emoji"),
        ("那是一个美好的早晨。", "other_script"),
        ("مرحبا بالعالم", "other_script"),
        ("Hello Привет.", "other_script"),
        ("ring the bell\x07 now", "control_chars"),
        ("zero\u200bwidth", "control_chars"),
        ("--- ...", "no_latin_letters"),
    ],
)
def test_text_that_is_not_english_is_refused_before_g2p(tmp_path, text, code):
    sf.write(tmp_path / "bad.wav", tone(), SR)
    sf.write(tmp_path / "good.wav", tone(), SR)
    (tmp_path / "bad.txt").write_text(text, encoding="utf-8")
    (tmp_path / "good.txt").write_text("Café au lait, naïve, 42 and $5.", encoding="utf-8")
    seen: list[str] = []

    def phonemize(t: str) -> str:
        seen.append(t)
        return letters(t)

    report = validate_items(read_dataset(tmp_path), phonemize, progress=False)
    bad, good = report.rows
    assert (bad.kept, bad.reason) == (False, code) and "bad.wav" in bad.message, bad
    assert good.kept, good.message  # accented Latin, digits and symbols are English enough
    assert seen == [good.text], "refused text must never reach the G2P"
    assert code in report.summary_frame()["reason"].tolist()


# ------------------------------------------------------------------------- 3. limit never deletes items


def test_limit_then_larger_limit_keeps_every_cached_item(tmp_path, fake_targets):
    root = tmp_path / "data"
    (root / "wavs").mkdir(parents=True)
    rows = []
    for i in range(5):
        sf.write(root / "wavs" / f"c{i}.wav", tone(f0=110 + 15 * i), SR)
        rows.append(f"c{i}|{GOOD_TEXT}.")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    report = validate_items(read_dataset(root), letters, progress=False)
    S = Settings(mode="ci", cache_dir=tmp_path / "cache", voice="af_heart")
    kw = dict(report=report, progress=False, verbose=False)

    full = prepare_dataset(StubKokoro(), root, S, **kw)
    files = sorted(p.name for p in (full.cache_dir / "items").glob("*.npz"))
    assert len(files) == 5 and full.stats["computed"] == 5
    two = prepare_dataset(StubKokoro(), root, S, PrepareConfig(limit=2), **kw)
    assert len(two.train) + len(two.dev) + len(two.test) == 2 and two.stats == {**two.stats, "computed": 0, "cached": 2}
    assert sorted(p.name for p in (full.cache_dir / "items").glob("*.npz")) == files  # nothing deleted
    four = prepare_dataset(StubKokoro(), root, S, PrepareConfig(limit=4), **kw)
    assert four.stats["computed"] == 0 and four.stats["cached"] == 4  # all from the cache
    assert len(fake_targets.calls) == 5


# ------------------------------------------------------------------------------- 7. empty results are loud


def test_zero_training_items_says_why_with_counts(tmp_path, fake_targets):
    root = tmp_path / "data"
    (root / "wavs").mkdir(parents=True)
    names = ["ok1", "ok2", "quiet", "emoji"]
    for name in names:
        sf.write(root / "wavs" / f"{name}.wav", tone() * (0 if name == "quiet" else 1), SR)
    texts = {"ok1": GOOD_TEXT, "ok2": GOOD_TEXT, "quiet": GOOD_TEXT, "emoji": "\U0001f642"}
    (root / "metadata.csv").write_text("".join(f"{n}|{texts[n]}\n" for n in names))
    report = validate_items(read_dataset(root), letters, progress=False)
    fake_targets.suspect = {"ok1", "ok2"}  # the word check flags both survivors
    S = Settings(mode="ci", cache_dir=tmp_path / "cache", voice="af_heart")

    with pytest.warns(UserWarning, match="0 items for training") as rec:
        data = prepare_dataset(StubKokoro(), root, S, report=report, progress=False, verbose=False)
    message = str(rec[0].message)
    assert len(data.train) == 0 and message == data.why_empty()
    assert "of 4 read" in message
    assert "refused by validation: 2 (silent_audio 1, emoji 1)" in message
    assert "suspect by the word check, set aside (keep_suspect=False): 2" in message
    kept = prepare_dataset(
        StubKokoro(), root, S, PrepareConfig(keep_suspect=True), report=report, progress=False, verbose=False
    )
    assert len(kept.train) + len(kept.dev) + len(kept.test) == 2  # the same items, now usable: nothing was lost


def test_word_check_does_not_flag_over_punctuation_alone():
    """A real clip and its transcript, with our word edges set to pocketsphinx's own. Moving the end of
    "man" 200 ms early and giving that speech to the comma after it is no error (a comma has no sound);
    the same shift into the space after "ill-disposed" is one, and is flagged."""
    from helpers.data.audio import load_audio
    from helpers.data.wordcheck import _word_units, check_word_boundaries
    from helpers.kokoro.g2p import phonemize
    from helpers.settings import REPO_ROOT

    clip = REPO_ROOT / "data" / "librivox" / "wavs" / "sense_and_sensibility_01_austen_64kb-0880.wav"
    text = "He was not an ill-disposed young man,"
    y = fit_to_grid(load_audio(clip).samples)  # (600 F,)
    ps = phonemize(text)
    T, F = len(phonemes_to_ids(ps, strict=False)), len(y) // SAMPLES_PER_FRAME
    units = _word_units(text, ps)
    uniform = edges_to_durations(np.linspace(0, F, T + 1)[1:-1], F)
    ps_words = [(w["ps_start_ms"], w["ps_end_ms"]) for w in check_word_boundaries(text, ps, uniform, y).words]

    def durations(moved: dict[int, float]) -> np.ndarray:
        """Token t starts where pocketsphinx's words say (tokens in between spread evenly); `moved`
        overrides the start (ms) of some tokens."""
        known = {0: 0.0, T: F * 25.0}
        for (_, t0, t1, *_), (a, b) in zip(units, ps_words):
            known[t0], known[t1 + 1] = a, b
        known.update(moved)
        idx = sorted(known)
        starts = np.interp(np.arange(T + 1), idx, [known[i] for i in idx]) / 25.0  # frames
        return edges_to_durations(starts[1:T], F)

    (_, _, man_end, *_), (_, _, ill_end, *_) = units[-1], units[-3]
    assert ps[-1] == ","  # the comma is the token after "man", then EOS
    same = check_word_boundaries(text, ps, durations({}), y)
    assert same.checked and not same.suspect and same.max_speech_error_ms <= 50, same.reason  # 25 ms frames
    comma = durations({man_end + 1: ps_words[-1][1] - 200, man_end + 2: ps_words[-1][1]})
    wc = check_word_boundaries(text, ps, comma, y)
    assert not wc.suspect and wc.words[-1]["end_speech_ms"] == 0.0, wc.reason
    space = check_word_boundaries(text, ps, durations({ill_end + 1: ps_words[-3][1] - 200}), y)
    assert space.suspect and "'ill disposed' end" in space.reason, space.frame().to_string()
