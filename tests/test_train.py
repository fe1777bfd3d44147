"""Dataset-level training: the algorithm, the settings, outputs, resume, DDP and
checkpoint safety.

Tiny data sets are written in their real formats (a folder of PNGs with train/ and val/,
pickled CIFAR-10 batches, an MSRC-v2 folder); one run uses the real BSDS500 when
``../shared/data`` is present. Library behaviour is tested through
:func:`unsupseg.training.train` and :func:`unsupseg.load_checkpoint`; a few tests run
``unsupseg train`` for its arguments, exit codes and files.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, band_image
from PIL import Image

import unsupseg
from unsupseg.algorithm import IGNORE_INDEX, self_training_loss
from unsupseg.cli import build_parser, main
from unsupseg.data import SuperpixelCache, TrainingDataset, collate, open_dataset
from unsupseg.errors import CheckpointError, ConfigError, DatasetError
from unsupseg.models import build_model, get_preset
from unsupseg.models.checkpoint import load_checkpoint
from unsupseg.run_folder import METRICS_COLUMNS, read_metrics
from unsupseg.training import (
    EpochSampler,
    SegmentationModule,
    TrainConfig,
    count_unique_labels,
    open_training_sets,
    resolve_config,
    train,
)
from unsupseg.training.figures import save_loss_curves, save_unique_labels_curve

#: One intra-op torch thread in every test: the machines are small and shared.
pytestmark = pytest.mark.usefixtures("one_thread")

#: The keys of config.json's ``settings`` (and of each checkpoint's): its format.
SETTINGS_KEYS = [
    "preset", "out", "dataset", "data_root", "split", "val_split", "limit", "val_limit",
    "epochs", "lr", "batch_size", "optimizer", "momentum", "lr_step_size", "lr_gamma",
    "aux_weight", "q", "padding", "crop_size", "image_size", "refine", "slic_segments",
    "slic_compactness", "label_slic_segments", "label_slic_compactness", "seed", "log_every",
    "figures_every", "checkpoint_every", "device", "precision", "deterministic",
    "num_workers", "slic_workers", "cache_dir", "resume", "quiet",
]  # fmt: skip
#: The keys of a plain checkpoint (model-last.pt, model-best.pt): its format.
PLAIN_CHECKPOINT_KEYS = {
    "format", "format_version", "preset", "architecture", "dataset", "trained_on",
    "model_overrides", "q", "image_size", "crop_size", "multi_label", "n_classes",
    "class_names", "refine", "slic", "seed", "settings", "versions", "validation", "epoch",
    "global_step", "metrics", "state_dict",
}  # fmt: skip


def write_cifar(root: Path, per_batch: int = 2, test: int = 4) -> Path:
    rng = np.random.default_rng(7)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for batch in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = test if batch == "test_batch" else per_batch
        images = np.stack([band_image(rng) for _ in range(n)])
        entry = {
            b"batch_label": batch.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": images.transpose(0, 3, 1, 2).reshape(n, 3072),
        }
        with open(folder / batch, "wb") as handle:
            pickle.dump(entry, handle, protocol=2)
    return root


def write_msrc(root: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(8)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        Image.fromarray(band_image(rng, 24, 30)).save(root / "images" / f"1_{2 * i + 2}_s.png")
        classes = np.zeros((24, 30), np.uint8)
        classes[:, 10:] = 1 + i % 3
        classes[:2] = 255
        label = Image.fromarray(classes, mode="P")
        label.putpalette([v for c in range(256) for v in (c, c, c)])
        label.save(root / "labels" / f"1_{2 * i + 2}_s.png")
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Tiny data sets in real formats, shared by the tests of this file."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 4)):
        (root / "folder" / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(band_image(rng)).save(root / "folder" / split / f"img{i}.png")
    write_cifar(root / "cifar")
    write_msrc(root / "msrc")
    return {
        "folder": root / "folder",
        "cifar": root / "cifar",
        "msrc": root / "msrc",
        "cache": root / "cache",
    }


def train_cli(*argv: str) -> int:
    """``unsupseg train ARGS`` through the command line's ``main`` (its log goes to
    stderr, which capsys reads)."""
    return main(["train", *map(str, argv)])


def folder_args(tiny: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "--dataset", "folder", "--data-root", tiny["folder"], "--split", "train",
        "--val-split", "val", "--cache-dir", tiny["cache"], "--slic-workers", "1",
        "--num-workers", "0", "--quiet", "--out", out, *extra,
    ]  # fmt: skip


def folder_config(tiny: dict[str, Path], out: Path, **settings) -> TrainConfig:
    """The library's counterpart of :func:`folder_args`."""
    return TrainConfig(
        dataset="folder", data_root=tiny["folder"], split="train", val_split="val",
        cache_dir=tiny["cache"], slic_workers=1, num_workers=0, quiet=True, out=out,
        **settings,
    )  # fmt: skip


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------------------
# The algorithm on a fixed batch


def _batch(dataset, cache_dir: Path, n: int = 4) -> dict[str, torch.Tensor]:
    cache = SuperpixelCache(dataset, cache_dir=cache_dir, workers=1, progress=False)
    items = TrainingDataset(dataset, cache, crop_size=None, flip=False)
    return collate([items[i] for i in range(n)])


@pytest.mark.parametrize(
    ("preset", "data", "q"),
    [
        ("base-cifar10", "folder", 16),
        ("classifier-cifar10", "cifar", None),
        ("autoencoder-cifar10", "folder", 16),
        ("classifier-msrc", "msrc", 8),
    ],
)
def test_loss_falls_on_a_fixed_batch(tiny, preset, data, q):
    if data == "folder":
        dataset = open_dataset("folder", tiny["folder"], "train", 32)
    elif data == "cifar":
        dataset = open_dataset("cifar10", tiny["cifar"], "train")
    else:
        dataset = open_dataset("msrc", tiny["msrc"], "train")
    batch = _batch(dataset, tiny["cache"])
    torch.manual_seed(0)
    overrides = {} if q is None else {"q": q}
    model = build_model(preset, **overrides)
    module = SegmentationModule(
        model, optimizer="adam", lr=0.01, multi_label=preset.endswith("msrc")
    )
    optimizer = module.configure_optimizers()["optimizer"]
    losses, aux = [], []
    for _ in range(15):
        terms = module.compute_losses(batch)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(terms["loss"].item())
        aux.append(float(terms["loss_aux"]))
    assert losses[-1] < 0.7 * losses[0], losses
    if preset.startswith("base"):
        assert np.isnan(aux).all()
    else:
        assert np.isfinite(aux).all() and aux[-1] < aux[0]
    assert 1 <= float(terms["unique_labels"]) <= model.q


def test_padding_is_ignored_and_label_slic_ids_wrap_modulo_q():
    labels = torch.tensor([[[0, 0, 1], [2, 2, 1]], [[3, 3, 3], [3, 0, 0]]])
    valid = torch.ones_like(labels, dtype=torch.bool)
    valid[1, 1, 1:] = False  # the label 0 of image 1 lies in the padding
    assert count_unique_labels(labels, valid, 4).tolist() == [3, 1]

    torch.manual_seed(0)
    module = SegmentationModule(build_model("base-cifar10", q=3), refine="label-slic")
    image = torch.rand(2, 3, 16, 16)
    superpixels = torch.zeros(2, 16, 16, dtype=torch.int64)
    superpixels[:, 12:] = -1  # padding rows
    targets = module.refinement(torch.randint(0, 3, (2, 16, 16)), superpixels)
    assert (targets[:, 12:] == IGNORE_INDEX).all()
    assert 0 <= int(targets[:, :12].min()) and int(targets[:, :12].max()) < 3
    batch = {"image": image, "superpixels": superpixels, "target": torch.zeros(2).long()}
    terms = module.compute_losses(batch)
    assert torch.isfinite(terms["loss"])
    # The segmentation term is the one step of unsupseg.algorithm, nothing else.
    module.eval()
    with torch.no_grad():
        expected, _, _ = self_training_loss(module(image).response, superpixels, module.refinement)
        assert torch.equal(module.compute_losses(batch)["loss_seg"], expected)


def test_epoch_sampler_depends_on_seed_and_epoch_only():
    sampler = EpochSampler(10, shuffle=True, seed=3)
    sampler.set_epoch(1)
    first = list(sampler)
    assert all(epoch == 1 for epoch, _ in first)
    assert sorted(i for _, i in first) == list(range(10))
    assert list(sampler) == first
    sampler.set_epoch(2)
    assert [i for _, i in sampler] != [i for _, i in first]
    ranks = [EpochSampler(10, shuffle=True, seed=3, rank=r, world_size=3) for r in range(3)]
    for r in ranks:
        r.set_epoch(1)
    shards = [[i for _, i in r] for r in ranks]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded to equal length
    assert set().union(*shards) == set(range(10))
    val = EpochSampler(5, shuffle=False, rank=1, world_size=2, pad=False)
    assert [i for _, i in val] == [1, 3]


# --------------------------------------------------------------------------------------
# Settings and data


def test_config_has_defaults_and_the_preset_fills_it(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert TrainConfig().preset == "base-bsds500"  # every field has a default
    documented = TrainConfig.__doc__
    assert all(f.name in documented for f in dataclasses.fields(TrainConfig))
    config = resolve_config(TrainConfig(preset="base-cifar10", data_root=tiny["folder"]))
    assert list(config.settings()) == SETTINGS_KEYS
    assert config.out == str(Path("runs") / "base-cifar10")  # relative to the current dir
    preset = get_preset("base-cifar10")
    assert (config.epochs, config.lr, config.q) == (preset.epochs, preset.lr, preset.q)
    assert (config.crop_size, config.image_size, config.val_split) == (None, 32, "test")
    assert (config.refine, config.seed, config.log_every, config.figures_every) == (
        "superpixel-vote", 0, 50, 1
    )  # fmt: skip
    assert config.device == "cpu" or config.device.startswith("cuda")
    assert config.data_root == str(tiny["folder"].resolve())
    # n_segments / compactness set the SLIC of the chosen refinement.
    slic = resolve_config(TrainConfig(preset="base-cifar10", data_root=".", n_segments=50))
    assert (slic.slic_segments, slic.label_slic_segments) == (50, 7)
    label = resolve_config(
        TrainConfig(preset="base-cifar10", data_root=".", refine="label-slic", n_segments=5,
                    compactness=0.5, crop_size=0, val_split="none")
    )  # fmt: skip
    assert (label.slic_segments, label.label_slic_segments) == (None, 5)
    assert (label.label_slic_compactness, label.crop_size, label.val_split) == (0.5, None, None)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"preset": "nope"}, "unknown preset"),
        ({"epochs": 0}, "epochs must be"),
        ({"lr": float("nan")}, "lr must be"),
        ({"refine": "vote"}, "refine must be one of"),
        ({"optimizer": "lbfgs"}, "optimizer must be"),
        ({"image_size": 64}, "image_size is the preset's"),
        ({"device": "cpu", "precision": "bf16-mixed"}, "needs a GPU"),
    ],
)
def test_invalid_settings_are_config_errors(settings, message):
    config = TrainConfig(**{"preset": "base-cifar10", "data_root": ".", **settings})
    with pytest.raises(ConfigError, match=message):
        resolve_config(config)


def test_msrc_validation_is_every_fifth_image(tiny, tmp_path):
    config = resolve_config(
        TrainConfig(preset="classifier-msrc", data_root=tiny["msrc"], out=tmp_path / "run")
    )
    assert config.val_split == "holdout" and config.crop_size == 160
    train_set, val, description = open_training_sets(config)
    all_ids = open_dataset("msrc", tiny["msrc"], "train").ids
    assert val.ids == all_ids[::5] and train_set.ids == [i for i in all_ids if i not in val.ids]
    assert "every 5th" in description
    assert train_set.multilabel and train_set.label(0).shape == (23,)


def test_default_data_root_and_clear_errors(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UNSUPSEG_DATA", raising=False)
    with pytest.raises(DatasetError, match="stl10_binary"):
        resolve_config(TrainConfig(preset="base-stl10"))
    (tmp_path / "data" / "cifar10_partial").mkdir(parents=True)
    monkeypatch.setenv("UNSUPSEG_DATA", str(tmp_path / "data"))
    config = resolve_config(TrainConfig(preset="base-cifar10"))
    assert config.data_root == str((tmp_path / "data" / "cifar10_partial").resolve())
    # The classifier needs image labels; a folder has none.
    with pytest.raises(ConfigError, match="image-level labels"):
        train(folder_config(tiny, tmp_path / "c", preset="classifier-msrc"))
    # On the command line, a data set that is not there is one line and exit status 2.
    code = train_cli(
        "--preset", "base-bsds500", "--data-root", tmp_path / "nothing", "--out", tmp_path / "d"
    )
    assert code == 2 and "images/{train,val}" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_every_option_has_help_and_is_a_config_field():
    commands = build_parser()._subparsers._group_actions[0].choices
    options = [a for a in commands["train"]._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 30
    assert all(a.help for a in options), [a.dest for a in options if not a.help]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert {a.dest for a in options} <= fields
    out = next(a for a in options if a.dest == "out")
    assert "runs/<preset>" in out.help and "current directory" in out.help


def test_train_is_documented_in_the_package():
    assert unsupseg.train is train and unsupseg.TrainConfig is TrainConfig
    for section in ("Parameters", "Returns", "Raises", "Examples"):
        assert section in train.__doc__, section
    done = subprocess.run(
        [sys.executable, "-c", "import sys, unsupseg.training; print('torch' in sys.modules)"],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    assert done.stdout.strip() == "False"  # importing the package has no heavy side effect


def test_figures_take_the_empty_cells_of_metrics_csv(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(
        ",".join(METRICS_COLUMNS) + "\n1,2,train,1.5,1.5,,4.5,0.001,0.2\n"
        "1,2,val,1.25,1.25,,3,,0.3\n"
    )
    rows = read_metrics(path)
    assert rows[0]["loss_aux"] is None
    save_loss_curves(tmp_path / "loss.png", rows)
    save_unique_labels_curve(tmp_path / "unique.png", rows)
    assert Image.open(tmp_path / "loss.png").size[0] > 200
    assert Image.open(tmp_path / "unique.png").size[0] > 200


# --------------------------------------------------------------------------------------
# A whole run: outputs, checkpoints, predictions


@pytest.fixture(scope="module")
def autoencoder_run(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ae"
    result = train(
        folder_config(
            tiny, out, preset="autoencoder-cifar10", q=16, epochs=2, batch_size=4,
            optimizer="adam", lr=0.01, log_every=1,
        )
    )  # fmt: skip
    assert result.out == out and result.rank == 0
    assert result.model_last == out / "checkpoints" / "model-last.pt"
    return out


def test_run_writes_metrics_figures_and_checkpoints(autoencoder_run):
    out = autoencoder_run
    config = json.loads((out / "config.json").read_text())
    assert list(config["settings"]) == SETTINGS_KEYS
    assert config["settings"]["q"] == 16 and config["settings"]["epochs"] == 2
    assert config["train_images"] == 8 and config["val_images"] == 4
    assert {"torch", "lightning"} <= set(config["versions"])
    rows = read_csv(out / "metrics.csv")
    assert tuple(rows[0]) == METRICS_COLUMNS
    epochs = [(r["epoch"], r["split"]) for r in rows if r["split"] != "train_step"]
    assert epochs == [("1", "train"), ("1", "val"), ("2", "train"), ("2", "val")]
    steps = [int(r["step"]) for r in rows if r["split"] == "train_step"]
    assert steps == [1, 2, 3, 4]  # 8 images in batches of 4, logged every step
    for row in rows:
        assert float(row["loss"]) == pytest.approx(
            float(row["loss_seg"]) + float(row["loss_aux"]), rel=1e-4
        )
        assert 1 <= float(row["unique_labels"]) <= 16
    for name in ("last.ckpt", "best.ckpt", "model-last.pt", "model-best.pt"):
        assert (out / "checkpoints" / name).is_file()
    figures = out / "figures"
    for name in ("panel_epoch001.png", "panel_epoch002.png", "loss_curves.png",
                 "unique_labels.png", "merging.png"):  # fmt: skip
        assert Image.open(figures / name).size[0] > 200, name
    assert sorted(p.name for p in (figures / "snapshots").iterdir()) == [
        "epoch000.npz", "epoch001.npz", "epoch002.npz"
    ]  # fmt: skip
    if config["versions"].get("tensorboard"):
        assert any((out / "tensorboard").glob("events.out.tfevents.*"))
    assert not list(out.rglob(".*.tmp"))  # atomic writes leave no temporaries


def test_checkpoints_load_with_weights_only_and_reproduce_the_run(autoencoder_run, tiny):
    checkpoints = autoencoder_run / "checkpoints"
    for name in ("last.ckpt", "best.ckpt", "model-last.pt", "model-best.pt"):
        assert isinstance(torch.load(checkpoints / name, weights_only=True), dict)
    # The file format: the plain checkpoint's keys, and the Lightning checkpoint's
    # record without progress (Lightning's own epoch and global_step say it).
    plain = torch.load(checkpoints / "model-last.pt", weights_only=True)
    assert set(plain) == PLAIN_CHECKPOINT_KEYS
    lightning = torch.load(checkpoints / "last.ckpt", weights_only=True)
    assert set(lightning["unsupseg"]) == PLAIN_CHECKPOINT_KEYS - {
        "epoch", "global_step", "metrics", "state_dict"
    }  # fmt: skip
    checkpoint = load_checkpoint(checkpoints / "model-last.pt", "cpu")
    model, info = checkpoint.model, checkpoint.info
    assert not model.training and model.q == 16
    assert info.preset == "autoencoder-cifar10"
    assert info.model_overrides == {"q": 16, "padding": "zeros"}
    assert info.image_size == 32 and info.refine["method"] == "superpixel-vote"
    assert info.epoch == 2 and info.global_step == 4 and info.metrics["monitor"] == "val/loss"
    assert info.settings == json.loads((autoencoder_run / "config.json").read_text())["settings"]
    # The model in last.ckpt is the same as in model-last.pt.
    same = load_checkpoint(checkpoints / "last.ckpt", architecture="autoencoder")
    assert same.info.global_step == 4 and same.info.settings == info.settings
    assert same.info.epoch == info.epoch == 2  # epochs done, as in model-last.pt
    for key, value in model.state_dict().items():
        assert torch.equal(value, same.model.state_dict()[key]), key
    # Its argmax on the first validation image is the last snapshot of the run.
    image = open_dataset("folder", tiny["folder"], "val", 32).image(0)
    x = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    x = (x - x.min()) / (x.max() - x.min())
    with torch.no_grad():
        argmax = model(x).response.argmax(1)[0].numpy()
    with np.load(autoencoder_run / "figures" / "snapshots" / "epoch002.npz") as snapshot:
        np.testing.assert_array_equal(argmax, snapshot["image0"])


def test_checkpoint_safety(autoencoder_run, tmp_path):
    plain = autoencoder_run / "checkpoints" / "model-last.pt"
    with pytest.raises(CheckpointError, match="preset 'autoencoder-cifar10'.*not the 'base-"):
        load_checkpoint(plain, preset="base-cifar10")
    with pytest.raises(CheckpointError, match="'autoencoder' model.*not the 'classifier'"):
        load_checkpoint(plain, architecture="classifier")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x89PNG" + os.urandom(2048))
    with pytest.raises(CheckpointError, match="not an unsupseg checkpoint.*not a PyTorch file"):
        load_checkpoint(junk)
    junk.write_bytes(b"\x80\x02" + os.urandom(2048))  # a pickle's first bytes, then noise
    with pytest.raises(CheckpointError, match="not an unsupseg checkpoint"):
        load_checkpoint(junk)
    torch.save({"model": torch.nn.Linear(2, 2)}, junk)  # a pickled module, not plain values
    with pytest.raises(CheckpointError, match="objects other than tensors and plain values"):
        load_checkpoint(junk)
    best = re.escape(str(plain.parent / "model-best.pt"))
    with pytest.raises(CheckpointError, match=f"is a folder.*pass {best}"):
        load_checkpoint(autoencoder_run)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(CheckpointError, match="not an unsupseg checkpoint"):
        load_checkpoint(foreign)
    tampered = torch.load(plain, weights_only=True)
    tampered["model_overrides"] = {"q": 8}
    torch.save(tampered, tmp_path / "tampered.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "tampered.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_an_existing_run_is_not_overwritten(autoencoder_run, tiny, capsys):
    before = {p: p.read_bytes() for p in (autoencoder_run / "checkpoints").iterdir()}
    before[autoencoder_run / "metrics.csv"] = (autoencoder_run / "metrics.csv").read_bytes()
    with pytest.raises(ConfigError, match="--resume"):
        train(folder_config(tiny, autoencoder_run, preset="autoencoder-cifar10"))
    with pytest.raises(ConfigError, match="holds a run of preset 'autoencoder-cifar10'"):
        train(folder_config(tiny, autoencoder_run, preset="base-cifar10", resume=True))
    with pytest.raises(ConfigError, match="trained with q=16"):
        train(folder_config(tiny, autoencoder_run, preset="autoencoder-cifar10", q=8,
                            resume=True))  # fmt: skip
    assert {p: p.read_bytes() for p in before} == before
    # The command line says so in one line, with exit status 2.
    code = train_cli("--preset", "autoencoder-cifar10", *folder_args(tiny, autoencoder_run))
    assert code == 2 and "--resume" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# Resume, DDP, real data


def test_resume_reaches_the_weights_of_an_uninterrupted_run(tiny, tmp_path):
    """Classifier (dropout: the global generator), SGD momentum, StepLR every epoch."""
    common = dict(
        preset="classifier-cifar10", data_root=tiny["cifar"], batch_size=3, lr=0.05,
        lr_step_size=1, lr_gamma=0.5, seed=5, figures_every=5, cache_dir=tiny["cache"],
        slic_workers=1, num_workers=0, quiet=True,
    )  # fmt: skip
    train(TrainConfig(**common, epochs=2, out=tmp_path / "straight"))
    train(TrainConfig(**common, epochs=1, out=tmp_path / "split"))
    # Resume with only what changes: the rest comes from the stored config.json.
    resumed_run = train(
        TrainConfig(preset="classifier-cifar10", epochs=2, resume=True, quiet=True,
                    cache_dir=tiny["cache"], num_workers=0, out=tmp_path / "split")
    )  # fmt: skip
    assert resumed_run.config.lr == 0.05 and resumed_run.config.data_root == str(tiny["cifar"])
    straight = torch.load(tmp_path / "straight/checkpoints/last.ckpt", weights_only=True)
    resumed = torch.load(tmp_path / "split/checkpoints/last.ckpt", weights_only=True)
    assert straight["epoch"] == resumed["epoch"] and straight["global_step"] == 8
    for key, value in straight["state_dict"].items():  # BatchNorm running stats included
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert straight["lr_schedulers"] == resumed["lr_schedulers"]
    for a, b in zip(
        straight["optimizer_states"][0]["state"].values(),
        resumed["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        assert torch.equal(a["momentum_buffer"], b["momentum_buffer"])
    rows_straight = read_csv(tmp_path / "straight/metrics.csv")
    rows_resumed = read_csv(tmp_path / "split/metrics.csv")
    strip = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in rows_straight] == [
        {k: v for k, v in r.items() if k not in strip} for r in rows_resumed
    ]
    assert [r["lr"] for r in rows_straight if r["split"] == "train"] == ["0.05", "0.025"]
    settings = [
        json.loads((tmp_path / run / "config.json").read_text())["settings"]
        for run in ("straight", "split")
    ]
    differ = {k for k in SETTINGS_KEYS if settings[0][k] != settings[1][k]}
    assert differ == {"out", "resume", "slic_workers"}  # workers: this process's, not stored


def test_two_process_ddp_on_cpu(tiny, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "unsupseg.cli", "train", "--preset", "base-cifar10", "--q", "8", "--epochs", "1",
        "--batch-size", "2", "--log-every", "1", "--refine", "label-slic",
        *map(str, folder_args(tiny, out)),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("done: ") == 1  # only the first process says where it is
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    rows = read_csv(out / "metrics.csv")
    # 8 images, 2 processes x batches of 2: 2 optimiser steps.
    assert [r["step"] for r in rows if r["split"] == "train_step"] == ["1", "2"]
    checkpoint = load_checkpoint(out / "checkpoints" / "model-last.pt", preset="base-cifar10")
    assert checkpoint.info.global_step == 2 and checkpoint.model.q == 8
    assert checkpoint.info.refine == {"method": "label-slic", "n_segments": 7, "compactness": 1e-4}
    assert (out / "checkpoints" / "last.ckpt").is_file()


def test_real_bsds500_photos_preset(bsds500, tmp_path, capsys):
    out = tmp_path / "bsds"
    code = train_cli(
        "--preset", "base-bsds500", "--data-root", bsds500, "--limit", "4", "--val-limit", "2",
        "--epochs", "1", "--crop-size", "48", "--batch-size", "2", "--cache-dir",
        tmp_path / "cache", "--slic-workers", "1", "--num-workers", "0", "--quiet",
        "--out", out,
    )  # fmt: skip
    assert code == 0
    assert f"done: {out / 'metrics.csv'}" in capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    assert config["train_images"] == 4 and config["val_images"] == 2
    assert config["validation"] == "bsds500 split 'val'"
    rows = read_csv(out / "metrics.csv")
    assert {r["split"] for r in rows} >= {"train", "val"}
    assert (out / "figures" / "panel_epoch001.png").is_file()
    info = load_checkpoint(out / "checkpoints" / "model-best.pt", preset="base-bsds500").info
    assert info.image_size is None and info.crop_size == 48


# --------------------------------------------------------------------------------------
# Refused in one line, before any work


def one_line_error(capsys) -> str:
    """The one line the command line wrote to stderr (it fails when there are more)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


def test_an_out_that_is_a_file_is_refused_before_any_work(tiny, tmp_path, capsys):
    cache = tmp_path / "cache"
    file = tmp_path / "notes.txt"
    file.write_text("not a run folder")
    for out in (file, file / "run"):
        args = folder_args(tiny, out)
        args[args.index(tiny["cache"])] = cache
        code = train_cli("--preset", "base-cifar10", "--q", "4", "--epochs", "1", *args)
        assert code == 2 and "is a file, not a folder" in one_line_error(capsys)
    assert file.read_text() == "not a run folder" and not cache.exists()


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: one made read-only, or, for root
    (which writes there anyway), /sys."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):
        try:
            (candidate / ".probe").touch()
        except OSError:
            return candidate
        (candidate / ".probe").unlink()
    pytest.skip("no folder here refuses to be written to")


def test_an_out_that_cannot_be_written_is_refused_before_any_work(tiny, tmp_path, capsys):
    read_only = _read_only_folder(tmp_path)
    before = sorted(read_only.iterdir())
    cache = tmp_path / "cache"
    try:
        for out in (read_only, read_only / "unsupseg-run" / "x"):
            args = folder_args(tiny, out)
            args[args.index(tiny["cache"])] = cache
            code = train_cli("--preset", "base-cifar10", "--q", "4", "--epochs", "1", *args)
            line = one_line_error(capsys)
            assert code == 2 and f"--out {out} is not writable" in line, line
        assert sorted(read_only.iterdir()) == before and not cache.exists()
    finally:
        (tmp_path / "read-only").chmod(0o755)


@pytest.mark.parametrize("when", ["before", "during"])
def test_a_corrupt_training_image_is_one_line_naming_it(tiny, tmp_path, capsys, monkeypatch,
                                                         when):  # fmt: skip
    """Garbage bytes with a .png name: found before training (the superpixel cache), or,
    when the file goes bad during the run, by a DataLoader worker, whose error arrives
    with the worker's traceback in its message."""
    from unsupseg.training.recorder import TrainingRecorder

    root = tmp_path / "folder"
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        for image in sorted((tiny["folder"] / split).iterdir())[:4]:
            (root / split / image.name).write_bytes(image.read_bytes())
    bad = root / "train" / "img1.png"
    garbage = b"garbage, not an image " * 10
    if when == "before":
        bad.write_bytes(garbage)
    else:
        epoch_end = TrainingRecorder.on_train_epoch_end

        def corrupt_after(self, trainer, pl_module):
            epoch_end(self, trainer, pl_module)
            bad.write_bytes(garbage)

        monkeypatch.setattr(TrainingRecorder, "on_train_epoch_end", corrupt_after)
    args = folder_args({**tiny, "folder": root, "cache": tmp_path / "cache"}, tmp_path / "run")
    args[args.index("--num-workers") + 1] = "2"
    code = train_cli("--preset", "base-cifar10", "--q", "4", "--epochs", "2", *args)
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if not line.startswith(("training ", "epoch 1/2"))]
    assert code == 2 and len(errors) == 1, lines
    assert str(bad) in errors[0] and "Traceback" not in errors[0], errors


FLOAT_FIELDS = [
    f.name for f in dataclasses.fields(TrainConfig) if "float" in str(f.type)
]  # fmt: skip


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused_for_every_float_setting(value):
    assert {"lr", "momentum", "lr_gamma", "aux_weight", "compactness"} <= set(FLOAT_FIELDS)
    for name in FLOAT_FIELDS:
        config = TrainConfig(preset="base-cifar10", data_root=".", **{name: value})
        with pytest.raises(ConfigError, match=f"{name} must be a finite number"):
            resolve_config(config)


def test_nan_and_infinity_options_are_one_line(capsys):
    commands = build_parser()._subparsers._group_actions[0].choices
    floats = [a for a in commands["train"]._actions if a.dest in FLOAT_FIELDS]
    assert {a.dest for a in floats} == {"lr", "momentum", "lr_gamma", "aux_weight",
                                        "compactness"}  # fmt: skip
    for action in floats:
        for text in ("nan", "inf", "-inf", "1e999"):
            with pytest.raises(SystemExit) as exit_info:
                train_cli("--preset", "base-cifar10", f"{action.option_strings[0]}={text}")
            line = one_line_error(capsys)
            assert exit_info.value.code == 2 and "finite number" in line, line
            assert action.option_strings[0] in line


def test_a_stored_setting_that_is_not_finite_is_refused_on_resume(tiny, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    settings = {"preset": "base-cifar10", "q": 16, "lr": float("nan")}
    (out / "config.json").write_text(json.dumps({"settings": settings}))
    config = TrainConfig(preset="base-cifar10", data_root=tiny["folder"], out=out, resume=True)
    with pytest.raises(ConfigError, match="lr must be a finite number"):
        resolve_config(config)
