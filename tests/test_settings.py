"""Settings: the mode, and the one `dataset` setting that notebooks 04, 05 and 06 share."""

from pathlib import Path

import pytest

from helpers.settings import REPO_ROOT, Settings


def test_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("KOKORO_MAMBA_MODE", "ci")
    S = Settings.from_env()
    assert S.is_ci and S.device == "cpu" and S.runs_dir.name == "ci"
    monkeypatch.setenv("KOKORO_MAMBA_MODE", "nightly")
    with pytest.raises(ValueError, match="ci' or 'full"):
        Settings.from_env()


def test_dataset_names_resolve_to_folders(tmp_path):
    S = Settings(mode="full", cache_dir=tmp_path / "cache")
    assert S.dataset_dir() == REPO_ROOT / "data" / "librivox"  # auto, full mode, no LJSpeech in the cache
    lj = tmp_path / "cache" / "ljspeech" / "LJSpeech-1.1"
    lj.mkdir(parents=True)
    (lj / "metadata.csv").write_text("LJ001-0001|Printing.|Printing.\n")
    assert S.dataset_dir() == lj  # auto, full mode: LJSpeech once notebook 04 has unpacked it
    assert Settings(mode="ci", cache_dir=tmp_path / "cache").dataset_dir() == REPO_ROOT / "data" / "librivox"
    assert Settings(mode="ci", dataset="ljspeech", cache_dir=tmp_path / "cache").dataset_dir() == lj
    assert Settings(dataset=str(tmp_path / "mine")).dataset_dir() == tmp_path / "mine"
    assert Settings(dataset="starter").dataset_dir() == REPO_ROOT / "data" / "librivox"


def test_dataset_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KOKORO_MAMBA_DATASET", str(tmp_path))
    assert Settings.from_env(mode="ci").dataset_dir() == Path(tmp_path)  # explicit beats the CI default
    assert Settings.from_env(mode="ci", dataset="starter").dataset_dir().name == "librivox"
