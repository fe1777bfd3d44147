import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import check_outputs_agree
from PIL import Image

from unsupseg.cli import main

FAST = ["--q", "12", "--max-iter", "4", "--n-segments", "30", "--quiet"]




def test_segment_end_to_end(tmp_path, blocks_image):
    Image.fromarray(blocks_image).save(tmp_path / "blocks.png")
    code = main(["segment", str(tmp_path / "blocks.png"), "--out", str(tmp_path / "out"), *FAST])
    assert code == 0
    labels, summary = check_outputs_agree(tmp_path / "out" / "blocks")
    assert labels.shape == blocks_image.shape[:2]
    assert summary["iterations"] <= 4
    assert summary["parameters"]["q"] == 12
    assert len(summary["n_labels_per_iteration"]) == summary["iterations"]


def test_folder_run_continues_past_bad_files(tmp_path, blocks_image, capsys):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(blocks_image).save(images / "good.png")
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.fromarray(blocks_image[:1, :1]).save(images / "dot.png")
    out = tmp_path / "out"
    code = main(["segment", str(images), str(tmp_path / "missing.jpg"), "--out", str(out), *FAST])
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["good"]
    check_outputs_agree(out / "good")
    text = capsys.readouterr().err
    assert "3 input(s) failed" in text
    for name in ("broken.png", "dot.png", "missing.jpg"):
        assert name in text


def test_empty_folder_and_no_partial_output(tmp_path, blocks_image, monkeypatch):
    (tmp_path / "empty").mkdir()
    assert main(["segment", str(tmp_path / "empty"), "--out", str(tmp_path / "o1"), *FAST]) == 1
    assert not (tmp_path / "o1").exists() or not any((tmp_path / "o1").iterdir())

    Image.fromarray(blocks_image).save(tmp_path / "blocks.png")

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("unsupseg.outputs.save_panel", explode)
    out = tmp_path / "o2"
    assert main(["segment", str(tmp_path / "blocks.png"), "--out", str(out), *FAST]) == 1
    assert list(out.iterdir()) == []


def test_huge_image_refused_unless_downscaled(tmp_path):
    Image.new("RGB", (2100, 2100), (10, 20, 30)).save(tmp_path / "huge.png")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "huge.png"), "--out", str(out), *FAST]) == 1
    assert not (out / "huge").exists()
    code = main(
        ["segment", str(tmp_path / "huge.png"), "--out", str(out), "--max-side", "40", *FAST]
    )
    assert code == 0
    # read reduced, never decoded in full: the outputs have the reduced size
    labels = np.load(out / "huge" / "labels.npy")
    assert labels.shape == (40, 40) and labels.dtype == np.uint8
    summary = json.loads((out / "huge" / "summary.json").read_text())
    assert (summary["height"], summary["file_height"], summary["file_width"]) == (40, 2100, 2100)


def test_segment_coarse_to_fine(tmp_path, blocks_image):
    Image.fromarray(blocks_image).save(tmp_path / "blocks.png")
    out = tmp_path / "out"
    argv = ["segment", str(tmp_path / "blocks.png"), "--out", str(out), "--max-side", "12", *FAST]
    assert main([*argv, "--fine-iter", "2", "--min-labels", "1"]) == 0
    summary = json.loads((out / "blocks" / "summary.json").read_text())
    assert (summary["iterations"], summary["fine_iterations"]) == (6, 2)
    assert summary["parameters"]["fine_iter"] == 2 and summary["working_width"] == 12
    assert np.load(out / "blocks" / "labels.npy").shape == blocks_image.shape[:2]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--fine-iter", "-1"])
    assert exit_info.value.code == 2
    assert main([*argv, "--layout", "contiguous", "--precision", "fp32"]) == 0
    summary = json.loads((out / "blocks" / "summary.json").read_text())
    assert summary["parameters"]["layout"] == "contiguous"
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--layout", "nhwc"])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    "option",
    [
        ["--max-iter", "-3"],
        ["--q", "1"],
        ["--lr", "0"],
        ["--q", "abc"],
        ["--lr", "nan"],
        ["--momentum", "nan"],
        ["--compactness", "inf"],
    ],
)
def test_invalid_option_values(option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["segment", *option])
    assert exit_info.value.code == 2
    assert option[0] in capsys.readouterr().err


def test_scribble_option(tmp_path, blocks_image):
    Image.fromarray(blocks_image).save(tmp_path / "blocks.png")
    scribble = np.full(blocks_image.shape[:2], 255, dtype=np.uint8)
    scribble[10, 2:8], scribble[10, 24:30] = 0, 1
    Image.fromarray(scribble).save(tmp_path / "scribble.png")
    common = [
        str(tmp_path / "blocks.png"),
        "--scribble",
        str(tmp_path / "scribble.png"),
        "--out",
        str(tmp_path / "out"),
        *FAST,
    ]
    assert main(["segment", *common]) == 2  # needs --method tip2020
    assert main(["segment", *common, "--method", "tip2020"]) == 0
    summary = json.loads((tmp_path / "out" / "blocks" / "summary.json").read_text())
    assert summary["parameters"]["scribble"] is True
    assert summary["parameters"]["min_labels"] == 2


def test_console_script_runs(tmp_path, blocks_image):
    Image.fromarray(blocks_image).save(tmp_path / "blocks.png")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "unsupseg.cli",
            "segment",
            str(tmp_path / "blocks.png"),
            "--out",
            str(tmp_path / "out"),
            *FAST,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Wrote 1 of 1 images" in done.stderr
    check_outputs_agree(tmp_path / "out" / "blocks")


def test_models_lists_seed_totals(capsys):
    assert main(["models", "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    seed = {
        "base-cifar10": 24832,
        "base-stl10": 24832,
        "base-voc2012": 24832,
        "classifier-cifar10": 177506,
        "classifier-stl10": 2288468,
        "classifier-voc2012": 23954173,
        "autoencoder-cifar10": 225883,
        "autoencoder-stl10": 205115,
        "autoencoder-voc2012": 609915,
    }
    assert {name: table[name] for name in seed} == seed
    assert main(["models"]) == 0
    assert "classifier-voc2012" in capsys.readouterr().out


def test_unavailable_device_is_one_clear_error(tmp_path, capsys):
    code = main(["segment", "--device", "cuda:7", "--out", str(tmp_path / "o"), *FAST])
    if code == 0:  # a machine with eight GPUs
        return
    assert code == 2
    assert "cuda:7" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_evaluate_is_wired_into_the_cli(bsds500, tmp_path):
    out, summary = tmp_path / "eval", tmp_path / "summary.json"
    code = main(["evaluate", "--dataset", "bsds500", "--data-root", str(bsds500),
                 "--method", "blank", "--limit", "2", "--out", str(out),
                 "--json", str(summary), "--quiet"])  # fmt: skip
    assert code == 0
    figures = json.loads(summary.read_text())
    assert figures["n_images"] == 2 and figures["mean_segments"] == 1
    assert 0 < figures["miou_all"] < figures["miou_coarse"] < 1


def test_every_option_of_every_command_has_help():
    import argparse

    from unsupseg.cli import build_parser

    def walk(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield from ((f"{name} {n}", a) for n, a in walk(sub))
            elif not isinstance(action, argparse._HelpAction):
                yield action.dest, action

    missing = [name for name, action in walk(build_parser()) if not action.help]
    assert not missing, missing
