"""One function over many clips, in a process pool whose workers each hold their own Kokoro (or serially).

`helpers.data.prepare.prepare_dataset` computes the targets of every clip not yet cached (reference synthesis,
pause-aware DTW, pYIN, the pocketsphinx check: about 1.5 s a clip on one CPU core) through `map_clips`:

    results, run = map_clips(job, kokoro, clips, workers=None, desc="targets ...")
    results[i] = job(kokoro, clips[i])        # in the clips' order, whichever path ran
    run.workers, run.serial_because            # processes used (1: serial), and why not the pool

The pool: `workers` processes (None = the machine's cores), started with "spawn" (forking a process whose torch
threads are running is unsafe), each with one torch thread (and one BLAS thread) and its own Kokoro, loaded once
in the worker's initializer from the parent's weights source (`kokoro.source`: "hub" or "offline-int8",
helpers.kokoro.loading; the same cache folder, `kokoro.cache_dir`) on the parent's device. A worker checks that its weights are bit for bit the parent's
(`weights_fingerprint`), so a model changed after loading is never replaced by a fresh one unnoticed. `job` is
pickled once per worker, each clip once; a progress bar (tqdm) counts the clips as they complete. Workers
ignore Ctrl-C: an interrupt stops the parent, which cancels (or tells the workers to skip) every clip not started
and waits while each worker finishes (and `job` writes) the clip it holds.

The serial loop runs instead, and `run.serial_because` says why (prepare_dataset prints it), when one worker is
asked for, when fewer than `MIN_POOL_CLIPS` clips need computing (starting workers costs seconds each), when
the weights cannot be reloaded by name ("random" weights, a bare or custom model), when `job` cannot be sent to
a worker, or when the pool fails (a worker's Kokoro differs or does not load, a worker dies): then the clips
the pool did not finish run serially. `job` must catch a clip's own errors and return them (one bad clip must
not stop a run of hours); the results are the same objects either way, in the same order.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import pickle
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from tqdm.auto import tqdm

RELOADABLE = ("hub", "offline-int8")  # weights sources a worker can load by name (helpers.kokoro.loading)
MIN_POOL_CLIPS = 32  # fewer clips to compute: serially (measured on 2 cores: 12 clips 0.78x, 40 clips 1.08x)


@dataclass
class PoolRun:
    """How `map_clips` ran: `workers` processes (1 = serially, 0 = nothing to do) and why not the pool."""

    workers: int = 0
    serial_because: str | None = None


class PoolUnavailable(RuntimeError):
    """The pool could not finish; `done` holds the results it had (index -> result)."""

    def __init__(self, why: str, done: dict):
        super().__init__(why)
        self.done = done


def machine_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system says, else os.cpu_count())."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def weights_fingerprint(model, skip=()) -> str:
    """A sha256 over every tensor of the model's state dict (names, dtypes, shapes and bytes), in name order,
    but the names in `skip`: a LoadedKokoro's `absent_keys`, which no weights file sets (ALBERT's unused pooler
    keeps a random init that differs from load to load)."""
    import torch

    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if name in skip:
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()[:16]


def why_serial(kokoro, n_clips: int, workers: int, job) -> str | None:
    """Why these clips cannot go through the pool (None: they can)."""
    if n_clips == 0:
        return "nothing to compute"
    if workers <= 1:
        return "one worker asked for (PrepareConfig.workers)"
    if n_clips < MIN_POOL_CLIPS:
        return f"{n_clips} clip{'s' * (n_clips != 1)} to compute, the pool starts from {MIN_POOL_CLIPS}"
    source = getattr(kokoro, "source", None)
    if source not in RELOADABLE:
        return f"weights source {source!r} cannot be reloaded in a worker (only {', '.join(RELOADABLE)})"
    try:
        pickle.dumps(job)
    except Exception as e:  # a style or config that does not pickle stays in this process
        return f"the job cannot be sent to a worker ({type(e).__name__}: {e})"
    return None


def map_clips(
    job, kokoro, clips: list, *, workers: int | None = None, progress: bool = True, desc: str = "clips"
) -> tuple[list, PoolRun]:
    """[job(kokoro, clip) for clip in clips], through the pool where it can (module docstring), and how it ran."""
    wanted = machine_cores() if workers is None else int(workers)
    run = PoolRun(serial_because=why_serial(kokoro, len(clips), wanted, job))
    done: dict[int, object] = {}
    if run.serial_because is None:
        run.workers = min(wanted, len(clips))
        try:
            done = _pool(job, kokoro, clips, run.workers, progress, desc)
        except PoolUnavailable as e:
            done, run.serial_because = e.done, f"{e}; the {len(clips) - len(e.done)} clips left ran serially"
    rest = [i for i in range(len(clips)) if i not in done]
    if rest and run.workers == 0:
        run.workers = 1
    for i in tqdm(rest, desc=desc, disable=not progress or not rest):
        done[i] = job(kokoro, clips[i])
    return [done[i] for i in range(len(clips))], run


# --------------------------------------------------------------------------------------------- the pool

_WORKER: dict = {}  # in a worker process: its Kokoro and job, or why it cannot serve


def _init_worker(source: str, device: str, cache_dir, fingerprint: str, skip, job, stop) -> None:
    """Runs once in each worker: one thread, no Ctrl-C, its own Kokoro checked against the parent's weights."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles an interrupt; the clip in hand finishes
    _WORKER["stop"] = stop
    import torch
    from threadpoolctl import threadpool_limits  # comes with librosa (scikit-learn)

    torch.set_num_threads(1)
    threadpool_limits(1)  # numpy's BLAS too: the pool has one process per core
    try:
        from helpers.kokoro.loading import load_kokoro

        kokoro = load_kokoro(source, device=device, cache_dir=cache_dir, verbose=False)
        mine = weights_fingerprint(kokoro.model, skip)
        if mine != fingerprint:
            raise RuntimeError(f"its {source} weights differ from the parent's ({mine} vs {fingerprint}): "
                               "the parent's model was changed after loading")  # fmt: skip
        _WORKER.update(kokoro=kokoro, job=job)
    except Exception as e:
        _WORKER["unfit"] = f"a worker's Kokoro is not the parent's ({type(e).__name__}: {e})"


def _serve(i: int, clip):
    if _WORKER["stop"].is_set():  # the parent stopped (an interrupt): clips already queued are skipped
        return i, None
    if "unfit" in _WORKER:
        return i, _Unfit(_WORKER["unfit"])
    return i, _WORKER["job"](_WORKER["kokoro"], clip)


@dataclass
class _Unfit:
    why: str


def _pool(job, kokoro, clips, workers: int, progress: bool, desc: str) -> dict:
    """index -> result for every clip, computed by `workers` spawned processes; PoolUnavailable when it fails."""
    spawn = mp.get_context("spawn")  # never fork: this process runs torch threads
    stop = spawn.Event()
    cache_dir = getattr(kokoro, "cache_dir", None)  # where the parent's weights were read (None: the default)
    skip = frozenset(getattr(kokoro, "absent_keys", None) or ())  # at their init value: no file sets them
    init = (kokoro.source, str(kokoro.device), cache_dir, weights_fingerprint(kokoro.model, skip), skip, job, stop)
    ex = ProcessPoolExecutor(workers, mp_context=spawn, initializer=_init_worker, initargs=init)
    done: dict[int, object] = {}
    bar = tqdm(total=len(clips), desc=f"{desc} ({workers} workers)", disable=not progress)
    try:
        futures = [ex.submit(_serve, i, clip) for i, clip in enumerate(clips)]
        for fut in as_completed(futures):
            i, out = fut.result()
            if isinstance(out, _Unfit):
                raise PoolUnavailable(out.why, done)
            done[i] = out
            bar.update()
    except BrokenProcessPool as e:  # a worker died (out of memory, killed)
        raise PoolUnavailable(f"the pool broke ({type(e).__name__}: {e})", done) from e
    finally:
        bar.close()
        stop.set()  # clips already queued to a worker are skipped ...
        ex.shutdown(wait=True, cancel_futures=True)  # ... the others cancelled; each worker finishes its clip
    return done
