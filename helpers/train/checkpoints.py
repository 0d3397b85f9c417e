"""Training checkpoints that survive crashes: atomic writes, checksums, keep-last-K and best.

A checkpoint is one file `step-0000120.pt` holding everything needed to continue exactly:
the trainable module's state, the optimizer and scheduler, the step, the data order position, every RNG
state (Python, NumPy, torch CPU and CUDA) and the settings. Beside it, `step-0000120.pt.sha256`.

Writes are atomic (temporary file, fsync, then rename), so a crash mid-write never damages the latest good
checkpoint. Reading walks from the newest checkpoint back and takes the first one whose checksum and
unpickling both succeed, saying which ones it skipped and why.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch

PATTERN = re.compile(r"^step-(\d{7})\.pt$")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class CheckpointManager:
    """Save/restore training state in `directory`, keeping the last `keep_last` and the best one."""

    def __init__(self, directory: str | Path, keep_last: int = 3):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keep_last = keep_last

    def path(self, step: int) -> Path:
        return self.dir / f"step-{step:07d}.pt"

    def checkpoints(self) -> list[Path]:
        """Checkpoint files, newest step first."""
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := PATTERN.match(p.name))]
        return [p for _, p in sorted(found, reverse=True)]

    def save(self, state: dict, step: int, is_best: bool = False) -> Path:
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        path = self.path(step)
        _atomic_write(path, data)
        _atomic_write(path.with_name(path.name + ".sha256"), hashlib.sha256(data).hexdigest().encode())
        if is_best:
            _atomic_write(self.dir / "best.pt", data)
        self._prune()
        return path

    def _prune(self) -> None:
        for old in self.checkpoints()[self.keep_last :]:
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".sha256").unlink(missing_ok=True)

    def _read(self, path: Path) -> dict:
        data = path.read_bytes()
        digest = path.with_name(path.name + ".sha256")
        if digest.exists() and hashlib.sha256(data).hexdigest() != digest.read_text().strip():
            raise ValueError("checksum mismatch (file damaged or partially written)")
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)

    def load_latest(self) -> tuple[dict, Path] | None:
        """The newest readable checkpoint, or None when there is none. Damaged ones are skipped, loudly."""
        for path in self.checkpoints():
            try:
                return self._read(path), path
            except Exception as e:
                warnings.warn(f"skipping checkpoint {path.name}: {type(e).__name__}: {e}", stacklevel=2)
        return None
