"""The public API of ``import unsupseg``: every name resolves lazily, the entry points
are documented, and the command line is a consumer of them."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
from conftest import REPO

import unsupseg

#: The library calls behind the commands; each must document itself in numpydoc form.
ENTRY_POINTS = [
    "segment",
    "load_checkpoint",
    "predict",
    "predict_batch",
    "train",
    "evaluate_dataset",
    "hierarchy",
    "evaluate_hierarchy",
    "postprocess_dataset",
    "stability",
    "build_report",
]


@pytest.mark.parametrize("name", unsupseg.__all__)
def test_every_public_name_resolves(name):
    assert getattr(unsupseg, name) is not None
    assert name in dir(unsupseg)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        unsupseg.nonexistent  # noqa: B018


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_points_have_numpydoc_sections(name):
    doc = inspect.getdoc(getattr(unsupseg, name))
    for section in ("Parameters", "Returns", "Examples"):
        assert f"{section}\n---" in doc, f"unsupseg.{name} lacks a {section} section"


def test_import_unsupseg_loads_no_torch():
    code = "import sys, unsupseg; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=REPO)  # fmt: skip
    assert done.stdout.strip() == "False"


def test_errors_form_one_hierarchy():
    for name in ("ConfigError", "ImageReadError", "DatasetError", "CheckpointError",
                 "RunFolderError"):  # fmt: skip
        error = getattr(unsupseg, name)
        assert issubclass(error, unsupseg.UnsupsegError) and issubclass(error, ValueError)


def test_the_cli_turns_a_library_error_into_one_line(tmp_path, capsys):
    from unsupseg.cli import main

    missing = tmp_path / "missing.pt"
    assert main(["predict", "--checkpoint", str(missing), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{missing}: no such checkpoint file"]
