"""What the commands do with bad options, unwritable outputs, signals and hostile
files: one line each, checked before the work, and the other images go on."""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

from unsupseg.cli import build_parser, main
from unsupseg.errors import DatasetError
from unsupseg.models import build_model
from unsupseg.models.checkpoint import Checkpoint, CheckpointInfo

FAST = ["--q", "12", "--max-iter", "3", "--n-segments", "30", "--quiet"]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, side: int = 100_000) -> None:
    """A PNG of a few dozen bytes whose header claims ``side`` x ``side`` pixels."""
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + _png_chunk(b"IEND", b"")
    )


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.fixture
def photos(tmp_path, blocks_image) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(blocks_image).save(folder / f"{name}.png")
    return folder


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--compactness", "inf"], "finite"),
        (["--mu", "nan"], "finite"),
        (["--scribble-weight", "inf"], "finite"),
        (["--seed", str(2**66)], "must be in [0, 4294967295]"),
        (["--seed", "-1"], "must be in [0, 4294967295]"),
    ],
)
def test_options_out_of_range_are_usage_errors(option, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["segment", *option])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_device_and_memory_are_checked_before_any_image(photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(photos), "--out", str(out), "--device", "meta", *FAST]) == 2
    assert "device 'meta' is not supported" in _one_line(capsys.readouterr().err)
    code = main(["segment", str(photos), "--out", str(out), *FAST[2:], "--q", "100000"])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert "needs about" in line and "TiB of memory" in line and "lower --q" in line
    assert not out.exists()


def test_out_that_is_a_file_or_read_only_is_refused_before_work(photos, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    for command in (["segment", str(photos)], ["predict", str(photos), "--checkpoint", "x"]):
        assert main([*command, "--out", str(tmp_path / "file"), "--quiet"]) == 2
        assert "is a file, not a folder" in _one_line(capsys.readouterr().err)
        # /proc takes no new files, not even from root
        assert main([*command, "--out", "/proc/unsupseg-out", "--quiet"]) == 2
        assert "is not writable" in _one_line(capsys.readouterr().err)


def test_disk_full_stops_the_run_with_one_line_per_image(photos, tmp_path, capsys, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "labels.npy")

    monkeypatch.setattr("unsupseg.outputs.np.save", full)
    out = tmp_path / "out"
    assert main(["segment", str(photos), "--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "a.png: cannot write the outputs: No space left on device" in err
    assert "b.png: not processed (outputs cannot be written)" in err
    assert "c.png: not processed" in err
    assert "3 input(s) failed" in err
    assert list(out.iterdir()) == []  # no folder, no temporary


def test_an_unwritable_output_fails_that_image_only(photos, tmp_path, capsys, monkeypatch):
    import unsupseg.outputs

    real = unsupseg.outputs.np.save

    def flaky(path, array):
        if "b" in Path(path).parent.name.split(".")[1:2]:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        real(path, array)

    monkeypatch.setattr("unsupseg.outputs.np.save", flaky)
    out = tmp_path / "out"
    assert main(["segment", str(photos), "--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err
    assert "b.png: cannot write the outputs: Input/output error" in err
    assert sorted(p.name for p in out.iterdir()) == ["a", "c"]


def test_decompression_bomb_is_one_failure_in_a_folder_run(photos, tmp_path, capsys):
    bomb_png(photos / "bomb.png")
    assert (photos / "bomb.png").stat().st_size < 100
    out = tmp_path / "out"
    for extra in ([], ["--max-side", "64"]):
        assert main(["segment", str(photos), "--out", str(out), *FAST, *extra]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and "1 input(s) failed" in err
        assert "bomb.png: " in err and "100000x100000" in err
        assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c"]


def test_labels_npy_takes_the_smallest_integer_type(photos, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(photos / "a.png"), "--out", str(out), *FAST]) == 0
    labels = np.load(out / "a" / "labels.npy")
    assert labels.dtype == np.uint8
    assert labels.max() + 1 == json.loads((out / "a" / "summary.json").read_text())["n_labels"]


def test_stale_temporaries_are_swept_at_start(photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = out / f".a.{int(dead.stdout)}.abcdefgh.tmp"
    (stale / "sub").mkdir(parents=True)
    live = out / f".a.{os.getpid()}.abcdefgh.tmp"
    live.mkdir()
    assert main(["segment", str(photos / "a.png"), "--out", str(out), *FAST]) == 0
    assert not stale.exists() and live.exists()
    assert (out / "a" / "labels.npy").is_file()


def test_sigterm_removes_the_half_written_folder(photos, tmp_path, capsys, monkeypatch):
    def terminate(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr("unsupseg.outputs.save_panel", terminate)
    out = tmp_path / "out"
    before = signal.getsignal(signal.SIGTERM)
    assert main(["segment", str(photos), "--out", str(out), *FAST]) == 128 + signal.SIGTERM
    assert "terminated" in capsys.readouterr().err
    assert list(out.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_to_a_real_process_exits_143_and_leaves_nothing(photos, tmp_path):
    out = tmp_path / "out"
    code = (
        "import os, signal, sys\n"
        "import unsupseg.outputs as o\n"
        "o.save_panel = lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM)\n"
        "from unsupseg.cli import main\n"
        f"sys.exit(main(['segment', {str(photos / 'a.png')!r}, '--out', {str(out)!r}, "
        f"*{FAST!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)  # fmt: skip
    assert done.returncode == 143, done.stderr
    assert list(out.iterdir()) == []


def _photos_checkpoint() -> Checkpoint:
    torch.manual_seed(0)
    return Checkpoint(
        build_model("base-bsds500").eval(),
        CheckpointInfo(preset="base-bsds500", architecture="base", image_size=None),
    )


def test_finetune_a_1x1_image_fails_alone(photos, tmp_path, capsys, monkeypatch, one_thread):
    Image.new("RGB", (1, 1), (200, 10, 10)).save(photos / "dot.png")
    monkeypatch.setattr(
        "unsupseg.cli.predict.load_checkpoint", lambda *args, **kwargs: _photos_checkpoint()
    )
    out = tmp_path / "out"
    argv = ["predict", str(photos), "--checkpoint", "ckpt.pt", "--out", str(out),
            "--finetune", "2", "--batch-size", "4", "--quiet"]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "dot.png: a 1x1 image cannot be fine-tuned" in err
    assert "1 input(s) failed" in err and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c"]


def _parsers(parser: argparse.ArgumentParser):
    """``parser`` and every sub-command's parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_help_line_shows_its_default_once():
    checked = 0
    for parser in _parsers(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.help or action.help == argparse.SUPPRESS:
                continue
            text = formatter._expand_help(action)
            assert "(default: None)" not in text and "(default: False)" not in text, text
            if "default" in action.help:  # the text says it: nothing is appended
                assert "(default: " not in text.replace(action.help % vars(action), ""), text
            checked += 1
    assert checked > 100


def test_missing_downloadable_dataset_says_how_to_fetch_it(tmp_path):
    from unsupseg.data import CIFAR10Dataset

    with pytest.raises(DatasetError) as error:
        CIFAR10Dataset(tmp_path)
    message = str(error.value)
    assert "Pass download=True" not in message
    assert f"CIFAR10Dataset('{tmp_path}', download=True)" in message
    assert "--data-root" in message


def test_the_reliability_table_names_tests_that_exist():
    text = (REPO / "docs" / "reliability.md").read_text()
    named = re.findall(r"`(test_\w+\.py)(?:::(\w+))?`", text)
    assert len(named) > 30
    for file, test in named:
        source = (REPO / "tests" / file).read_text()
        assert not test or re.search(rf"^def {test}\(", source, re.M), f"{file}::{test}"


@pytest.mark.parametrize(
    "argv",
    [
        ["segment", "--lr", "nan"],
        ["predict", "--finetune-lr", "inf"],
        ["evaluate", "--seed", "-3"],
        ["train", "--epochs", "0"],
        ["bench", "segment", "--size", "abc"],
        ["segment", "--no-such-option"],
    ],
)
def test_bad_usage_is_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("unsupseg") and "error:" in line and "--help" in line
