"""The recordings of notebooks 04, 05 and 06: one setting, one preparation, one split.

`Settings.dataset` names the data ("starter", "ljspeech" or a folder; helpers.settings). Notebook 04 prepares it,
notebook 05 fine-tunes on its training split and makes every choice on its dev split (stage 2), notebook 06
gives the verdict on its test split. All three call `prepare_recordings(kokoro, S)`, so they read the same cache
with the same recipe and the same split (recorded in `data.split_file`, helpers.data.splits):

    data = prepare_recordings(kokoro, S)            # helpers.data.prepare.PreparedDataset
    data.train, data.dev, data.test                 # ~67 / 13 / 20% (dev and test at least 20 clips where data allows)
"""

from __future__ import annotations

import dataclasses

from helpers.data.prepare import PrepareConfig, prepare_dataset
from helpers.data.prepared import PreparedDataset
from helpers.data.splits import SplitRule
from helpers.settings import Settings

FULL_LIMIT = 1500  # full mode: the first 1,500 kept clips (DTW and pYIN cost seconds per clip on a CPU)


def recordings_config(settings: Settings, **overrides) -> PrepareConfig:
    """The workbook's preparation recipe for `settings.mode`; `overrides` replace PrepareConfig fields."""
    base = PrepareConfig(split=SplitRule(), limit=None if settings.is_ci else FULL_LIMIT)
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
