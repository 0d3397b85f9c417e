"""Every command refuses a bad argument while parsing, naming the argument and the value (issue 27).

Each row is run through the command's own `main`; the refusal comes before any model is loaded, so each takes
milliseconds. argparse exits with status 2 and prints "error: argument --X: ..." on stderr.
"""

from __future__ import annotations

import argparse

import pytest

from helpers import argtypes as A
from helpers.compare import distillation
from helpers.train import cli, fit_voice, recipe, voice_loo
from helpers.train.config import TrainConfig

COMMANDS = {"train": cli.main, "recipe": recipe.main, "fit_voice": fit_voice.main, "voice_loo": voice_loo.main,
            "distillation": distillation.main}  # fmt: skip


def _args(tmp_path, argv):
    return [a.format(tmp=tmp_path) for a in argv]


# (command, arguments, what the message must say)
CASES = [
    ("train", ["--batch-size", "0"], "argument --batch-size: must be a whole number >= 1, got '0'"),
    ("train", ["--batch-size", "-2"], "argument --batch-size: must be a whole number >= 1, got '-2'"),
    ("train", ["--ckpt-every", "0"], "argument --ckpt-every: must be a whole number >= 1"),
    ("train", ["--eval-every", "0"], "argument --eval-every: must be a whole number >= 1"),
    ("train", ["--steps", "0"], "argument --steps: must be a whole number >= 1"),
    ("train", ["--grad-clip", "-1"], "argument --grad-clip: must be a finite number > 0, got '-1'"),
    ("train", ["--lr", "nan"], "argument --lr: must be a finite number > 0"),
    ("train", ["--mel-crop-frames", "0"], "argument --mel-crop-frames: must be a whole number >= 1"),
    ("train", ["--precision", "maybe"], "argument --precision: invalid choice: 'maybe'"),
    ("train", ["--stage", "distil"], "argument --stage: invalid choice: 'distil'"),
    ("train", ["--stage", "distill", "--resume"], "stage 1 runs to a time budget in one process: no --resume"),
    ("train", ["--minutes", "0"], "argument --minutes: must be a finite number > 0"),
    ("recipe", ["--milestones", ""], "argument --milestones: must be one or more positive numbers of minutes"),
    ("recipe", ["--milestones", "5,x"], "argument --milestones: must be one or more positive numbers"),
    ("recipe", ["--batch-size", "0"], "argument --batch-size: must be a whole number >= 1"),
    ("recipe", ["--minutes", "0"], "argument --minutes: must be a finite number > 0"),
    ("recipe", ["--layer-fraction", "1.5"], "argument --layer-fraction: must be a finite number >= 0 and <= 1"),
    ("fit_voice", ["--out", "{tmp}/p.safetensors", "--crop-frames", "0"], "argument --crop-frames: must be a whole"),
    ("fit_voice", ["--out", "{tmp}/p.safetensors", "--epochs", "0"], "argument --epochs: must be a whole number >= 1"),
    ("fit_voice", ["--out", "{tmp}"], "is a folder: give a file name inside it"),
    ("fit_voice", ["--out", "{tmp}/p.pt"], "argument --out: the pack is written as .safetensors"),
    ("voice_loo", ["--voices", ","], "argument --voices: must be one or more names separated by commas"),
    ("distillation", ["--adapter", "a", "--voices", ","], "argument --voices: must be one or more names"),
    ("distillation", ["--adapter", "a", "--limit", "0"], "argument --limit: must be a whole number >= 1, got '0'"),
    ("distillation", ["--adapter", "a", "--json", "{tmp}"], "argument --json: {tmp} is a folder"),
]


@pytest.mark.parametrize(("command", "argv", "message"), CASES, ids=[f"{c}{' '.join(a)}" for c, a, _ in CASES])
def test_bad_argument_is_refused_while_parsing(command, argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        COMMANDS[command](_args(tmp_path, argv))
    assert e.value.code == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 (byte 0x89 at column 1); save the file as UTF-8"),
        ("One sentence.\n".encode("utf-16-le"), "holds NUL bytes (UTF-16 without a BOM?)"),
        (b"\n \n", "holds no sentence"),
    ],
    ids=["binary", "utf16-without-bom", "empty"],
)
def test_distillation_names_a_sentence_file_it_cannot_read(content, message, tmp_path, capsys):
    path = tmp_path / "sentences.txt"
    path.write_bytes(content)
    with pytest.raises(SystemExit) as e:
        distillation.main(["--adapter", "a", "--sentences", str(path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and str(path) in err and message in err


def test_distillation_reads_utf16_with_a_bom(tmp_path, monkeypatch):
    path = tmp_path / "s.txt"
    path.write_bytes("One sentence.\nTwo sentences.\n".encode("utf-16"))

    def reached(*args, **kwargs):
        raise RuntimeError("reached the model")

    monkeypatch.setattr("helpers.kokoro.loading.load_kokoro", reached)
    with pytest.raises(RuntimeError, match="reached the model"):  # the file was read: on to loading the model
        distillation.main(["--adapter", "a", "--sentences", str(path)])


def test_train_config_checks_the_same_ranges():
    for field, bad in [("steps", 0), ("batch_size", -2), ("grad_clip", -1.0), ("ckpt_every", 0), ("lr", float("nan"))]:
        with pytest.raises(ValueError, match=f"TrainConfig.{field} must be"):
            TrainConfig(**{field: bad})
    TrainConfig(steps=1, batch_size=1, grad_clip=0.5)  # in range


def test_argument_types_accept_what_is_in_range():
    assert A.whole(1)("3") == 3 and A.real(0, lo_open=True)("1e-3") == 1e-3
    assert A.minutes_list("5, 15,30") == (5.0, 15.0, 30.0)
    assert A.name_list("af_heart, am_michael") == ["af_heart", "am_michael"]
    for bad in ("af_heart,", ",", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            A.name_list(bad)
