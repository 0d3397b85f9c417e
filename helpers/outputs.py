"""Where runs write, and how they never lose what the user already has.

* `refuse_existing(paths, what)`: a command that would replace files stops and names them, unless it was run
  with `--overwrite` (a FileExistsError whose message says which flag to add or which `--out` to change);
* `shipped_results(path)`: True inside the repository's `results/` (the shipped adapters and their evidence),
  where no command writes by default;
* `OutputLock(folder)`: one writing process per output folder. A second process gets `OutputBusy` naming the
  folder and the holder (pid, host, start time); a lock left by a process that has died is taken over with a
  warning. The same process may take it again (a notebook re-running a cell);
* `atomic_write(path, data)`: a temporary file with a name of its own (pid and a random part, so two processes
  never share one), fsync, then rename; when the write fails (a full disk) the partial file is removed and the
  error says where and what to do;
* `dataset_cache_name(root)`: the cache folder name of a dataset folder, its name plus a hash of its full path,
  so two folders called `wavs` never share (and overwrite) one cache.
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import json
import os
import socket
import time
import uuid
import warnings
from pathlib import Path

from helpers.settings import REPO_ROOT

SHIPPED_RESULTS = REPO_ROOT / "results"
LOCK_NAME = ".kokoro-mamba.lock"


def refuse_existing(paths, what: str = "output", hint: str = "pass --overwrite to replace them") -> None:
    """FileExistsError naming every path of `paths` that exists (nothing is touched)."""
    found = [Path(p) for p in paths if Path(p).exists()]
    if found:
        names = ", ".join(str(p) for p in found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise FileExistsError(f"{what} already exists: {names}. Nothing was changed; {hint}")


def shipped_results(path: str | Path) -> bool:
    """True when `path` lies inside the repository's shipped results/ folder."""
    return Path(path).expanduser().resolve().is_relative_to(SHIPPED_RESULTS.resolve())


def dataset_cache_name(root: str | Path) -> str:
    """<folder name>-<8 hex of its resolved path>: one cache folder per dataset folder."""
    root = Path(root).expanduser()
    return f"{root.name}-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]}"


def unique_tmp(path: Path) -> Path:
    """A temporary name beside `path` that no other process or call uses."""
    return path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def sweep_partial(folder: str | Path) -> list[Path]:
    """Remove the temporary files in `folder` that a process which has ended left behind (an interrupted
    or failed write: never a finished file); returns what was removed."""
    removed = []
    for tmp in Path(folder).glob("*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2].split("-")[0] if tmp.name.count(".") >= 2 else ""
        if pid.isdigit() and (int(pid) == os.getpid() or _alive(int(pid))):
            continue  # a write in progress
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically (a unique temporary file, fsync, rename); a failed write leaves nothing."""
    path = Path(path)
    tmp = unique_tmp(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        full = " (the disk is full)" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        raise OSError(
            e.errno, f"could not write {path}{full}: {e.strerror or e}. The partial file was removed and the "
            "previous version, if any, is untouched; free some space or choose another folder, then run again"
        ) from e
    return path


class OutputBusy(RuntimeError):
    """Another live process is writing into the same output folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


_HELD: set[Path] = set()  # lock files this process holds


@atexit.register
def _release_all() -> None:
    for path in list(_HELD):
        OutputLock(path.parent).release(force=True)


class OutputLock:
    """`folder/.kokoro-mamba.lock` held by this process (see the module docstring)."""

    def __init__(self, folder: str | Path, purpose: str = "a run"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.purpose = purpose
        self.held = False

    def acquire(self) -> OutputLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.path in _HELD:  # this process holds it already (a notebook cell run again)
            self.held = True
            return self
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
              "purpose": self.purpose}  # fmt: skip
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                same_host = holder.get("host") == me["host"]
                if same_host and isinstance(holder.get("pid"), int) and not _alive(holder["pid"]):
                    warnings.warn(f"{self.path}: left by process {holder['pid']}, which has ended; taken over",
                                  stacklevel=2)  # fmt: skip
                    self.path.unlink(missing_ok=True)
                    continue
                raise OutputBusy(
                    f"{self.folder} is in use by {holder.get('purpose', 'another run')} (pid {holder.get('pid', '?')} "
                    f"on {holder.get('host', '?')}, since {holder.get('since', '?')}): two runs in one folder would "
                    f"overwrite each other's checkpoints and adapter. Wait for it to finish, or choose another "
                    f"--out. If no such process exists, delete {self.path}."
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            _HELD.add(self.path)
            self.held = True
            return self
        raise OutputBusy(f"{self.folder}: could not take the lock {self.path}")

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def release(self, force: bool = False) -> None:
        """Remove the lock file (when this process wrote it)."""
        if not (self.held or force):
            return
        self.held = False
        _HELD.discard(self.path)
        if self._holder().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
