"""Run by tests/train/test_distributed.py under torchrun (CPU processes, gloo): train the small random Kokoro
for a few steps with the Trainer's DistributedDataParallel, resume the same run from its halfway checkpoint
in a new Trainer, and save each rank's first gradients and trainable weights for the test to compare.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/train/ddp_worker.py OUT STEPS
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from helpers.kokoro.loading import load_kokoro
from helpers.train import distributed as D
from helpers.train.config import TrainConfig
from helpers.train.items import TrainItem
from helpers.train.runlog import rank_and_world
from helpers.train.trainer import Trainer
from helpers.transplant.surgery import SurgeryConfig, replace_duration_encoder

# no dropout: the ranks and the single-process reference then draw no random masks, so they can agree exactly
SURGERY = SurgeryConfig(n_layers=1, d_state=4, expand=1, dropout=0.0)
BATCH = 1  # per process: rank r takes batches r, r + 2, ...; the reference takes two at once
N_ITEMS = 9  # odd: 9 batches do not divide over 2 ranks; the ninth is dropped, so each rank's epoch is 4 steps


def items(n: int = N_ITEMS, length: int = 10, seed: int = 0) -> list[TrainItem]:
    """Sentences of equal length: then a mean over a concatenated batch equals the mean of the batch means."""
    g = np.random.default_rng(seed)
    return [
        TrainItem(
            id=f"s{i}",
            token_ids=np.concatenate([[0], g.integers(1, 178, length - 2), [0]]),
            style=(g.standard_normal(256) * 0.1).astype(np.float32),
        )
        for i in range(n)
    ]


def build(out: Path, steps: int) -> Trainer:
    model = load_kokoro("random", size="small", seed=0, verbose=False).model
    report = replace_duration_encoder(model, SURGERY)
    cfg = TrainConfig(
        steps=steps,
        batch_size=BATCH,
        lr=1e-3,
        warmup_steps=1,
        log_every=1,
        eval_every=10_000,
        ckpt_every=max(1, steps // 2),
        sample_every=10_000,
        prosody_items=2 * BATCH,  # every item of a batch gets F0/energy terms, also in the concatenated batch
        out_dir=str(out),
    )
    return Trainer(model, report.removed, items(), cfg)


def trainable(tr: Trainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in tr.model.named_parameters() if p.requires_grad}


def record_first_gradients(tr: Trainer) -> dict[str, torch.Tensor]:
    """Filled, at the first optimizer step, with the gradients the optimizer sees (averaged, clipped)."""
    seen: dict[str, torch.Tensor] = {}

    def record(optimizer, args, kwargs):
        if not seen:
            seen.update({n: p.grad.clone() for n, p in tr.model.named_parameters() if p.requires_grad})

    tr.opt.register_step_pre_hook(record)
    return seen


def main(out: Path, steps: int) -> None:
    D.setup("cpu")
    rank, world = rank_and_world()
    tr = build(out / "run", steps)
    grads = record_first_gradients(tr)
    tr.fit(progress=False)
    seconds = [r["sec_per_step"] for r in tr.history]
    result = {"weights": trainable(tr), "first_gradients": grads, "sec_per_step": seconds, "world": world,
              "position": torch.tensor([tr.epoch, tr.batch_in_epoch])}  # fmt: skip
    torch.save(result, out / f"rank{rank}.pt")
    # an interruption after steps // 2 leaves that checkpoint behind: a new Trainer resumes from it
    if rank == 0:
        halfway = out / "run" / "checkpoints" / f"step-{steps // 2:07d}.pt"
        (out / "resumed" / "checkpoints").mkdir(parents=True)
        for f in (halfway, halfway.with_name(halfway.name + ".sha256")):
            shutil.copy(f, out / "resumed" / "checkpoints" / f.name)
    D.barrier()
    again = build(out / "resumed", steps)
    assert again.resume() and again.step == steps // 2
    again.fit(progress=False)
    torch.save({"weights": trainable(again)}, out / f"resumed_rank{rank}.pt")
    D.teardown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
