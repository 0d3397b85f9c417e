"""Settings: the mode, and the one `dataset` setting that notebooks 04, 05 and 06 share."""

from pathlib import Path

import pytest

from helpers.settings import REPO_ROOT, NoRecordings, Settings


def test_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("KOKORO_MAMBA_MODE", "ci")
    S = Settings.from_env()
    assert S.is_ci and S.device == "cpu" and S.runs_dir.name == "ci"
    monkeypatch.setenv("KOKORO_MAMBA_MODE", "nightly")
    with pytest.raises(ValueError, match="ci' or 'full"):
        Settings.from_env()


def test_dataset_names_resolve_to_folders(tmp_path):
    S = Settings(mode="full", cache_dir=tmp_path / "cache")
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


def test_full_mode_without_recordings_stops_and_says_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.delenv("KOKORO_MAMBA_DATASET", raising=False)
    S = Settings.from_env(mode="full", cache_dir=tmp_path / "cache")  # nothing named, no LJSpeech cached
    with pytest.raises(NoRecordings) as err:
        S.dataset_dir()
    msg = str(err.value)
    assert "starter clips" in msg and "GET_LJSPEECH = True" in msg and "KOKORO_MAMBA_DATASET=" in msg
    assert "apt-get install -y festival festvox-us-slt-hts" in msg and str(tmp_path / "cache" / "rehearsal-slt") in msg
    assert isinstance(err.value, FileNotFoundError)  # callers that handle a missing folder handle this too
    monkeypatch.setenv("KOKORO_MAMBA_DATASET", "starter")  # named explicitly: full mode runs the starter clips
    assert Settings.from_env(mode="full", cache_dir=tmp_path / "cache").dataset_dir() == REPO_ROOT / "data" / "librivox"
    assert Settings.from_env(mode="ci", cache_dir=tmp_path / "cache", dataset="auto").dataset_dir().name == "librivox"


def test_stage1_budget_is_a_setting(monkeypatch):
    monkeypatch.delenv("KOKORO_MAMBA_STAGE1_MINUTES", raising=False)
    assert Settings.from_env(mode="full").stage1_minutes == 60.0, "the hour the shipped adapters were made in"
    assert Settings.from_env(mode="ci").stage1_minutes < 1.0
    monkeypatch.setenv("KOKORO_MAMBA_STAGE1_MINUTES", "12.5")
    assert Settings.from_env(mode="ci").stage1_minutes == 12.5
    with pytest.raises(ValueError, match="stage1_minutes"):
        Settings(stage1_minutes=0)
