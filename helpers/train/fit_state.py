"""Long voice fits resume: the state of `helpers.train.fit_voice` after each epoch, in one file, and back.

A fit on 200 clips runs for hours on a CPU; a session limit or a disconnect must not lose it. After every epoch
`FitResume.save` rewrites one file; the next call of the same fit finds it (`FitResume.restore`) and continues
with the next epoch, exactly as if it had never stopped: same offset, same Adam moments, same clip order,
same random crops.

The file is a .safetensors (never a pickle):

    tensors   pack              the best pack so far [510, 1, 256]: the file is itself a voice, readable by
                                helpers.kokoro.voices.read_pack_file, should the fit never finish
              offset            the current offset (128,: the timbre half) and best_offset (128,)
              optimizer.<i>.<k> Adam's per-parameter tensors (moments, step)
              rng.torch[.cuda]  torch's RNG state(s): the crops and decoder noise of the next epoch
    metadata  "state"           JSON: the epoch completed, every epoch's row, the best row, epochs since the
                                best, Adam's hyper-parameters, NumPy's generator state (the clip order)
              "identity"        JSON: which fit wrote it (`fit_identity`)

A state written by another fit (other clips, start pack, weights or settings) is refused by name
(`FitStateRefused`): resuming it would silently mix two fits. Only `epochs` may differ, so a finished or
interrupted fit can be extended. Writes are atomic (temporary file, fsync, rename): a crash mid-write leaves
the previous epoch's state intact.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

FREE = ("epochs",)  # settings a resumed fit may change


class FitStateRefused(ValueError):
    """The state file belongs to another fit (different clips, start pack, weights or settings)."""


def _digest(values) -> str:
    h = hashlib.sha256()
    for v in values:
        h.update(str(v).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def fit_identity(cfg, train_ids: list[str], val_ids: list[str], start: torch.Tensor, weights: str) -> dict:
    """What makes two fits the same fit: the settings (except FREE), the clips, the start pack, the weights."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in FREE}
    pack = hashlib.sha256(start.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]
    return {"settings": settings, "train": _digest(train_ids), "val": _digest(val_ids), "start": pack,
            "weights": str(weights)}  # fmt: skip


def _differences(saved: dict, now: dict) -> list[str]:
    out = []
    for part in sorted(set(saved) | set(now)):
        a, b = saved.get(part), now.get(part)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{part}.{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        else:
            out.append(f"{part}: {a!r} -> {b!r}")
    return out


def _split_optimizer(sd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer state_dict -> (tensors named optimizer.<param>.<key>, everything else as JSON-able)."""
    tensors, plain = {}, {}
    for i, per_param in sd["state"].items():
        for k, v in per_param.items():
            if torch.is_tensor(v):
                tensors[f"optimizer.{i}.{k}"] = v.detach().cpu().contiguous().clone()
            else:
                plain[f"{i}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "plain": plain}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, v in tensors.items():
        if name.startswith("optimizer."):
            i, k = name.removeprefix("optimizer.").split(".", 1)
            state.setdefault(int(i), {})[k] = v
    for name, v in meta["plain"].items():
        i, k = name.split(".", 1)
        state.setdefault(int(i), {})[k] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def _write_atomic(tensors: dict[str, torch.Tensor], metadata: dict[str, str], path: Path) -> None:
    from safetensors.torch import save

    blob = save(tensors, metadata=metadata)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class FitResume:
    """Save and restore one fit's state at `path` (see the module docstring). `identity`: fit_identity(...)."""

    def __init__(self, path: str | Path, identity: dict, patience: int | None = None):
        self.path, self.identity, self.patience = Path(path), identity, patience

    def save(self, epoch, offset, opt, order: np.random.Generator, best: dict, best_offset, since_best: int,
             rows: list[dict], best_pack: torch.Tensor) -> Path:  # fmt: skip
        """The state after `epoch` (rows: one per epoch so far, epoch 0 the start pack; best_pack: the pack the
        best offset gives, [510, 1, 256])."""
        opt_tensors, opt_meta = _split_optimizer(opt.state_dict())
        tensors = {
            "pack": best_pack.detach().float().cpu().contiguous(),  # [510, 1, 256]
            "offset": offset.detach().cpu().contiguous().clone(),  # (128,): the timbre half
            "best_offset": best_offset.detach().cpu().contiguous().clone(),  # (128,)
            "rng.torch": torch.get_rng_state(),
            **opt_tensors,
        }
        if offset.device.type == "cuda":
            tensors["rng.torch.cuda"] = torch.cuda.get_rng_state(offset.device)
        state = {"epoch": int(epoch), "rows": rows, "best": best, "since_best": int(since_best),
                 "optimizer": opt_meta, "order": order.bit_generator.state}  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {"state": json.dumps(state), "identity": json.dumps(self.identity, sort_keys=True)}
        _write_atomic(tensors, metadata, self.path)
        return self.path

    def restore(self, offset, opt, order: np.random.Generator):
        """None when there is no state file; else load it into `offset`, `opt`, `order` and torch's RNG, and
        return (first epoch to run, best row, best offset, epochs since the best, rows). The first epoch is past
        the end when the saved fit had already stopped early. FitStateRefused when another fit wrote it."""
        from safetensors import safe_open

        if not self.path.is_file():
            return None
        try:
            with safe_open(str(self.path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            saved_identity, state = json.loads(meta["identity"]), json.loads(meta["state"])
        except Exception as e:
            raise FitStateRefused(
                f"{self.path} is not a readable fit state ({type(e).__name__}: {e}); move it away to start over"
            ) from e
        diff = _differences(saved_identity, self.identity)
        if diff:
            raise FitStateRefused(
                f"will not resume from {self.path}: another fit wrote it ({'; '.join(diff)}; file -> now). "
                f"Restore those settings, or move the file away to start this fit over."
            )
        with torch.no_grad():
            offset.copy_(tensors["offset"].to(offset.device))
        opt.load_state_dict(_join_optimizer(tensors, state["optimizer"]))
        order.bit_generator.state = state["order"]
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.torch.cuda" in tensors and offset.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.torch.cuda"], offset.device)
        first = state["epoch"] + 1
        if self.patience is not None and state["since_best"] >= self.patience:
            first = sys.maxsize  # it had stopped early: nothing left to run
        best_offset = tensors["best_offset"].to(offset.device)
        print(f"fit_voice: resumed from {self.path} after epoch {state['epoch']}")
        return first, state["best"], best_offset, state["since_best"], state["rows"]
