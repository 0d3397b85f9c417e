"""The recordings of notebooks 04, 05 and 06: one setting, one preparation, one split.

`Settings.dataset` names the data ("starter", "ljspeech" or a folder; helpers.settings). Notebook 04 prepares it,
notebook 05 fine-tunes on its training split (stage 2), notebook 06 evaluates on its held-out split. All three
call `prepare_recordings(kokoro, S)`, so they read the same cache with the same recipe and the same split:

    data = prepare_recordings(kokoro, S)            # helpers.data.prepare.PreparedDataset
    data.train, data.val                            # at least 10% (and 20 clips, where the data allows) held out
"""

from __future__ import annotations

import dataclasses

from helpers.data.prepare import PrepareConfig, PreparedDataset, prepare_dataset
from helpers.settings import Settings

FULL_LIMIT = 1500  # full mode: the first 1,500 kept clips (DTW and pYIN cost seconds per clip on a CPU)


def recordings_config(settings: Settings, **overrides) -> PrepareConfig:
    """The workbook's preparation recipe for `settings.mode`; `overrides` replace PrepareConfig fields."""
    base = PrepareConfig(val_fraction=0.1, min_val=20, limit=None if settings.is_ci else FULL_LIMIT)
    return dataclasses.replace(base, **overrides)


def prepare_recordings(kokoro, settings: Settings, config: PrepareConfig | None = None, **kw) -> PreparedDataset:
    """`prepare_dataset` on the folder `settings.dataset` names, with `recordings_config` unless `config` is given;
    `kw` go to prepare_dataset (report, progress, verbose, style, cache_dir)."""
    folder = settings.dataset_dir()
    if not folder.exists():
        raise FileNotFoundError(
            f"dataset {settings.dataset!r}: no folder at {folder}. Set KOKORO_MAMBA_DATASET (or Settings.dataset) to "
            "'starter', 'ljspeech' (notebook 04 downloads it on Colab) or a folder of (wav, txt) pairs / LJSpeech-shaped"
        )
    return prepare_dataset(kokoro, folder, settings, config or recordings_config(settings), **kw)
