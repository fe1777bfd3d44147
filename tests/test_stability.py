"""The stability analysis: merging curves of several runs, grouped, across seeds.

Run folders are written in the real format of ``unsupseg train`` (config.json, and a
metrics.csv with its header, per-epoch rows and train_step rows that must be ignored)
with known numbers; one test reads a real tiny training run. Library behaviour is tested
through :func:`unsupseg.analysis.stability`; a few tests run ``unsupseg stability`` for
its arguments, exit codes and files.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import band_image
from PIL import Image

from unsupseg.analysis import stability
from unsupseg.analysis.label_stability import CSV_COLUMNS, read_run_curve
from unsupseg.cli import main
from unsupseg.errors import ConfigError, RunFolderError

HEADER = "epoch,step,split,loss,loss_seg,loss_aux,unique_labels,lr,seconds"
#: unique_labels of the train_step rows: far from every epoch value, so counting them
#: would change every statistic.
STEP_LABELS = 999.0


def make_run(
    root: Path,
    name: str,
    *,
    val: list[float] | None,
    train: list[float] | None = None,
    architecture: str = "base",
    dataset: str = "bsds500",
    preset: str | None = None,
    seed: int = 0,
) -> Path:
    """A run folder as written by ``unsupseg train`` with the given curves."""
    folder = root / name
    folder.mkdir(parents=True)
    preset = preset or f"{architecture}-{dataset}"
    config = {
        "settings": {"preset": preset, "dataset": dataset, "seed": seed, "epochs": 20},
        "preset": {"name": preset, "architecture": architecture, "dataset": dataset},
        "train_images": 8,
        "versions": {"unsupseg": "0.1.0"},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    train = train if train is not None else [v + 1 for v in (val or [])]
    lines = [HEADER]
    step = 0
    for index, value in enumerate(train):
        epoch = index + 1
        for _ in range(2):
            step += 5
            aux = "0.5" if architecture != "base" else ""
            lines.append(f"{epoch},{step},train_step,1.5,1.0,{aux},{STEP_LABELS},0.001,{step}")
        lines.append(f"{epoch},{step},train,1.2,1.2,,{value},0.001,{step + 0.5}")
        if val is not None and index < len(val):
            lines.append(f"{epoch},{step},val,1.1,1.1,,{val[index]},0.001,{step + 0.6}")
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    return folder


BASE = {0: [10.0, 6.0, 4.0], 1: [12.0, 8.0, 5.0], 2: [14.0, 7.0, 3.0]}
AUTOENCODER = {0: [20.0, 19.0, 18.0], 1: [22.0, 21.0]}  # seed 1 is still at epoch 2


@pytest.fixture
def runs(tmp_path) -> list[Path]:
    """Three base seeds and two autoencoder seeds (one of them shorter), autoencoder first."""
    folders = [
        make_run(tmp_path, f"ae-s{seed}", val=curve, architecture="autoencoder", seed=seed)
        for seed, curve in AUTOENCODER.items()
    ]
    folders += [
        make_run(tmp_path, f"base-s{seed}", val=curve, seed=seed) for seed, curve in BASE.items()
    ]
    return folders




# --------------------------------------------------------------------------------------
# Reading one run


def test_read_run_curve_reads_the_split_and_ignores_train_step_rows(tmp_path):
    folder = make_run(
        tmp_path, "run", val=[9.5, 7.25], train=[11.0, 8.0, 6.5], architecture="classifier",
        dataset="msrc", preset="classifier-msrc", seed=3,
    )  # fmt: skip
    val = read_run_curve(folder, "val")
    assert (val.preset, val.architecture, val.dataset, val.seed) == (
        "classifier-msrc", "classifier", "msrc", 3
    )  # fmt: skip
    assert val.run == str(folder)
    assert val.epochs == [1, 2] and val.unique_labels == [9.5, 7.25]
    train = read_run_curve(folder, "train")
    assert train.epochs == [1, 2, 3] and train.unique_labels == [11.0, 8.0, 6.5]
    assert (train.first, train.last) == (11.0, 6.5)
    assert train.retained == pytest.approx(6.5 / 11.0)


def test_read_run_curve_takes_the_dataset_trained_on(tmp_path):
    folder = make_run(tmp_path, "run", val=[3.0], preset="base-bsds500", dataset="folder")
    config = json.loads((folder / "config.json").read_text())
    config["preset"]["dataset"] = "bsds500"  # the preset's; settings.dataset overrides it
    (folder / "config.json").write_text(json.dumps(config))
    assert read_run_curve(folder).dataset == "folder"


# --------------------------------------------------------------------------------------
# Statistics and grouping


def test_summary_mean_sample_std_min_max_per_group_and_epoch(runs):
    result = stability(runs)  # out=None: nothing written
    assert result.out is None and result.files == [] and result.split == "val"
    summary = result.groups
    assert [g["group"] for g in summary] == ["base", "autoencoder"]  # the thesis' order
    base, autoencoder = summary
    assert base["seeds"] == [0, 1, 2] and autoencoder["seeds"] == [0, 1]
    by_epoch = {row["epoch"]: row for row in base["epochs"]}
    assert sorted(by_epoch) == [1, 2, 3]
    # epoch 1: 10, 12, 14 -> sample std 2 (population std would be 1.633)
    assert by_epoch[1] == {"epoch": 1, "n_runs": 3, "mean": 12.0, "std": 2.0, "min": 10.0,
                           "max": 14.0}  # fmt: skip
    assert by_epoch[2]["mean"] == pytest.approx(7.0) and by_epoch[2]["std"] == pytest.approx(1.0)
    assert (by_epoch[3]["min"], by_epoch[3]["max"], by_epoch[3]["mean"]) == (3.0, 5.0, 4.0)
    # autoencoder: both runs at epochs 1-2, only seed 0 at epoch 3 (std 0 for one run)
    rows = autoencoder["epochs"]
    assert [(r["epoch"], r["n_runs"]) for r in rows] == [(1, 2), (2, 2), (3, 1)]
    assert rows[0]["std"] == pytest.approx(math.sqrt(2.0))
    assert rows[2] == {"epoch": 3, "n_runs": 1, "mean": 18.0, "std": 0.0, "min": 18.0,
                       "max": 18.0}  # fmt: skip
    # per run: first, last (each run's own last epoch), retained fraction last / first
    assert base["first"]["mean"] == 12.0 and base["last"]["mean"] == pytest.approx(4.0)
    assert autoencoder["last"]["mean"] == pytest.approx((18.0 + 21.0) / 2)
    retained = [0.4, 5 / 12, 3 / 14]
    assert base["retained"]["mean"] == pytest.approx(np.mean(retained))
    assert base["retained"]["std"] == pytest.approx(np.std(retained, ddof=1))


def test_grouping_by_architecture_and_dataset_or_by_preset(tmp_path):
    folders = [
        make_run(tmp_path, "a", val=[8.0], seed=0),
        make_run(tmp_path, "b", val=[6.0], seed=1, preset="base-deep-bsds500"),
        make_run(tmp_path, "c", val=[5.0], seed=0, dataset="msrc"),
        make_run(tmp_path, "d", val=[4.0], seed=0, preset="base-bsds500", dataset="folder"),
    ]
    by_arch = {g["group"]: g for g in stability(folders, group_by="architecture").groups}
    # several data sets: the dataset is part of the group and of its label
    assert set(by_arch) == {"base (bsds500)", "base (msrc)", "base (folder)"}
    assert by_arch["base (bsds500)"]["epochs"][0]["mean"] == 7.0
    assert by_arch["base (bsds500)"]["runs"] == [str(folders[0]), str(folders[1])]
    by_preset = {g["group"]: g for g in stability(folders, group_by="preset").groups}
    assert set(by_preset) == {"base-bsds500", "base-deep-bsds500", "base-msrc",
                              "base-bsds500 (folder)"}  # fmt: skip
    assert by_preset["base-bsds500"]["epochs"][0]["mean"] == 8.0
    # one data set: the label is the architecture alone
    single = stability(folders[:2]).groups
    assert [g["group"] for g in single] == ["base"]
    with pytest.raises(ConfigError, match="group_by"):
        stability(folders, group_by="seed")
    with pytest.raises(ConfigError, match="split"):
        stability(folders, split="test")
    with pytest.raises(ConfigError, match="no runs"):
        stability([])


# --------------------------------------------------------------------------------------
# Outputs


def test_outputs_files_and_summary_contract(runs, tmp_path):
    out = tmp_path / "out"
    result = stability(runs, group_by="architecture", split="val", out=out)
    summary = result.summary
    assert sorted(p.name for p in out.iterdir()) == [
        "stability.csv", "stability.md", "stability.png", "summary.json"
    ]  # fmt: skip
    assert sorted(result.files) == sorted(out.iterdir()) and result.out == out
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary == stability(runs).summary  # the same contents without writing
    assert set(summary) == {"kind", "title", "split", "runs", "tables", "figures"}
    assert summary["kind"] == "stability" and summary["split"] == "val"
    assert summary["runs"][0] == {"run": str(runs[0]), "group": "autoencoder",
                                  "preset": "autoencoder-bsds500", "seed": 0, "epochs": 3,
                                  "first": 20.0, "last": 18.0}  # fmt: skip
    assert [r["epochs"] for r in summary["runs"]] == [3, 2, 3, 3, 3]
    for table in summary["tables"]:
        assert set(table) == {"title", "columns", "rows"}
        for row in table["rows"]:
            assert len(row) == len(table["columns"])
            assert all(isinstance(cell, str | int | float) for cell in row)
    main_table = summary["tables"][0]
    base_row = next(row for row in main_table["rows"] if row[0] == "base")
    assert base_row[1] == "3 (0, 1, 2)"
    assert base_row[3] == "12.00 ± 2.00" and base_row[4] == "4.00 ± 1.00"
    ae_row = next(row for row in main_table["rows"] if row[0] == "autoencoder")
    assert ae_row[2] == "2–3"  # the runs stopped at different epochs
    assert summary["figures"] == [{"title": summary["figures"][0]["title"],
                                   "path": "stability.png"}]  # fmt: skip
    assert "val" in summary["figures"][0]["title"]

    lines = (out / "stability.csv").read_text().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert "base,1,3,12,2,10,14" in lines
    assert "autoencoder,3,1,18,0,18,18" in lines
    assert len(lines) == 1 + 3 + 3

    markdown = (out / "stability.md").read_text()
    assert "| base | 3 (0, 1, 2) | 3 | 12.00 ± 2.00 | 4.00 ± 1.00 |" in markdown
    assert "stability.png" in markdown
    assert result.markdown in markdown

    png = out / "stability.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[1] >= 500 and pixels.shape[0] >= 300
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # lines and bands, not blank
    assert not list(out.glob(".*.tmp"))


# --------------------------------------------------------------------------------------
# The command


def test_cli_end_to_end(runs, tmp_path, capsys):
    out = tmp_path / "stab"
    code = main(["stability", *map(str, runs), "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| base | 3 (0, 1, 2) |" in printed and "| autoencoder | 2 (0, 1) |" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["split"] == "val"
    assert {r["group"] for r in summary["runs"]} == {"base", "autoencoder"}
    code = main(["stability", *map(str, runs), "--out", str(out), "--split", "train",
                 "--group-by", "preset"])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["split"] == "train"
    assert summary["runs"][2]["first"] == BASE[0][0] + 1  # the train curve
    assert {r["group"] for r in summary["runs"]} == {"base-bsds500", "autoencoder-bsds500"}


def test_split_none_is_train_when_a_run_has_no_val_rows(tmp_path):
    with_val = make_run(tmp_path, "a", val=[5.0, 4.0], seed=0)
    no_val = make_run(tmp_path, "b", val=None, train=[7.0, 3.0], seed=1)
    result = stability([with_val, no_val], split=None)
    assert result.split == result.summary["split"] == "train"
    assert [r["first"] for r in result.summary["runs"]] == [6.0, 7.0]
    assert stability([with_val], split=None).split == "val"
    # asking for val explicitly is an error that names the run without val rows
    with pytest.raises(ConfigError) as error:
        stability([with_val, no_val], split="val")
    message = str(error.value)
    assert str(no_val) in message and "'val'" in message and str(with_val) not in message


def test_cli_default_split_and_a_missing_split(tmp_path, capsys):
    with_val = make_run(tmp_path, "a", val=[5.0, 4.0], seed=0)
    no_val = make_run(tmp_path, "b", val=None, train=[7.0, 3.0], seed=1)
    out = tmp_path / "out"
    assert main(["stability", str(with_val), str(no_val), "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["split"] == "train"
    capsys.readouterr()
    assert main(["stability", str(with_val), str(no_val), "--split", "val",
                 "--out", str(tmp_path / "other")]) == 2  # fmt: skip
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(no_val) in error and "'val'" in error
    assert not (tmp_path / "other").exists()


def _corrupt_json(folder: Path) -> None:
    (folder / "config.json").write_text('{"settings": {"seed": 0')


def _not_training_config(folder: Path) -> None:
    (folder / "config.json").write_text('{"method": "kanezaki2018"}')


def _bad_number(folder: Path) -> None:
    with open(folder / "metrics.csv", "a") as handle:
        handle.write("3,30,val,1.0,1.0,,lots,0.001,9\n")


def _wrong_header(folder: Path) -> None:
    text = (folder / "metrics.csv").read_text().replace("unique_labels", "labels")
    (folder / "metrics.csv").write_text(text)


def _no_epoch_rows(folder: Path) -> None:
    lines = (folder / "metrics.csv").read_text().splitlines()
    kept = [line for line in lines if ",train," not in line and ",val," not in line]
    (folder / "metrics.csv").write_text("\n".join(kept) + "\n")


def _no_metrics(folder: Path) -> None:
    (folder / "metrics.csv").unlink()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_corrupt_json, "not valid JSON"),
        (_not_training_config, "settings"),
        (_bad_number, "line"),
        (_wrong_header, "unique_labels"),
        (_no_epoch_rows, "no epoch rows"),
        (_no_metrics, "not a run folder of unsupseg train (no metrics.csv"),
    ],
)
def test_bad_run_folders_are_one_clear_error(tmp_path, damage, message):
    good = make_run(tmp_path, "good", val=[5.0, 4.0], seed=0)
    bad = make_run(tmp_path, "bad", val=[5.0, 4.0], seed=1)
    damage(bad)
    out = tmp_path / "out"
    with pytest.raises(RunFolderError) as error:
        stability([good, bad], out=out)
    text = str(error.value)
    assert len(text.splitlines()) == 1, text
    assert str(bad) in text and message in text
    assert not out.exists()  # nothing written


def test_cli_bad_run_folder_is_exit_status_2_and_one_line(tmp_path, capsys):
    good = make_run(tmp_path, "good", val=[5.0, 4.0], seed=0)
    bad = make_run(tmp_path, "bad", val=[5.0, 4.0], seed=1)
    _corrupt_json(bad)
    out = tmp_path / "out"
    assert main(["stability", str(good), str(bad), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(bad) in error and "not valid JSON" in error
    assert not out.exists()


def test_missing_folder_is_an_error(tmp_path, capsys):
    with pytest.raises(RunFolderError, match="no such run folder"):
        stability([tmp_path / "nowhere"])
    assert main(["stability", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_repeated_seed_in_a_group_warns_but_counts_both(tmp_path, unsupseg_log):
    first = make_run(tmp_path, "a", val=[6.0], seed=0)
    second = make_run(tmp_path, "b", val=[8.0], seed=0)
    other = make_run(tmp_path, "c", val=[3.0], seed=0, architecture="classifier")
    out = tmp_path / "out"
    stability([first, second, other], out=out)
    warnings = [r.getMessage() for r in unsupseg_log.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "both seed 0" in warnings[0] and str(second) in warnings[0]
    assert str(other) not in warnings[0]  # another group: no clash
    lines = (out / "stability.csv").read_text().splitlines()
    assert "base,1,2,7,1.41421,6,8" in lines


def test_an_epoch_without_unique_labels_is_skipped_with_a_warning(tmp_path, unsupseg_log):
    folder = make_run(tmp_path, "a", val=[6.0, 5.0, 4.0], train=[7.0, 6.0, 5.5], seed=0)
    text = (folder / "metrics.csv").read_text().replace(",5.0,0.001,", ",,0.001,")
    (folder / "metrics.csv").write_text(text)
    curve = read_run_curve(folder, "val")
    assert curve.epochs == [1, 3] and curve.unique_labels == [6.0, 4.0]
    assert any("no unique_labels for val epoch 2" in r.getMessage() for r in unsupseg_log.records)


# --------------------------------------------------------------------------------------
# A real run




def test_a_real_tiny_training_run(tmp_path, capsys):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rng = np.random.default_rng(0)
        for split, n in (("train", 4), ("val", 2)):
            (tmp_path / "data" / split).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(band_image(rng)).save(tmp_path / "data" / split / f"img{i}.png")
        run = tmp_path / "run"
        code = main([
            "train", "--preset", "base-cifar10", "--q", "8", "--epochs", "2",
            "--batch-size", "4", "--seed", "5", "--dataset", "folder",
            "--data-root", str(tmp_path / "data"), "--split", "train", "--val-split", "val",
            "--cache-dir", str(tmp_path / "cache"), "--slic-workers", "1",
            "--num-workers", "0", "--figures-every", "100", "--quiet", "--out", str(run),
        ])  # fmt: skip
        assert code == 0
    finally:
        torch.set_num_threads(threads)
    curve = read_run_curve(run, "val")
    assert (curve.architecture, curve.dataset, curve.seed) == ("base", "folder", 5)
    assert curve.epochs == [1, 2]
    assert all(1 <= value <= 8 for value in curve.unique_labels)
    summary = stability([run], out=tmp_path / "out").summary
    assert summary["split"] == "val"
    assert summary["runs"][0]["last"] == pytest.approx(curve.unique_labels[-1])
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == summary
