"""The workbook's settings, in one dataclass.

Every notebook starts with `S = Settings.from_env()`. One field, `mode`, switches between

* ``"ci"``   - CPU, tiny step counts, the starter data: what nbval runs in CI (minutes);
* ``"full"`` - the GPU when there is one, real data, sensible training lengths.

The mode comes from the environment variable ``KOKORO_MAMBA_MODE`` (``ci``/``full``); when it is unset,
``CI=true`` (set by CI systems) means ``ci`` and anything else means ``full``. Notebooks never branch on
anything but ``S.mode`` and the numbers derived here, so the same code runs in both modes.

Each mode has its own run folder, ``runs/ci/`` and ``runs/full/`` (checkpoints, adapters, reports), so a CI run
never resumes or overwrites a full one. ``KOKORO_MAMBA_RUNS`` moves the ``runs/`` root and
``KOKORO_MAMBA_CACHE`` the cache (the Colab set-up points runs at Google Drive, so they survive a disconnect;
the cache, with the raw LJSpeech, stays on the runtime's local disk).

One more field, ``dataset``, names the recorded speech that notebooks 04 (prepare), 05 (stage 2) and 06 (held-out
evaluation) all use, so the three agree: ``"starter"`` (the five LibriVox clips in ``data/librivox``),
``"ljspeech"`` (LJSpeech 1.1 under the cache, as notebook 04 downloads it), or the path of any folder of
(wav, txt) pairs or LJSpeech-shaped (``metadata.csv`` + ``wavs/``). ``"auto"`` (the default) takes
``KOKORO_MAMBA_DATASET`` when set; otherwise CI mode keeps the starter clips, and full mode takes LJSpeech when it
is in the cache. ``S.dataset_dir()`` resolves the name to a folder. Full mode with nothing named and no LJSpeech
stops there (`NoRecordings`, saying how to get data) instead of quietly training on the five starter clips;
``"starter"`` named explicitly still runs them in full mode.

``stage1_minutes`` is stage 1's budget: the wall-clock minutes of training that ``helpers.train.recipe`` fits its
steps to (notebook 05 and ``python -m helpers.train --stage distill``). ``KOKORO_MAMBA_STAGE1_MINUTES`` sets it;
otherwise full mode takes the hour the shipped adapters were made in and CI mode ``CI_STAGE1_MINUTES``.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
FULL_STAGE1_MINUTES = 60.0  # the shipped adapters' budget (results/distill-cpu)
CI_STAGE1_MINUTES = 0.1  # CI: a handful of recipe steps on the CPU (the calibration steps, then a few more)


def _default_cache_dir() -> Path:
    env = os.environ.get("KOKORO_MAMBA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kokoro-mamba"


def runs_root() -> Path:
    """Where run folders live: $KOKORO_MAMBA_RUNS, else runs/ in the repository."""
    env = os.environ.get("KOKORO_MAMBA_RUNS")
    return Path(env).expanduser() if env else REPO_ROOT / "runs"  # '~/runs' is the home folder's, not ./~


class NoRecordings(FileNotFoundError):
    """Full mode was asked for recordings, but none are named and LJSpeech is not in the cache."""


def no_recordings_message(ljspeech: Path, cache_dir: Path) -> str:
    return (
        "Full mode has no recordings to train on: KOKORO_MAMBA_DATASET (Settings.dataset) names none and LJSpeech "
        f"is not in the cache ({ljspeech}). Full mode does not quietly fine-tune on the five starter clips. "
        "Get data one of these ways, then run again:\n"
        "  * LJSpeech 1.1 (2.6 GB, public domain): notebook 04 with GET_LJSPEECH = True (Colab), or "
        "helpers.data.readers.download_ljspeech(S.cache_dir / 'ljspeech');\n"
        "  * your own recordings: KOKORO_MAMBA_DATASET=/path/to/folder (metadata.csv + wavs/, or name.wav + "
        "name.txt pairs);\n"
        "  * offline, a speaker with known timing: sudo apt-get install -y festival festvox-us-slt-hts; "
        f"python scripts/make_rehearsal_speaker.py; KOKORO_MAMBA_DATASET={Path(cache_dir) / 'rehearsal-slt'};\n"
        "  * or, knowingly, KOKORO_MAMBA_DATASET=starter (five clips: a demonstration, not training data)."
    )


@dataclass
class Settings:
    mode: str = "full"  # "ci" or "full"
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")
    weights: str = "auto"  # "auto" | "hub" | "offline-int8" | "random"
    voice: str = "auto"  # "auto" = af_heart; for a recorded dataset, the English pack nearest its F0
    seed: int = 0
    cache_dir: Path = field(default_factory=_default_cache_dir)
    data_dir: Path = REPO_ROOT / "data"
    runs_dir: Path | None = None  # None: runs_root() / mode, one folder per mode
    dataset: str = "auto"  # "auto" | "starter" | "ljspeech" | a folder path: the recordings of notebooks 04-06
    stage1_minutes: float | None = None  # None: $KOKORO_MAMBA_STAGE1_MINUTES, else per mode (module docstring)

    def __post_init__(self) -> None:
        if self.runs_dir is None:
            self.runs_dir = runs_root() / self.mode
        if self.stage1_minutes is None:
            env = os.environ.get("KOKORO_MAMBA_STAGE1_MINUTES")
            self.stage1_minutes = float(env) if env else (CI_STAGE1_MINUTES if self.is_ci else FULL_STAGE1_MINUTES)
        if not 0 < self.stage1_minutes < float("inf"):
            raise ValueError(f"stage1_minutes (KOKORO_MAMBA_STAGE1_MINUTES) must be > 0 minutes, got {self.stage1_minutes}")

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        mode = overrides.pop("mode", None) or os.environ.get("KOKORO_MAMBA_MODE")
        if mode is None:
            mode = "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "full"
        if mode not in ("ci", "full"):
            raise ValueError(f"KOKORO_MAMBA_MODE must be 'ci' or 'full', got {mode!r}")
        s = cls(mode=mode, **overrides)
        if s.mode == "ci":
            s.device = "cpu"
        return s

    @property
    def is_ci(self) -> bool:
        return self.mode == "ci"

    def dataset_dir(self) -> Path:
        """The folder `dataset` names (module docstring); "auto" resolved as described there."""
        name = self.dataset
        if name == "auto":
            name = os.environ.get("KOKORO_MAMBA_DATASET") or ("starter" if self.is_ci else "auto")
        ljspeech = Path(self.cache_dir) / "ljspeech" / "LJSpeech-1.1"  # where notebook 04 unpacks it
        if name == "auto":
            if (ljspeech / "metadata.csv").is_file():
                return ljspeech
            raise NoRecordings(no_recordings_message(ljspeech, Path(self.cache_dir)))
        if name == "starter":
            return self.data_dir / "librivox"
        if name == "ljspeech":
            return ljspeech
        return Path(name).expanduser()

    def seed_everything(self, seed: int | None = None) -> None:
        """Seed Python, NumPy and torch (CPU and CUDA) for repeatable runs."""
        seed = self.seed if seed is None else seed
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def describe(self) -> dict:
        return {k: str(v) for k, v in asdict(self).items()}
