"""Install mamba-ssm's fused CUDA kernels (with causal-conv1d) on a GPU machine, from prebuilt wheels.

    python scripts/install_mamba.py             # the prebuilt wheels that match this torch / CUDA / Python
    python scripts/install_mamba.py --dry-run   # only say which wheels those are
    python scripts/install_mamba.py --build     # no matching wheel: compile from source (tens of minutes)

Both projects attach prebuilt wheels to their GitHub releases, one per CUDA major version, torch major.minor,
C++ ABI and Python version. Their setup.py guesses that wheel's URL and, when it does not exist, silently
falls back to compiling CUDA code for tens of minutes (the old `MAMBA_FORCE_BUILD=TRUE pip install ...` always
compiled). This script computes the same names as the setup.py of the pinned versions (mamba-ssm 2.3.2.post1,
causal-conv1d 1.7.0), installs those wheels, and compiles only when asked:

    MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE \\
        pip install --no-build-isolation causal-conv1d==1.7.0 mamba-ssm==2.3.2.post1

Nothing here is needed for the workbook to run: without the kernels its pure-PyTorch Mamba is used. Afterwards
the workbook reports which backend is active (helpers.mamba.describe_backend; this script prints it too).
An `undefined symbol` error on import means the wheel does not fit the installed torch: uninstall both and
use --build.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# package -> (module name in the wheel file name, pinned version, release download URL pattern)
PACKAGES = {
    "causal-conv1d": (
        "causal_conv1d",
        "1.7.0",
        "https://github.com/Dao-AILab/causal-conv1d/releases/download/v{version}/{wheel}",
    ),
    "mamba-ssm": (
        "mamba_ssm",
        "2.3.2.post1",
        "https://github.com/state-spaces/mamba/releases/download/v{version}/{wheel}",
    ),
}


class NoPrebuiltWheel(RuntimeError):
    """This machine's torch/CUDA/platform has no prebuilt wheel to look for."""


@dataclass(frozen=True)
class TorchBuild:
    torch: str  # torch.__version__, e.g. "2.8.0+cu126"
    cuda: str | None  # torch.version.cuda, e.g. "12.6"; None for a CPU build
    cxx11_abi: bool  # torch._C._GLIBCXX_USE_CXX11_ABI
    python: str  # "cp311"
    platform: str  # "linux_x86_64"


def current_build() -> TorchBuild:
    import torch

    machine = {"arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())
    return TorchBuild(
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cxx11_abi=bool(torch._C._GLIBCXX_USE_CXX11_ABI),
        python=f"cp{sys.version_info.major}{sys.version_info.minor}",
        platform=f"linux_{machine}" if sys.platform.startswith("linux") else sys.platform,
    )


def wheel_urls(build: TorchBuild) -> dict[str, str]:
    """{package: URL of its prebuilt wheel for `build`}, named as the packages' own setup.py names them."""
    if build.cuda is None:
        raise NoPrebuiltWheel(f"torch {build.torch} is a CPU build: the fused kernels need CUDA")
    if not build.platform.startswith("linux_"):
        raise NoPrebuiltWheel(f"prebuilt wheels exist for Linux only, not {build.platform}")
    cuda_major = build.cuda.split(".")[0]
    if cuda_major not in ("11", "12", "13"):  # the releases build for 11.8, 12.3 and 13.0 (minor-compatible)
        raise NoPrebuiltWheel(f"no prebuilt wheels for CUDA {build.cuda}")
    torch_mm = ".".join(build.torch.split("+")[0].split(".")[:2])
    abi = str(build.cxx11_abi).upper()
    out = {}
    for package, (module, version, pattern) in PACKAGES.items():
        wheel = f"{module}-{version}+cu{cuda_major}torch{torch_mm}cxx11abi{abi}-{build.python}-{build.python}-{build.platform}.whl"
        out[package] = pattern.format(version=version, wheel=wheel)
    return out


def source_build_command() -> tuple[dict[str, str], list[str]]:
    """(environment, command) of the documented fallback: compile both against the installed torch."""
    env = {"MAMBA_FORCE_BUILD": "TRUE", "CAUSAL_CONV1D_FORCE_BUILD": "TRUE"}
    pins = [f"{p}=={v}" for p, (_, v, _) in PACKAGES.items()]
    return env, [sys.executable, "-m", "pip", "install", "--no-build-isolation", *pins]


def describe_backend() -> str:
    """What the workbook will use, asked in a fresh process (the kernels load only there)."""
    code = "from helpers.mamba import describe_backend; print(describe_backend('cuda'))"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[-1] if lines else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the wheels, install nothing")
    parser.add_argument("--build", action="store_true", help="compile from source when no wheel matches")
    args = parser.parse_args(argv)
    build = current_build()
    print(
        f"torch {build.torch}, CUDA {build.cuda}, C++11 ABI {build.cxx11_abi}, {build.python}, {build.platform}"
    )
    env, fallback = source_build_command()
    fallback_text = " ".join([*(f"{k}={v}" for k, v in env.items()), "pip", *fallback[3:]])
    try:
        urls = wheel_urls(build)
    except NoPrebuiltWheel as e:
        print(f"no prebuilt mamba-ssm for this machine: {e}")
        return 1
    for package, url in urls.items():
        print(f"{package}: {url}")
    if args.dry_run:
        print(f"fallback (source build, tens of minutes): {fallback_text}")
        return 0
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *urls.values()])
    if done.returncode != 0:
        print("the prebuilt wheels above do not exist or do not install for this torch/CUDA/Python.")
        if not args.build:
            print(f"Source build (tens of minutes), or rerun with --build:\n  {fallback_text}")
            return 1
        print(f"building from source: {fallback_text}")
        if subprocess.run(fallback, env=dict(os.environ, **env)).returncode != 0:
            return 1
    print("Mamba backend:", describe_backend())
    return 0


if __name__ == "__main__":
    sys.exit(main())
