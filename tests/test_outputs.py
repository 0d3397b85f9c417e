"""Nothing of the user's is lost (issue 27): refusals before overwriting, one run per output folder, no partial
files on a full disk, the recipe away from the shipped results/, one cache per dataset folder."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from helpers import outputs as O
from helpers.settings import REPO_ROOT, runs_root
from helpers.train import cli, fit_voice, recipe
from helpers.train.checkpoints import CheckpointManager


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_second_process_is_refused_and_a_dead_ones_lock_taken_over(tmp_path):
    holder = {"pid": 1, "host": socket.gethostname(), "since": "2026-01-01 00:00:00", "purpose": "training"}
    (tmp_path / O.LOCK_NAME).write_text(json.dumps(holder))  # pid 1 is alive
    with pytest.raises(O.OutputBusy, match=r"in use by training \(pid 1 on .*choose another --out"):
        O.OutputLock(tmp_path).acquire()
    (tmp_path / O.LOCK_NAME).write_text(json.dumps({**holder, "pid": _dead_pid()}))
    with pytest.warns(UserWarning, match="which has ended; taken over"):
        lock = O.OutputLock(tmp_path).acquire()
    assert json.loads((tmp_path / O.LOCK_NAME).read_text())["pid"] == os.getpid()
    O.OutputLock(tmp_path).acquire()  # the same process again (a notebook cell run twice)
    lock.release()
    assert not (tmp_path / O.LOCK_NAME).exists()


def test_two_processes_on_one_out_folder(tmp_path):
    code = ("import sys, time; from helpers.outputs import OutputLock; OutputLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); time.sleep(30)")  # fmt: skip
    other = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO_ROOT, stdout=subprocess.PIPE)
    try:
        assert other.stdout.readline().strip() == b"held"
        with pytest.raises(O.OutputBusy, match=f"pid {other.pid}"):
            O.OutputLock(tmp_path).acquire()
    finally:
        other.kill()
        other.wait()


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "step-0000010.pt"
    target.write_bytes(b"previous")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"\(the disk is full\).*partial file was removed"):
        O.atomic_write(target, b"new" * 1000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0000010.pt"] and target.read_bytes() == b"previous"


def test_partial_checkpoints_of_an_ended_run_are_swept(tmp_path, capsys):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    (ckpts / "step-0000010.pt.tmp").write_bytes(b"x" * 10)  # the old shared name
    (ckpts / f"step-0000020.pt.{_dead_pid()}-abcd1234.tmp").write_bytes(b"x")
    live = ckpts / f"step-0000030.pt.{os.getpid()}-abcd1234.tmp"  # a write in progress
    live.write_bytes(b"x")
    CheckpointManager(ckpts)
    assert [p.name for p in ckpts.iterdir()] == [live.name]
    assert "removed 2 partial checkpoint file(s)" in capsys.readouterr().out


def test_temporary_names_are_never_shared():
    path = Path("/x/adapter.safetensors")
    assert len({O.unique_tmp(path) for _ in range(50)}) == 50


def test_same_named_dataset_folders_get_their_own_cache(tmp_path):
    a, b = tmp_path / "one" / "wavs", tmp_path / "two" / "wavs"
    assert O.dataset_cache_name(a) != O.dataset_cache_name(b)
    assert O.dataset_cache_name(a).startswith("wavs-") and O.dataset_cache_name(a) == O.dataset_cache_name(a)


def test_train_refuses_an_out_that_holds_a_run(tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "best.pt").write_bytes(b"x")
    (tmp_path / "adapter.safetensors").write_bytes(b"x")
    with pytest.raises(SystemExit) as e:
        cli.main(["--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "a training run in" in err and "--resume" in err and "--overwrite" in err
    assert (tmp_path / "adapter.safetensors").read_bytes() == b"x"  # untouched
    cli.check_out(tmp_path, resume=False, overwrite=True)  # asked for: allowed


def test_recipe_writes_under_runs_by_default_and_never_into_shipped_results(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KOKORO_MAMBA_RUNS", str(tmp_path))
    seen = {}
    monkeypatch.setattr(recipe, "run", lambda out, *a, **k: seen.setdefault("out", out))
    recipe.main([])
    assert seen["out"] == tmp_path / "distill-cpu"
    with pytest.raises(SystemExit):  # the shipped adapter and its results stay
        recipe.main(["--out", str(REPO_ROOT / "results" / "distill-cpu")])
    assert "already exists" in capsys.readouterr().err
    with pytest.raises(FileExistsError, match="inside the repository's shipped results/"):
        recipe.check_out(REPO_ROOT / "results" / "a-new-folder", overwrite=False)


def test_fit_voice_refuses_to_replace_a_pack_and_names_the_clips_it_leaves_out(tmp_path, capsys):
    pack = tmp_path / "reader.safetensors"
    pack.write_bytes(b"mine")
    with pytest.raises(SystemExit):
        fit_voice.main(["--out", str(pack)])
    assert "already exists; nothing was changed. Pass --overwrite" in capsys.readouterr().err
    assert pack.read_bytes() == b"mine"
    data = SimpleNamespace(
        report=SimpleNamespace(excluded=[SimpleNamespace(id="a", reason="too_short", message="a.wav: 0.2 s")]),
        manifest={"items": [{"id": "b", "suspect": True, "reason": "word 'an' end: 200 ms"}]},
        failed=[], train=[1, 2], dev=[3],
    )  # fmt: skip
    fit_voice.print_set_aside(data)
    out = capsys.readouterr().out
    assert "not used: a (too_short: a.wav: 0.2 s)" in out and "not used: b (suspect: word 'an' end: 200 ms)" in out
    assert "2 clip(s) not used; the fit uses 2 training and 1 dev" in out


def test_a_tilde_in_the_runs_folder_is_the_home_folder(monkeypatch):
    monkeypatch.setenv("KOKORO_MAMBA_RUNS", "~/kokoro-runs")
    assert runs_root() == Path.home() / "kokoro-runs"
