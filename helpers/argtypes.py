"""Argument types for the workbook's commands: a bad value is refused while the command line is parsed.

Every command (`python -m helpers.train`, `helpers.train.recipe`, `helpers.train.fit_voice`,
`helpers.train.voice_loo`, `helpers.compare.distillation`) builds its parser from these, so a value out of range
stops the command before any model is loaded or any file is written, and argparse prints which argument was
wrong, the value given and what it accepts:

    python -m helpers.train: error: argument --batch-size: must be a whole number >= 1, got '0'

    whole(lo=1)              int, lo <= n (hi when given)
    real(lo=0, lo_open=True) float, finite, within [lo, hi] (open ends where asked)
    minutes_list             "5,15,30,60": one or more positive numbers
    name_list                "af_heart,am_michael": one or more non-empty names
    new_file_path            a path that is not a folder and whose folder can be made

`RANGES` holds TrainConfig's ranges too (helpers.train.config checks them on construction, so a notebook gets the
same refusals as the command line).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def whole(lo: int | None = None, hi: int | None = None):
    """An argparse type: an int within [lo, hi] (None: unbounded)."""

    def parse(text: str) -> int:
        try:
            n = int(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be a whole number{_bounds(lo, hi)}, got {text!r}") from None
        if (lo is not None and n < lo) or (hi is not None and n > hi):
            raise argparse.ArgumentTypeError(f"must be a whole number{_bounds(lo, hi)}, got {text!r}")
        return n

    parse.__name__ = "whole number"
    return parse


def real(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False):
    """An argparse type: a finite float within lo..hi (open ends where asked; None: unbounded)."""

    def parse(text: str) -> float:
        want = f"must be a finite number{_bounds(lo, hi, lo_open, hi_open)}, got {text!r}"
        try:
            x = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(want) from None
        if not math.isfinite(x) or not in_range(x, lo, hi, lo_open, hi_open):
            raise argparse.ArgumentTypeError(want)
        return x

    parse.__name__ = "number"
    return parse


def in_range(x, lo=None, hi=None, lo_open=False, hi_open=False) -> bool:
    if lo is not None and (x <= lo if lo_open else x < lo):
        return False
    return not (hi is not None and (x >= hi if hi_open else x > hi))


def _bounds(lo, hi, lo_open=False, hi_open=False) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    return (" " + " and ".join(parts)) if parts else ""


def minutes_list(text: str) -> tuple[float, ...]:
    """ "5,15,30,60" -> (5.0, 15.0, 30.0, 60.0): one or more positive numbers of minutes."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    want = f"must be one or more positive numbers of minutes separated by commas (e.g. 5,15,30), got {text!r}"
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(want) from None
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(want)
    return values


def name_list(text: str) -> list[str]:
    """ "af_heart, am_michael" -> ["af_heart", "am_michael"]: one or more names, none empty."""
    names = [p.strip() for p in str(text).split(",")]
    if not any(names) or not all(names):
        raise argparse.ArgumentTypeError(
            f"must be one or more names separated by commas, none empty (e.g. af_heart,am_michael), got {text!r}"
        )
    return names


def new_file_path(text: str) -> Path:
    """A file to write: not an existing folder, and not under a file (its folder can be made)."""
    path = Path(text).expanduser()
    if not str(text).strip():
        raise argparse.ArgumentTypeError("must be a file path, got ''")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder: give a file name inside it (e.g. {path / 'out.json'})")
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {path}: {parent} is a file, not a folder")
    return path


# TrainConfig field -> (lo, hi, lo_open): what a training run accepts (None: unbounded on that side)
RANGES: dict[str, tuple] = {
    "steps": (1, None, False),  # 0 steps would save an untrained adapter
    "batch_size": (1, None, False),
    "lr": (0, None, True),
    "weight_decay": (0, None, False),
    "warmup_steps": (0, None, False),
    "min_lr_ratio": (0, 1, False),
    "grad_clip": (0, None, True),  # a negative clip norm flips the gradients
    "log_every": (1, None, False),
    "eval_every": (1, None, False),
    "eval_items": (1, None, False),
    "ckpt_every": (1, None, False),
    "sample_every": (1, None, False),
    "keep_last": (1, None, False),
    "max_bad_steps": (1, None, False),
    "prosody_items": (0, None, False),
    "layer_fraction": (0, 1, False),
    "layer_steps": (0, None, False),
    "chain_fraction": (0, 1, False),
    "mel_items": (0, None, False),
    "mel_crop_frames": (1, None, False),
    **{w: (0, None, False) for w in ("w_feature", "w_dur_l1", "w_dur_bce", "w_dur_cum", "w_f0", "w_energy",
                                     "w_mel", "w_layer")},  # fmt: skip
}


def type_for(name: str, kind: type):
    """The argparse type of TrainConfig field `name` (its RANGES entry), `kind` int or float."""
    lo, hi, lo_open = RANGES.get(name, (None, None, False))
    return whole(lo, hi) if kind is int else real(lo, hi, lo_open=lo_open)


def check_ranges(obj, ranges: dict[str, tuple] = RANGES) -> None:
    """ValueError naming the first field of `obj` outside its range."""
    for name, (lo, hi, lo_open) in ranges.items():
        x = getattr(obj, name, None)
        if x is None or isinstance(x, bool):
            continue
        if not (math.isfinite(x) and in_range(x, lo, hi, lo_open)):
            raise ValueError(f"{type(obj).__name__}.{name} must be{_bounds(lo, hi, lo_open)}, got {x!r}")
