"""environment.yml (conda) and pyproject.toml (pip) describe the same environment."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_packages() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"core": {_name(r) for r in project["dependencies"]}}
    groups.update({g: {_name(r) for r in reqs} for g, reqs in project["optional-dependencies"].items()})
    return groups


def _environment_yml() -> tuple[set[str], set[str]]:
    text = (ROOT / "environment.yml").read_text()
    env = yaml.safe_load(text)
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    commented = {_name(m) for m in re.findall(r"#\s*-\s*([A-Za-z0-9_.\-\[\]]+[^\n]*)", text)}
    return {_name(r) for r in pip}, commented


def test_environment_yml_names_the_same_packages_as_pyproject():
    groups = _pyproject_packages()
    listed, commented = _environment_yml()
    pip_groups = set().union(*(v for k, v in groups.items() if k != "gpu"))
    assert listed == pip_groups, (
        f"only in environment.yml: {listed - pip_groups}; only in pyproject: {pip_groups - listed}"
    )
    assert groups["gpu"] <= commented, "environment.yml must mention the GPU accelerators (commented out)"


def test_versions_pinned_identically():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [r for g in project["optional-dependencies"].values() for r in g]
    pins = {_name(r): r.replace(" ", "") for r in reqs}
    listed, _ = _environment_yml()
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    for r in pip:
        assert pins[_name(r)] == r.replace(" ", ""), f"{r} vs pyproject {pins[_name(r)]}"
