"""Multi-process training on PyTorch's engine: two CPU processes under torchrun (gloo) average their gradients
through DistributedDataParallel, stay identical, match one process on the concatenated batches, write from
rank 0 only, and resume exactly - with an item count that does not divide over the ranks (9 items, 2 ranks:
the tail batch is dropped, so both ranks turn the epoch at the same step), and a checkpoint taken after the
first epoch boundary, where uneven shards would have put the ranks at different positions."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")
STEPS = 10  # 4 steps per epoch and rank: the halfway checkpoint (step 5) lies in the second epoch


def _worker_module():
    spec = importlib.util.spec_from_file_location("ddp_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _torchrun(out: Path, nproc: int) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    done = subprocess.run(
        [*cmd, str(WORKER), str(out), str(STEPS)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    _torchrun(out, 2)
    return out


def test_both_ranks_hold_identical_weights(two_ranks):
    r0, r1 = (torch.load(two_ranks / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["weights"].keys() == r1["weights"].keys()
    for name, w in r0["weights"].items():
        assert torch.equal(w, r1["weights"][name]), f"{name} differs between the ranks"


def _relative(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> float:
    return float((a - b).norm() / scale.norm())


def test_two_ranks_equal_one_process_on_the_concatenated_batches(two_ranks, tmp_path):
    """Step k: rank 0 takes batch 2k, rank 1 batch 2k+1; the reference takes both as one batch (equal lengths,
    so its loss is the mean of the two batch losses, and its gradient the average DDP computes)."""
    w = _worker_module()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker process: several threads on a shared 2-core machine crawl
    try:
        ref = w.build(tmp_path / "single", STEPS)
        initial, grads = w.trainable(ref), w.record_first_gradients(ref)
        sharded = ref._batches  # one process sees every batch
        ref._batches = lambda epoch: [a + b for a, b in zip(sharded(epoch)[0::2], sharded(epoch)[1::2])]
        ref.fit(progress=False)
    finally:
        torch.set_num_threads(threads)
    ddp = torch.load(two_ranks / "rank0.pt", weights_only=True)
    trained = w.trainable(ref)
    for name, expected in trained.items():
        # the averaged gradient itself: equal to float tolerance (different batch shapes round differently)
        assert _relative(ddp["first_gradients"][name], grads[name], grads[name]) < 1e-3, name
        # after STEPS AdamW steps, which normalise each gradient element and so magnify rounding in the
        # near-zero ones: within 5% of the distance travelled (measured ~1%; unaveraged ranks give ~100%)
        assert _relative(ddp["weights"][name], expected, expected - initial[name]) < 0.05, name


def test_only_rank_zero_writes_and_resume_under_torchrun_is_exact(two_ranks):
    with open(two_ranks / "run" / "metrics.csv") as f:
        steps = [int(row["step"]) for row in csv.DictReader(f)]
    assert steps == list(range(1, STEPS + 1)), "one log row per step: rank 1 wrote nothing"
    written = sorted(p.name for p in (two_ranks / "run" / "checkpoints").glob("step-*.pt"))
    assert written == [f"step-{s:07d}.pt" for s in (STEPS // 2, STEPS)]
    full = torch.load(two_ranks / "rank0.pt", weights_only=True)["weights"]
    for rank in (0, 1):
        resumed = torch.load(two_ranks / f"resumed_rank{rank}.pt", weights_only=True)["weights"]
        for name, w in full.items():
            assert torch.equal(resumed[name], w), f"rank {rank}: {name} differs after resume"


def test_uneven_items_give_every_rank_the_same_batches_per_epoch(two_ranks):
    positions = [torch.load(two_ranks / f"rank{r}.pt", weights_only=True)["position"] for r in (0, 1)]
    assert positions[0].tolist() == positions[1].tolist() == [2, 2], "10 steps of 4 per epoch: epoch 2, batch 2"


def test_shard_drops_the_tail_and_refuses_too_few_batches():
    from helpers.train.distributed import shard

    batches = [[i] for i in range(9)]
    shards = [shard(batches, r, 2) for r in (0, 1)]
    assert shards == [[[0], [2], [4], [6]], [[1], [3], [5], [7]]]
    assert shard(batches, 0, 1) == batches and [len(shard(batches, r, 4)) for r in range(4)] == [2] * 4
    with pytest.raises(ValueError, match="3 batches per epoch cannot feed 4 processes"):
        shard(batches[:3], 0, 4)
