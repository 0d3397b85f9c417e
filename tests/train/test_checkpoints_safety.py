"""Checkpoints are loaded safely and never lost (issue 16, items 3 and 4 for checkpoints).

A pickled payload is refused without running; damaged files are moved aside, never deleted and never
kept in the rotation; when none can be read, resume says so by name instead of silently starting over.
"""

from __future__ import annotations

import hashlib
import pathlib
import random

import numpy as np
import pytest
import torch

from helpers.train.checkpoints import CheckpointError, CheckpointManager, rng_state, set_rng_state


def _state(step: int) -> dict:
    return {"step": step, "w": torch.full((3,), float(step)), "rng": rng_state(), "config": {"lr": 1e-3}}


def _with_checksum(path: pathlib.Path, data: bytes) -> None:
    path.write_bytes(data)
    path.with_name(path.name + ".sha256").write_text(hashlib.sha256(data).hexdigest())


class Payload:
    """Unpickling this calls Path.touch(marker): code execution, as a malicious file would do."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_pickle_payload_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"step": 9, "x": Payload(marker)}, evil)
    torch.load(evil, weights_only=False)  # the payload is real: a plain unpickle runs it
    assert marker.exists()
    marker.unlink()

    mgr = CheckpointManager(tmp_path / "ckpt")
    mgr.save(_state(4), 4)
    _with_checksum(mgr.path(9), evil.read_bytes())  # a matching checksum does not make it trusted
    with pytest.warns(UserWarning, match=r"skipping checkpoint step-0000009.pt \(UnpicklingError"):
        state, path = mgr.load_latest()
    assert not marker.exists(), "loading a checkpoint must never run code"
    assert path.name == "step-0000004.pt" and state["step"] == 4  # the good one is used
    assert (mgr.dir / "step-0000009.pt.corrupt").is_file()  # moved aside, not deleted
    assert [p.name for p in mgr.checkpoints()] == ["step-0000004.pt"]


def test_rng_state_round_trips_through_a_weights_only_load(tmp_path):
    mgr = CheckpointManager(tmp_path)
    random.random(), np.random.normal(), torch.rand(1)  # noqa: B018  (a gaussian cached in NumPy's state)
    mgr.save(_state(1), 1)
    expected = (random.random(), np.random.normal(), np.random.rand(), float(torch.rand(1)))
    state, _ = mgr.load_latest()
    set_rng_state(state["rng"])
    assert (random.random(), np.random.normal(), np.random.rand(), float(torch.rand(1))) == expected


def test_checkpoints_from_before_the_tensor_format_still_resume(tmp_path):
    """Older checkpoints hold NumPy's RNG state as an array: read weights-only with plain arrays allowed."""
    mgr = CheckpointManager(tmp_path)
    legacy = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    expected = (random.random(), np.random.rand())
    _with_checksum(mgr.path(7), _saved({"step": 7, "rng": legacy}))
    state, _ = mgr.load_latest()
    set_rng_state(state["rng"])
    assert state["step"] == 7 and (random.random(), np.random.rand()) == expected


def _saved(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_corrupt_checkpoints_leave_the_rotation_and_pruning_keeps_the_newest(tmp_path):
    mgr = CheckpointManager(tmp_path, keep_last=2)
    for step in (10, 20, 30):
        mgr.save(_state(step), step)
    assert [p.name for p in mgr.checkpoints()] == ["step-0000030.pt", "step-0000020.pt"]
    mgr.path(30).write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="checksum mismatch"):
        state, _ = mgr.load_latest()
    assert state["step"] == 20
    assert (tmp_path / "step-0000030.pt.corrupt").read_bytes() == b"garbage"
    # the run continues from 20: its next checkpoints rotate normally, the corrupt file stays aside
    for step in (25, 28):
        mgr.save(_state(step), step)
    assert [p.name for p in mgr.checkpoints()] == ["step-0000028.pt", "step-0000025.pt"]
    assert (tmp_path / "step-0000030.pt.corrupt").exists()


def test_a_new_run_at_a_lower_step_sets_the_old_one_aside(tmp_path):
    mgr = CheckpointManager(tmp_path, keep_last=2)
    for step in (500, 750):
        mgr.save(_state(step), step)
    with pytest.warns(UserWarning, match=r"step 10 is behind checkpoints.*moved"):
        new = mgr.save(_state(10), 10)
    assert mgr.checkpoints() == [new]  # the newest is never pruned, and the old run cannot be resumed
    (aside,) = [p for p in tmp_path.iterdir() if p.name.startswith("set-aside-")]
    assert sorted(p.name for p in aside.glob("*.pt")) == ["step-0000500.pt", "step-0000750.pt"]
    assert mgr.load_latest()[0]["step"] == 10


def test_no_readable_checkpoint_is_an_error_naming_them(tmp_path):
    mgr = CheckpointManager(tmp_path)
    for step in (2, 4):
        mgr.save(_state(step), step)
    mgr.path(4).write_bytes(mgr.path(4).read_bytes()[:50])
    mgr.path(2).write_bytes(b"")
    with pytest.raises(CheckpointError, match="fresh=True") as exc:
        mgr.load_latest()
    assert "step-0000004.pt: ValueError: checksum mismatch" in str(exc.value)
    assert "step-0000002.pt" in str(exc.value) and str(tmp_path) in str(exc.value)
    assert [p.name for p in mgr.checkpoints()] == ["step-0000004.pt", "step-0000002.pt"]  # left in place


def test_trainer_resume_refuses_then_starts_over_only_when_asked(fresh_small_model, tmp_path):
    from helpers.train.config import TrainConfig
    from helpers.train.items import TrainItem
    from helpers.train.trainer import Trainer
    from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

    model = fresh_small_model()
    report = replace_duration_encoder(model, SurgeryConfig(n_layers=1, d_state=4, expand=1))
    g = np.random.default_rng(0)
    items = [
        TrainItem(f"s{i}", np.array([0, *g.integers(1, 178, 6), 0]), np.zeros(256, np.float32))
        for i in range(4)
    ]
    cfg = TrainConfig(steps=2, batch_size=2, prosody_items=0, out_dir=str(tmp_path / "run"), ckpt_every=1)
    tr = Trainer(model, report.removed, items, cfg)
    for step in (250, 500):  # an earlier run's checkpoints, all damaged
        tr.ckpt.path(step).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="step-0000500.pt"):
        tr.resume()
    assert tr.resume(fresh=True) is False and tr.ckpt.checkpoints() == []
    tr.fit(progress=False)
    assert [p.name for p in tr.ckpt.checkpoints()] == ["step-0000002.pt", "step-0000001.pt"]
    aside = next(p for p in tr.ckpt.dir.iterdir() if p.name.startswith("set-aside-"))
    assert sorted(p.name for p in aside.iterdir()) == ["step-0000250.pt", "step-0000500.pt"]  # kept
