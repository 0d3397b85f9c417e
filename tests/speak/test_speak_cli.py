"""python -m helpers.speak: bad input fails before the model loads, with the culprit named; nothing overwritten."""

from __future__ import annotations

import pytest

from helpers.speak.__main__ import main
from helpers.speak.reader import TextFileError, check_out, piece_paths, read_text_file


@pytest.fixture
def no_model(monkeypatch):
    """Bad input must be refused before any model loads: loading fails the test."""
    import helpers.speak.__main__ as cli

    def refuse(*a, **k):
        raise AssertionError("the model was loaded for a request that should have been refused")

    monkeypatch.setattr(cli, "model_from_args", refuse)


def _run(capsys, *argv):
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def test_text_file_errors(tmp_path, capsys, no_model):
    out = str(tmp_path / "o.wav")
    cases = {
        "missing.txt": (None, "not found"),
        "empty.txt": (b"  \n\n", "empty"),
        "binary.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "binary"),
        "latin1.txt": ("Caf\u00e9 cr\u00e8me.".encode("latin-1"), "not UTF-8"),
    }
    for name, (content, why) in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        rc, err = _run(capsys, "--adapter", "none", "--text-file", str(path), "--out", out)
        assert rc == 2 and why in err and name in err, (name, err)
    assert not (tmp_path / "o.wav").exists()


def test_read_text_file_accepts_utf8_with_bom(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes("\ufeffHello there.".encode())
    assert read_text_file(p) == "Hello there."
    with pytest.raises(TextFileError, match="not a file"):
        read_text_file(tmp_path)


def test_existing_out_is_kept(tmp_path, capsys, no_model):
    out = tmp_path / "mine.wav"
    out.write_bytes(b"precious")
    rc, err = _run(capsys, "--adapter", "none", "--text", "Hello.", "--out", str(out))
    assert rc == 2 and "already exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"precious"
    rc, err = _run(capsys, "--adapter", "none", "--text", "Hello.", "--out", str(tmp_path / "x.mp3"))
    assert rc == 2 and ".wav" in err
    (tmp_path / "p-001.wav").write_bytes(b"piece")
    with pytest.raises(FileExistsError, match="p-001.wav"):
        check_out(tmp_path / "p.wav", n_pieces=2)
    assert [p.name for p in piece_paths(tmp_path / "p.wav", 2)] == ["p-001.wav", "p-002.wav"]


def test_bad_voice_speed_and_adapter(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "o.wav")
    bad_pack = tmp_path / "v.safetensors"
    bad_pack.write_bytes(b"not a pack")
    import helpers.speak.__main__ as cli

    monkeypatch.setattr(cli, "model_from_args", lambda a: (_ for _ in ()).throw(AssertionError("loaded")))
    rc, err = _run(capsys, "--adapter", "none", "--text", "Hi.", "--voice", str(bad_pack), "--out", out)
    assert rc == 2 and "v.safetensors" in err and "not a readable voice pack" in err
    rc, err = _run(capsys, "--adapter", "none", "--text", "Hi.", "--speed", "0", "--out", out)
    assert rc == 2 and "speed" in err
    monkeypatch.undo()
    rc, err = _run(capsys, "--adapter", str(tmp_path / "nope"), "--text", "Hi.", "--out", out)
    assert rc == 2 and "nope.safetensors" in err and "not found" in err
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 16)
    (tmp_path / "bad.json").write_text("{not json")
    import helpers.kokoro.loading as loading

    monkeypatch.setattr(loading, "load_kokoro", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    rc, err = _run(capsys, "--adapter", str(tmp_path / "bad"), "--text", "Hi.", "--out", out)
    assert rc == 2 and "bad.json" in err and "not valid JSON" in err


def test_unknown_voice_is_named(tmp_path, capsys, no_model):
    rc, err = _run(capsys, "--adapter", "none", "--weights", "offline-int8", "--text", "Hi.", "--voice", "zz_nobody",
                   "--out", str(tmp_path / "o.wav"))  # fmt: skip
    assert rc == 2 and "zz_nobody" in err and "af_heart" in err
