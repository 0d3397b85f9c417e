"""Training checkpoints that survive crashes: atomic writes, checksums, safe loading, keep-last-K and best.

A checkpoint is one file `step-0000120.pt` holding everything needed to continue exactly:
the trainable module's state, the optimizer and scheduler, the step, the data order position, every RNG
state (Python, NumPy, torch CPU and CUDA) and the settings. Beside it, `step-0000120.pt.sha256`.
Everything in it is a tensor or a plain Python value, so it is read with `torch.load(weights_only=True)`:
a file that carries pickled code is refused without running it. (Checkpoints from before this format hold
NumPy's RNG state as an array; those are read weights-only too, with plain NumPy arrays allowed.)

Writes are atomic (a temporary file named for this process, fsync, then rename: helpers.outputs.atomic_write),
so a crash mid-write never damages the latest good checkpoint, and a failed write (a full disk) leaves no
partial file behind. Reading walks from the newest checkpoint back and takes the first one that passes its checksum
and loads. Nothing is ever deleted except by the keep-last-K rotation, which never removes the checkpoint
just written:

* a damaged newer checkpoint is renamed `step-....pt.corrupt` (out of the rotation, kept for inspection),
  with a warning saying why;
* when checkpoints exist but none can be read, `load_latest` raises `CheckpointError` naming each file
  and its problem, and moves nothing: the caller decides (`set_aside()` to start over);
* a checkpoint written at a lower step than ones already on disk means a new run in the same folder:
  the higher ones (another run's future) are moved into `set-aside-<time>/` first, so they can
  neither be resumed by mistake nor prune the new run's checkpoints.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import random
import re
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from helpers.outputs import atomic_write, sweep_partial

PATTERN = re.compile(r"^step-(\d{7})\.pt$")
_np_core = getattr(np, "_core", None) or np.core
# plain uint32 arrays (NumPy's RNG state), for checkpoints written before the tensors-only format
NUMPY_ARRAYS = [_np_core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


class CheckpointError(RuntimeError):
    """Checkpoints exist but none can be read; the message names each file and why."""


def rng_state() -> dict:
    """Every RNG's state as tensors and plain values (readable with weights_only=True)."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py, nps = state["python"], state["numpy"]
    if isinstance(py, dict):
        py = (py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"])
    if isinstance(nps, dict):
        keys = nps["keys"].numpy().astype(np.uint32)
        nps = (nps["kind"], keys, nps["pos"], nps["has_gauss"], nps["cached_gaussian"])
    random.setstate(py)  # tuples: checkpoints written before the weights-only format
    np.random.set_state(nps)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write(path, data)  # a temporary name of its own; a failed write (full disk) leaves no partial file


def _free_name(path: Path) -> Path:
    """`path`, or `path.1`, `path.2`, ...: the first name not taken (nothing is ever overwritten)."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def _why(e: Exception) -> str:
    """One line on why a checkpoint could not be read (torch's weights-only refusal, shortened)."""
    text = str(e)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if isinstance(e, pickle.UnpicklingError) and found:
        return f"UnpicklingError: it holds a Python object ({found.group(1)}), not only tensors: refused, nothing run"
    first = text.strip().splitlines()[0][:200] if text.strip() else "empty or truncated file"
    return f"{type(e).__name__}: {first}"


class CheckpointManager:
    """Save/restore training state in `directory`, keeping the last `keep_last` and the best one."""

    def __init__(self, directory: str | Path, keep_last: int = 3):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keep_last = max(1, keep_last)
        removed = sweep_partial(self.dir)  # partial writes of a run that ended (a full disk): they hold space
        if removed:
            print(f"removed {len(removed)} partial checkpoint file(s) left by an interrupted write in {self.dir}")

    def path(self, step: int) -> Path:
        return self.dir / f"step-{step:07d}.pt"

    def checkpoints(self) -> list[Path]:
        """Checkpoint files in the rotation, highest step first."""
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := PATTERN.match(p.name))]
        return [p for _, p in sorted(found, reverse=True)]

    def save(self, state: dict, step: int, is_best: bool = False) -> Path:
        ahead = [p for p in self.checkpoints() if int(PATTERN.match(p.name).group(1)) > step]
        if ahead:
            folder = self.set_aside(ahead)
            warnings.warn(
                f"step {step} is behind checkpoints already in {self.dir} (another run?): moved "
                f"{[p.name for p in ahead]} into {folder.name}/ so they are neither resumed nor rotated",
                stacklevel=2,
            )
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        path = self.path(step)
        _atomic_write(path, data)
        _atomic_write(path.with_name(path.name + ".sha256"), hashlib.sha256(data).hexdigest().encode())
        if is_best:
            _atomic_write(self.dir / "best.pt", data)
        self._prune(newest=path)
        return path

    def _prune(self, newest: Path) -> None:
        others = [p for p in self.checkpoints() if p != newest]
        for old in others[self.keep_last - 1 :]:
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".sha256").unlink(missing_ok=True)

    def set_aside(self, paths: list[Path] | None = None) -> Path:
        """Move checkpoints (default: all in the rotation) and their checksums into `set-aside-<time>/`."""
        paths = self.checkpoints() if paths is None else paths
        folder = _free_name(self.dir / time.strftime("set-aside-%Y%m%d-%H%M%S"))
        folder.mkdir()
        for p in paths:
            for f in (p, p.with_name(p.name + ".sha256")):
                if f.exists():
                    f.rename(folder / f.name)
        return folder

    def start_over(self) -> bool:
        """Set every checkpoint aside (a new run begins at step 0); returns False, as a resume that found none."""
        if self.checkpoints():
            print(f"starting over: the previous checkpoints are in {self.set_aside()}")
        return False

    def _move_corrupt(self, path: Path) -> Path:
        target = _free_name(path.with_name(path.name + ".corrupt"))
        path.rename(target)
        digest = path.with_name(path.name + ".sha256")
        if digest.exists():
            digest.rename(_free_name(target.with_name(target.name + ".sha256")))
        return target

    def _read(self, path: Path) -> dict:
        data = path.read_bytes()
        digest = path.with_name(path.name + ".sha256")
        if digest.exists() and hashlib.sha256(data).hexdigest() != digest.read_text().strip():
            raise ValueError("checksum mismatch (file damaged or partially written)")
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # written before RNG states were tensors: NumPy arrays inside
            with torch.serialization.safe_globals(NUMPY_ARRAYS):  # arrays only; still no code
                state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError("not a training checkpoint (no 'step')")
        return state

    def load_latest(self) -> tuple[dict, Path] | None:
        """The newest readable checkpoint, or None when there is none.

        Damaged ones newer than it are moved aside as `*.corrupt`, with a warning. When checkpoints exist
        and none is readable, CheckpointError names them all (and nothing is moved).
        """
        failures: list[tuple[Path, str]] = []
        for path in self.checkpoints():
            try:
                state = self._read(path)
            except Exception as e:
                failures.append((path, _why(e)))
                continue
            for bad, why in failures:
                moved = self._move_corrupt(bad)
                warnings.warn(f"skipping checkpoint {bad.name} ({why}); moved aside as {moved.name}", stacklevel=2)
            return state, path
        if failures:
            listing = "\n".join(f"  {p.name}: {why}" for p, why in failures)
            raise CheckpointError(
                f"none of the {len(failures)} checkpoints in {self.dir} can be read:\n{listing}\n"
                "They are left as they are. To start over, resume with fresh=True (they are moved into a "
                "set-aside-<time>/ folder, not deleted); to keep them, repair or move them yourself."
            )
        return None
