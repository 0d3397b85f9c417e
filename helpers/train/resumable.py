"""Which checkpoint a run may resume from: only one written by the same run.

Resume continues a run exactly where it stopped (optimizer, schedule, data position). That is only meaningful
when what decides the run is unchanged, so every checkpoint carries the run's identity and `check` refuses
a checkpoint whose identity differs in what matters:

    stage              distill vs finetune: different losses and targets
    design             the surgery config (layerwise / single, widths): the weights would not even fit
    data               a fingerprint of the training items (ids and token ids) and the batch order
                       (batch size, seed), and the number of processes that shard it
    LR schedule        lr, warm-up, cosine floor and the total steps (the cosine decays to the last step)

Anything else (loss weights, logging cadence, ...) may change between sessions. To start something new from
old weights, use another out_dir and `--init-adapter` (an adapter, not a checkpoint).
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path

from helpers.train.items import TrainItem
from helpers.train.runlog import rank_and_world
from helpers.transplant.surgery import encoder_design

SCHEDULE = ("lr", "warmup_steps", "min_lr_ratio", "steps")
DATA_ORDER = ("batch_size", "seed")


class ResumeRefused(ValueError):
    """The newest checkpoint belongs to a different run (stage, design, data or schedule)."""


def fingerprint(items: list[TrainItem]) -> str:
    """A short hash of the training items' ids and token ids, in order."""
    h = hashlib.sha256()
    for it in items:
        h.update(it.id.encode())
        h.update(bytes(str(list(map(int, it.token_ids))), "ascii"))
    return h.hexdigest()[:16]


def identity(trainer) -> dict:
    """What a checkpoint records about the Trainer's run, to be compared on resume."""
    c = dataclasses.asdict(trainer.cfg)
    return {
        "stage": c["stage"],
        "design": encoder_design(trainer.model.predictor.text_encoder),
        "data": {
            "items": fingerprint(trainer.items),
            **{k: c[k] for k in DATA_ORDER},
            "processes": rank_and_world()[1],
        },
        "schedule": {k: c[k] for k in SCHEDULE},
    }


def differences(saved: dict, now: dict) -> list[str]:
    """'what: checkpoint -> now' for every part of the identity that differs."""
    out = []
    for part in ("stage", "design", "data", "schedule"):
        a, b = saved.get(part), now[part]
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{part} {k}: {a.get(k)!r} -> {b.get(k)!r}" for k in b if a.get(k) != b.get(k)]
        else:
            out.append(f"{part}: {a!r} -> {b!r}")
    return out


def check(state: dict, now: dict, path: Path) -> None:
    """Raise ResumeRefused when checkpoint `state` (at `path`) was written by another run than `now`."""
    saved = state.get("run")
    if saved is None:
        warnings.warn(f"{path.name} predates run identities: resuming without checking it", stacklevel=3)
        return
    diff = differences(saved, now)
    if diff:
        raise ResumeRefused(
            f"will not resume from {path}: it belongs to another run ({'; '.join(diff)}; checkpoint -> now). "
            f"Resume only continues the same run. Restore those settings, or start a new run in another "
            f"out_dir (--out), optionally from old weights with --init-adapter."
        )
