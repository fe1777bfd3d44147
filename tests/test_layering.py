"""The package's layering: the pipeline order, no import cycle, argparse only in cli/,
no private name imported across modules, light modules that stay light."""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

SRC = REPO / "src"
PACKAGE = SRC / "unsupseg"

#: The layers, lowest first. A module may import modules of its own layer or below.
#: ``superpixels`` sits under ``data`` because the data layer's superpixel cache runs SLIC.
#: ``ucm`` (the hierarchies) sits beside ``metrics``: its ``auto`` level uses the internal
#: indices.
LAYERS: list[tuple[str, ...]] = [
    (
        "version", "errors", "checks", "io", "tables", "device", "samples", "viz", "outputs",
        "run_folder", "thesis", "lazy",
    ),
    ("superpixels",),
    ("data",),
    ("refine", "regions"),
    ("models",),
    ("algorithm",),
    ("per_image", "inference", "training"),
    ("metrics", "baselines", "ucm"),
    ("evaluation",),
    ("postprocess",),
    ("analysis",),
    ("report",),
    ("bench",),
    ("app",),
    ("cli",),
]


def _module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def _imports(module: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every import statement of
    ``module``, at the top level and inside functions alike."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.append((full if full in MODULES else target, alias.name, node.lineno))
    return found


def _owner(target: str) -> str | None:
    """The unsupseg module that ``target`` (a module or module.attribute) names."""
    while target and target not in MODULES:
        if "." not in target:
            return None
        target = target.rsplit(".", 1)[0]
    return target or None


def _layer(module: str) -> int | None:
    name = module.removeprefix("unsupseg.").split(".")[0]
    for rank, members in enumerate(LAYERS):
        if name in members:
            return rank
    return None


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module in MODULES:
        deps = set()
        for target, _, _ in _imports(module):
            owner = _owner(target)
            if owner is None or owner == module:
                continue
            # a package's __init__ gathering its own submodules is not a dependency
            if MODULES[module].name == "__init__.py" and owner.startswith(module + "."):
                continue
            deps.add(owner)
        edges[module] = deps
    return edges


def test_every_module_has_a_layer():
    unplaced = [m for m in MODULES if m != "unsupseg" and _layer(m) is None]
    assert not unplaced, f"modules in no layer of LAYERS: {unplaced}"


def test_no_import_cycle():
    sorter = graphlib.TopologicalSorter(_edges())
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


def test_each_layer_imports_only_layers_below():
    wrong = []
    for module, deps in _edges().items():
        if module == "unsupseg":  # the package facade re-exports the public API
            continue
        for dep in deps:
            if dep == "unsupseg":
                wrong.append(f"{module} imports the package facade (import the module itself)")
            elif _layer(dep) > _layer(module):
                wrong.append(f"{module} (layer {_layer(module)}) imports {dep} ({_layer(dep)})")
    assert not wrong, "\n".join(sorted(wrong))


def test_argparse_only_in_cli():
    users = sorted(
        module
        for module in MODULES
        if not (module == "unsupseg.cli" or module.startswith("unsupseg.cli."))
        and any(t == "argparse" or t.startswith("argparse.") for t, _, _ in _imports(module))
    )
    assert not users, f"argparse imported outside unsupseg.cli: {users}"


def test_no_private_name_imported_across_modules():
    private = []
    for module in MODULES:
        for target, name, line in _imports(module):
            owner = _owner(target)
            if owner is None or owner == module or not name:
                continue
            if name.startswith("_") and not name.startswith("__"):
                private.append(f"{MODULES[module].relative_to(SRC)}:{line} imports {owner}.{name}")
    assert not private, "\n".join(private)


def test_the_checker_sees_imports_inside_functions_and_relative_ones():
    assert {"unsupseg.cli.common", "unsupseg.per_image"} <= _edges()["unsupseg.cli.segment"]
    inside = [n for t, n, _ in _imports("unsupseg.cli") if t == "importlib"]
    assert inside == [None]  # ``import importlib`` at the top level is seen
    assert _layer("unsupseg.cli.segment") > _layer("unsupseg.per_image") > _layer("unsupseg.data")


#: matplotlib's backend as set, read without resolving it (which would pick one).
_BACKEND = "dict.__getitem__(matplotlib.rcParams, 'backend')"


@pytest.mark.parametrize(
    "module", ["unsupseg.report", "unsupseg.analysis", "unsupseg.run_folder", "unsupseg.viz"]
)
def test_light_modules_do_not_load_torch_or_switch_matplotlib(module):
    code = (
        "import sys, matplotlib\n"
        f"before = {_BACKEND}\n"
        f"import {module}\n"
        f"print('torch' in sys.modules, {_BACKEND} == before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert done.stdout.split() == ["False", "True"], done.stdout + done.stderr
