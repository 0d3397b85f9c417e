"""Install mamba-ssm's fused CUDA kernels (with causal-conv1d) on a GPU machine, from prebuilt wheels.

    python scripts/install_mamba.py             # the prebuilt wheels that match this torch / CUDA / Python
    python scripts/install_mamba.py --dry-run   # only say which wheels those are, and whether they exist
    python scripts/install_mamba.py --build     # no matching wheel: compile from source (see SOURCE_BUILD_TIME)

The pins, and why:

* mamba-ssm 2.2.6.post3 declares only torch, triton, ninja, einops, transformers, packaging and setuptools, all
  of which a CUDA runtime with torch (Colab's) already has or takes without touching torch. 2.3.x declares
  triton >= 3.5, tilelang, apache-tvm-ffi and quack-kernels, which fight the runtime's torch, imports Mamba3 at
  package import, and its prebuilt wheels exist for torch 2.6-2.10 only. The workbook uses the Mamba-1 path
  (`mamba_ssm.ops.selective_scan_interface`: the selective-scan kernel, triton's layer norm, einops).
* causal-conv1d 1.5.3.post1: released the same day as mamba-ssm 2.2.6.post3, with the same wheel naming and
  CUDA mapping, and the `causal_conv1d.cpp_functions` module that mamba-ssm 2.2.6's Mamba-1 path imports.

Both projects attach prebuilt wheels to their GitHub releases, named (as the pinned versions' setup.py names
them) `{module}-{version}+cu{CUDA major}torch{major.minor}cxx11abi{TRUE|FALSE}-cp3XY-cp3XY-linux_{arch}.whl`;
their setup.py guesses that URL and, when it does not exist, silently compiles CUDA code instead. This
script computes the names, checks that both wheels exist, and installs them with the project's
constraints.txt plus a pin of the installed torch (so nothing can replace the runtime's torch). When a wheel
is missing it says so loudly and prints the source build, with its expected time, instead of starting it:

    MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE \\
        pip install --no-build-isolation causal-conv1d==1.5.3.post1 mamba-ssm==2.2.6.post3

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
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"
# nvcc compiles the selective-scan kernels (and causal-conv1d's) for several GPU architectures: community reports
# for Colab-sized machines (2 CPU cores) range from about 20 minutes to over an hour; not measured here
SOURCE_BUILD_TIME = "expect 20-60+ minutes on a 2-core runtime (nvcc, several GPU architectures)"
# package -> (module name in the wheel file name, pinned version, release download URL pattern)
PACKAGES = {
    "causal-conv1d": (
        "causal_conv1d",
        "1.5.3.post1",
        "https://github.com/Dao-AILab/causal-conv1d/releases/download/v{version}/{wheel}",
    ),
    "mamba-ssm": (
        "mamba_ssm",
        "2.2.6.post3",
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
    if build.platform != "linux_x86_64":  # the pinned setup.py files name linux_x86_64 only
        raise NoPrebuiltWheel(f"the pinned releases publish linux_x86_64 wheels only, not {build.platform}")
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


def pip_install_args(urls: list[str], build: TorchBuild, constraints_dir: Path) -> list[str]:
    """`pip install` arguments for the wheels: constraints.txt, and the installed torch pinned beside it."""
    pin = constraints_dir / "torch-pin.txt"
    pin.write_text(f"torch=={build.torch}\n")
    args = ["-c", str(pin)]
    if CONSTRAINTS.is_file():
        args = ["-c", str(CONSTRAINTS), *args]
    return [sys.executable, "-m", "pip", "install", "-q", *args, *urls]


def wheel_exists(url: str, timeout: float = 20.0) -> bool | None:
    """True/False when the release answers for `url`; None when it cannot be asked (no network)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as r:
            return 200 <= r.status < 400
    except urllib.error.HTTPError as e:
        return False if e.code == 404 else None
    except (urllib.error.URLError, OSError):
        return None


def no_wheel_banner(build: TorchBuild, why: str) -> str:
    """The loud message when no prebuilt wheel fits: what is missing, and the source build with its time."""
    env, cmd = source_build_command()
    fallback = " ".join([*(f"{k}={v}" for k, v in env.items()), "pip", *cmd[3:]])
    bar = "!" * 100
    return "\n".join([
        bar,
        f"NO PREBUILT mamba-ssm / causal-conv1d WHEEL for torch {build.torch}, CUDA {build.cuda}, "
        f"C++11 ABI {build.cxx11_abi}, {build.python}, {build.platform}:",
        f"  {why}",
        "The workbook still runs, on its pure-PyTorch Mamba (slower on a GPU, same results).",
        f"To compile the kernels against this torch instead ({SOURCE_BUILD_TIME}):",
        f"  {fallback}",
        "  or: python scripts/install_mamba.py --build",
        bar,
    ])  # fmt: skip


def describe_backend() -> str:
    """What the workbook will use, asked in a fresh process (the kernels load only there)."""
    code = "from helpers.mamba import describe_backend; print(describe_backend('cuda'))"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[-1] if lines else "?"


def _build_from_source() -> int:
    env, cmd = source_build_command()
    print(f"building from source ({SOURCE_BUILD_TIME}): {' '.join(cmd[3:])}", flush=True)
    return subprocess.run(cmd, env=dict(os.environ, **env)).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="print the wheels, install nothing")
    parser.add_argument("--build", action="store_true", help="compile from source when no wheel matches")
    args = parser.parse_args(argv)
    build = current_build()
    print(
        f"torch {build.torch}, CUDA {build.cuda}, C++11 ABI {build.cxx11_abi}, {build.python}, {build.platform}"
    )
    try:
        urls = wheel_urls(build)
    except NoPrebuiltWheel as e:
        print(no_wheel_banner(build, str(e)))
        return 1
    missing = []
    for package, url in urls.items():
        found = wheel_exists(url)
        said = {True: "exists", False: "NOT PUBLISHED", None: "could not check"}[found]
        print(f"{package}: {url} ({said})")
        if found is False:
            missing.append(url.rsplit("/", 1)[-1])
    if missing:
        print(no_wheel_banner(build, "the releases publish no " + " and no ".join(missing)))
        if args.build and not args.dry_run:
            return _build_from_source()
        return 1
    if args.dry_run:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(pip_install_args(list(urls.values()), build, Path(tmp)))
    if done.returncode != 0:
        print(no_wheel_banner(build, "the wheels above did not install for this torch/CUDA/Python"))
        if not args.build or _build_from_source() != 0:
            return 1
    print("Mamba backend:", describe_backend())
    return 0


if __name__ == "__main__":
    sys.exit(main())
