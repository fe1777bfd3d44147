"""The long-run scripts of tools/ build the evaluate commands the README quotes: run
with UNSUPSEG=echo, they print those commands instead of running them."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _commands(script: str, *args: str, **env: str) -> list[list[str]]:
    done = subprocess.run(
        ["bash", str(TOOLS / script), *args],
        env={"PATH": "/usr/bin:/bin", "UNSUPSEG": "echo", **env},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [shlex.split(line) for line in done.stdout.splitlines()]


def _option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def test_coarse_to_fine_configurations():
    commands = _commands(
        "coarse_to_fine.sh", "OUT", "2", "tip2020", "full:0:fp32", "160:20:bf16", MAX_ITER="100"
    )
    assert len(commands) == 4  # photo by photo, the configurations take turns
    assert [_option(c, "--limit") for c in commands] == ["1", "1", "2", "2"]
    full, coarse = commands[2:]
    assert _option(full, "--max-side") is None and _option(coarse, "--max-side") == "160"
    assert (_option(coarse, "--fine-iter"), _option(coarse, "--precision")) == ("20", "bf16")
    assert {_option(c, "--max-iter") for c in commands} == {"100"}
    assert _option(coarse, "--out") == "OUT/tip2020-160-fine20-bf16"
    assert _option(full, "--json") == "OUT/tip2020-full-fine0-fp32/summary.json"
    # the published settings by default
    published = _commands("coarse_to_fine.sh", "O", "1", "tip2020")
    assert {_option(c, "--max-iter") for c in published} == {"1000"}


def test_reproduction_table_configurations():
    commands = _commands("reproduce_bsds500.sh", "OUT", "1")
    methods = [(_option(c, "--method"), _option(c, "--precision")) for c in commands]
    assert methods == [
        ("per-image", "fp32"), ("tip2020", "fp32"), ("dynaseg-fsf", "fp32"),
        ("dynaseg-scf", "fp32"), ("per-image", "auto"),
    ]  # fmt: skip
    assert all(_option(c, "--max-side") is None for c in commands)  # full size
    with pytest.raises(subprocess.CalledProcessError):
        _commands("reproduce_bsds500.sh", "OUT", "1", "nonsense")
