"""helpers.data.pool: the pool writes what the serial loop writes, bit for bit (item files, manifest rows and their
order, the split, the failures); it keeps every finished item file when interrupted, and the next run resumes;
it runs serially, and says why, when it cannot reload the model or has too little to do.

Bit for bit at equal thread counts: each worker runs one torch thread, so the serial references here do too. torch's
convolutions sum in an order that depends on the thread count, so a serial run on two threads can differ from the
pool in the last bits of Kokoro's reference synthesis, and a DTW step can then move a duration by one frame."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil

import numpy as np
import pytest
import torch

import helpers.data.pool as POOL
from helpers.data.prepare import PrepareConfig, prepare_dataset
from helpers.data.prepared import differences
from helpers.data.readers import read_ljspeech
from helpers.data.targets import ItemTargets
from helpers.data.validate import validate_items
from helpers.kokoro.g2p import phonemize
from helpers.settings import REPO_ROOT, Settings

LIBRIVOX = REPO_ROOT / "data" / "librivox"
BROKEN = "sense_and_sensibility_01_austen_64kb-0920"  # its wav is spoilt after validation: it must fail, not stop
CONFIG = PrepareConfig(voice="am_michael")  # a named voice: no F0 register measured on the (spoilt) clips


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The five starter clips, validated with real phonemes, then one wav overwritten with bytes that are no audio."""
    data = tmp_path_factory.mktemp("pool") / "data"
    shutil.copytree(LIBRIVOX, data)
    report = validate_items(read_ljspeech(data), phonemize, progress=False)
    assert len(report.kept) == 5
    (data / "wavs" / f"{BROKEN}.wav").write_bytes(b"RIFF, but not a wav file")
    return data, report


@contextlib.contextmanager
def _one_thread():
    """One torch thread, as in every worker (the module docstring says why)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _prepare(kokoro, folder, cache, workers):
    data, report = folder
    S = Settings(mode="ci", cache_dir=cache.parent)
    config = dataclasses.replace(CONFIG, workers=workers)
    with _one_thread() if workers == 1 else contextlib.nullcontext():
        return prepare_dataset(kokoro, data, S, config, report=report, cache_dir=cache, progress=False, verbose=False)


@pytest.fixture(scope="module")
def serial(kokoro_offline, folder, tmp_path_factory):
    return _prepare(kokoro_offline, folder, tmp_path_factory.mktemp("serial") / "ds", workers=1)


@pytest.mark.slow
def test_the_pool_writes_what_the_serial_loop_writes(kokoro_offline, folder, serial, tmp_path, monkeypatch):
    monkeypatch.setattr(POOL, "MIN_POOL_CLIPS", 2)  # four clips to compute: pooled all the same
    pooled = _prepare(kokoro_offline, folder, tmp_path / "ds", workers=2)
    assert serial.stats["workers"] == 1 and "one worker" in serial.stats["serial_because"]
    assert pooled.stats["workers"] == 2 and pooled.stats["serial_because"] is None, pooled.stats
    assert [f["id"] for f in pooled.failed] == [BROKEN] and pooled.stats["computed"] == 4
    assert differences(serial, pooled) == []
    row = pooled.manifest["items"][0]  # one value changed in one item file: seen
    path = pooled.cache_dir / row["file"]
    tags = {k: v for k, v in ItemTargets.read_meta(path).items() if k in ("settings_hash", "source")}
    tg = ItemTargets.load(path)
    tg.f0[-1] = np.nextafter(tg.f0[-1], np.float32(1e9))
    tg.save(path, extra=tags)
    assert differences(serial, pooled) == [f"{row['id']}: f0 differs"]


class _InterruptAtFirstClip:
    """A progress bar that raises KeyboardInterrupt when the first clip completes (Ctrl-C, at that moment)."""

    def __init__(self, *args, **kwargs):
        pass

    def update(self, n=1):
        raise KeyboardInterrupt

    def close(self):
        pass


@pytest.mark.slow
def test_an_interrupted_pool_keeps_finished_items_and_the_next_run_resumes(
    kokoro_offline, folder, serial, tmp_path, monkeypatch
):
    monkeypatch.setattr(POOL, "MIN_POOL_CLIPS", 2)
    monkeypatch.setattr(POOL, "tqdm", _InterruptAtFirstClip)
    cache = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        _prepare(kokoro_offline, folder, cache, workers=2)
    kept = sorted(p.name for p in (cache / "items").glob("*.npz"))
    assert kept and not (cache / "manifest.json").exists()  # the clips in hand were written, the run stopped
    # (typically 2 or 3 of the 4: a worker can pick up one more clip in the instant before the stop reaches it)
    monkeypatch.undo()
    resumed = _prepare(kokoro_offline, folder, cache, workers=1)
    assert resumed.stats["cached"] == len(kept) and resumed.stats["computed"] == 4 - len(kept)
    assert differences(serial, resumed) == []


# ------------------------------------------------------------------------------------------- fast checks


def test_serially_and_why_when_the_model_cannot_be_reloaded_or_the_work_is_small(kokoro_small_random):
    job = lambda kokoro, clip: clip * 2  # a lambda does not pickle: it could never reach a worker anyway
    n = POOL.MIN_POOL_CLIPS + 8  # enough clips for the pool: the model is why not
    out, run = POOL.map_clips(job, kokoro_small_random, list(range(n)), workers=4, progress=False)
    assert out == [2 * i for i in range(n)] and run.workers == 1
    assert "'random' cannot be reloaded" in run.serial_because
    assert "one worker" in POOL.why_serial(kokoro_small_random, n, 1, job)
    assert "the pool starts from" in POOL.why_serial(kokoro_small_random, POOL.MIN_POOL_CLIPS - 1, 4, job)

    class Named:  # a model that says it is reloadable, with a job that cannot be sent
        source = "offline-int8"

    assert "cannot be sent" in POOL.why_serial(Named(), n, 4, job)
    assert POOL.why_serial(Named(), n, 4, abs) is None  # a picklable job: the pool would run
    assert POOL.map_clips(job, Named(), [], workers=4, progress=False) == ([], POOL.PoolRun(0, "nothing to compute"))


def test_the_weights_fingerprint_sees_one_changed_weight(fresh_small_model):
    import torch

    a, b = fresh_small_model(), fresh_small_model()
    assert POOL.weights_fingerprint(a) == POOL.weights_fingerprint(b)
    with torch.no_grad():
        next(b.parameters()).view(-1)[0] += 1e-6
    assert POOL.weights_fingerprint(a) != POOL.weights_fingerprint(b)
