"""The set-up files agree: environment.yml (conda), pyproject.toml (pip), constraints.txt (CI's exact versions),
scripts/workbook.sh; and the pytest configuration hides no warnings globally."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
LOCAL_GROUPS = ("notebook", "test", "eval", "offline")  # what scripts/workbook.sh installs
CONDA_TORCH = {"pytorch-cpu", "pytorch-gpu"}  # environment.yml takes torch from conda-forge


def _name(req: str) -> str:
    return canonicalize_name(Requirement(req).name)


def _pyproject_packages() -> dict[str, set[str]]:
    groups = {"core": {_name(r) for r in PROJECT["dependencies"]}}
    groups.update({g: {_name(r) for r in reqs} for g, reqs in PROJECT["optional-dependencies"].items()})
    return groups


def _environment_yml() -> tuple[list, list[str], set[str]]:
    text = (ROOT / "environment.yml").read_text()
    deps = yaml.safe_load(text)["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    commented = {_name(m) for m in re.findall(r"#\s*-\s*([A-Za-z0-9_.\-\[\]]+[^\n]*)", text)}
    return deps, pip, commented


def _constraints() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pins = {}
    for line in lines:
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)  # a pin may carry a marker (soupsieve: one pin per Python range)
            (spec,) = req.specifier
            assert spec.operator == "==", f"constraints.txt: {line!r} is not an exact pin"
            if req.marker is None or req.marker.evaluate():
                pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_environment_yml_names_the_same_packages_as_pyproject():
    groups = _pyproject_packages()
    deps, pip, commented = _environment_yml()
    listed = {_name(r) for r in pip}
    pip_groups = set().union(*(v for k, v in groups.items() if k != "gpu")) - {"torch"}
    assert listed == pip_groups, (
        f"only in environment.yml: {listed - pip_groups}; only in pyproject: {pip_groups - listed}"
    )
    assert groups["gpu"] <= commented, "environment.yml must mention the GPU accelerators (commented out)"


def test_environment_yml_takes_the_cpu_torch_from_conda_and_says_how_to_choose():
    deps, pip, _ = _environment_yml()
    conda = [d for d in deps if isinstance(d, str)]
    assert any(d.startswith("pytorch-cpu") for d in conda), "a CPU machine must not get the CUDA build"
    assert not any(_name(r) == "torch" for r in pip), "pip's torch would be the multi-GB CUDA build"
    text = (ROOT / "environment.yml").read_text()
    assert "pytorch-gpu" in text and "CUDA machine" in text


def test_versions_pinned_identically():
    reqs = list(PROJECT["dependencies"]) + [r for g in PROJECT["optional-dependencies"].values() for r in g]
    pins = {_name(r): r.replace(" ", "") for r in reqs}
    _, pip, _ = _environment_yml()
    for r in pip:
        assert pins[_name(r)] == r.replace(" ", ""), f"{r} vs pyproject {pins[_name(r)]}"


def test_constraints_pin_everything_the_local_setup_installs_within_pyproject():
    pins = _constraints()
    assert "torch" not in pins, (
        "torch is installed first (CPU or CUDA build): it must stay out of the constraints"
    )
    assert "kokoro-mamba" not in pins
    direct = list(PROJECT["dependencies"]) + [
        r for g in LOCAL_GROUPS for r in PROJECT["optional-dependencies"][g]
    ]
    for req in map(Requirement, direct):
        name = canonicalize_name(req.name)
        if name == "torch":
            continue
        assert name in pins, (
            f"constraints.txt does not pin {name}: regenerate it (scripts/workbook.sh freeze)"
        )
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {req}"


def test_workbook_installs_with_the_constraints_and_the_offline_extra():
    script = (ROOT / "scripts" / "workbook.sh").read_text()
    assert re.search(r'-c "\$CONSTRAINTS"} -e "\.\[notebook,test,eval,offline\]"', script)
    assert "constraints.txt" in script
    for path in [
        ROOT / "pyproject.toml",
        ROOT / "README.md",
        *(p for p in ROOT.glob("scripts/*") if p.is_file()),  # not __pycache__/ where bytecode is written
        ROOT / "environment.yml",
    ]:
        assert "setup.sh" not in path.read_text(), (
            f"{path.name} refers to a scripts/setup.sh that does not exist"
        )


def test_pytest_hides_no_warnings_globally():
    options = PYPROJECT["tool"]["pytest"]["ini_options"]
    assert "filterwarnings" not in options, "filter a warning where it arises, with its reason"
