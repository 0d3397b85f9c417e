"""Several processes, one model: PyTorch's DistributedDataParallel (DDP) under torchrun.

    torchrun --nproc_per_node=N -m helpers.train --stage finetune ...    # N GPUs on one machine (stage 2)

torchrun starts N copies of the command and gives each RANK, LOCAL_RANK and WORLD_SIZE. Per process:

    setup(device)     joins the process group: NCCL on CUDA (one GPU per process, cuda:LOCAL_RANK), gloo on CPU
    Trainer           wraps the student (the trainable MambaDurationEncoder) with `wrap`: DDP copies rank 0's
                      weights to every rank, and during backward all-reduces the gradients, so after
                      backward every rank holds the *average* gradient of the N batches of this step and the
                      N optimizers take the same step. Trainable parameters outside the student (only with
                      train_whole_predictor) are averaged by `average_gradients`.
    batches           sharded by rank (`shard`): rank r takes batches r, r + N, r + 2N, ... of an epoch whose
                      last (number of batches mod N) batches are dropped, so every rank has the same number
                      of batches and starts its next epoch at the same step: one checkpoint position (epoch,
                      batch) is every rank's position, and resume is exact
    rank 0            writes checkpoints, logs, samples and the adapter (helpers.train.runlog.rank_and_world)

One step with N processes and batch size B is therefore one step on N x B items: the same update as a
single process accumulating the N batches' gradients (tests/train/test_distributed.py checks it with two
CPU processes). With one process (python, a notebook) none of this is active: no process group, no wrapper.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from helpers.train.runlog import rank_and_world


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str | torch.device) -> torch.device:
    """Join the process group when launched by torchrun; return this process's device.

    CUDA: backend NCCL, device cuda:LOCAL_RANK (one GPU per process). CPU: backend gloo. Single process: `device`.
    """
    device = torch.device(device)
    if not launched_by_torchrun():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (no-op in a single process)."""
    if rank_and_world()[1] > 1:
        dist.barrier()


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` in DistributedDataParallel when several processes train, else `module` itself.

    Call after freezing: DDP averages the gradients of the parameters that require them at wrap time.
    The wrapper shares the module's parameters, so `module.state_dict()` keeps its usual keys.
    """
    if rank_and_world()[1] == 1:
        return module
    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def average_gradients(model: nn.Module, wrapped: nn.Module) -> None:
    """Average the gradients of `model`'s trainable parameters outside `wrapped` (DDP averaged those inside)."""
    _, world = rank_and_world()
    if world == 1:
        return
    inside = {id(p) for p in wrapped.parameters()}
    for p in model.parameters():
        if p.requires_grad and id(p) not in inside:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad /= world


def shard(batches: list[list[int]], rank: int, world: int) -> list[list[int]]:
    """Rank `rank`'s batches of an epoch: every world-th one from `rank`, after dropping the tail that does not
    divide evenly, so all ranks take the same number of batches. ValueError when there are fewer batches than
    processes (some rank would get none)."""
    if world == 1:
        return batches
    if len(batches) < world:
        raise ValueError(
            f"{len(batches)} batches per epoch cannot feed {world} processes: use more items or a smaller batch_size"
        )
    return batches[: len(batches) - len(batches) % world][rank::world]


def all_finite(loss: torch.Tensor) -> bool:
    """True when the loss is finite on every rank: a step is skipped everywhere or nowhere (else DDP hangs)."""
    finite = torch.isfinite(loss.detach()).to(torch.int32).reshape(1)
    if rank_and_world()[1] > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def gather(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank (a one-element list in a single process)."""
    _, world = rank_and_world()
    if world == 1:
        return [obj]
    out: list = [None] * world
    dist.all_gather_object(out, obj)
    return out
