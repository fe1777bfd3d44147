"""The package metadata states ranges, constraints.txt pins what CI installs, and the two
agree with each other and with this environment."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"constraints.txt pins exact versions only: {line!r}"
            pins[canonicalize_name(name)] = pinned
    return pins


def test_ranges_in_the_metadata_and_the_tested_pins_in_constraints():
    project = _project()
    pins = _pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in ("geo", "tensorboard", "test", "docs"):
        requirements += [Requirement(r) for r in project["optional-dependencies"][extra]]
    for requirement in requirements:
        assert not any(s.operator == "==" for s in requirement.specifier), (
            f"{requirement}: the metadata states ranges; pins go in constraints.txt"
        )
        name = canonicalize_name(requirement.name)
        if name == "rasterio":  # [geo] is optional and not installed by the two commands
            continue
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name]), (requirement, pins[name])
    torch_range = next(r for r in requirements if r.name == "torch").specifier
    assert torch_range.contains("2.4.0") and not torch_range.contains("3.0.0")


def test_this_environment_has_the_pinned_versions():
    """CI installs with -c constraints.txt: every pinned package that is installed here
    has exactly its pinned version (a drift fails here, not on a user's machine)."""
    if not (ROOT / ".venv").is_dir():
        pytest.skip("not the README's .venv")
    wrong = []
    for name, pinned in _pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue
        if installed != pinned:
            wrong.append(f"{name} {installed} (constraints.txt: {pinned})")
    assert not wrong, wrong


def test_license_typed_marker_and_classifiers():
    project = _project()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "src" / "unsupseg" / "py.typed").is_file()
    assert "Typing :: Typed" in project["classifiers"]
    assert set(project["optional-dependencies"]) >= {"geo", "tensorboard", "test", "docs"}
