"""Dataset-level training: the algorithm, outputs, resume, DDP and checkpoint safety.

Tiny data sets are written in their real formats (a folder of PNGs with train/ and val/,
pickled CIFAR-10 batches, an MSRC-v2 folder); one run uses the real BSDS500 when
``../shared/data`` is present.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unsupseg.data import SuperpixelCache, TrainingDataset, collate, open_dataset
from unsupseg.lightning import EpochSampler, SegmentationModule, count_unique_labels
from unsupseg.models import build_model
from unsupseg.train import (
    CSV_COLUMNS,
    TrainError,
    build_train_parser,
    default_data_root,
    load_checkpoint,
    load_trained_model,
    open_training_sets,
    resolve_settings,
    run_train,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the test machines are small and shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _blocks(rng: np.random.Generator, height: int = 32, width: int = 32) -> np.ndarray:
    """Three vertical colour bands and a brighter lower part, with noise."""
    image = np.zeros((height, width, 3))
    colours = rng.integers(0, 256, (3, 3))
    for band, colour in zip(np.array_split(np.arange(width), 3), colours, strict=True):
        image[:, band] = colour
    image[rng.integers(height // 4, 3 * height // 4) :] += 40
    image += rng.normal(0, 8, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_cifar(root: Path, per_batch: int = 2, test: int = 4) -> Path:
    rng = np.random.default_rng(7)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for batch in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = test if batch == "test_batch" else per_batch
        images = np.stack([_blocks(rng) for _ in range(n)])
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
        Image.fromarray(_blocks(rng, 24, 30)).save(root / "images" / f"1_{2 * i + 2}_s.png")
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
            Image.fromarray(_blocks(rng)).save(root / "folder" / split / f"img{i}.png")
    write_cifar(root / "cifar")
    write_msrc(root / "msrc")
    return {
        "folder": root / "folder",
        "cifar": root / "cifar",
        "msrc": root / "msrc",
        "cache": root / "cache",
    }


def train_cli(*argv: str) -> int:
    """``unsupseg train ARGS`` through this module's parser."""
    args = build_train_parser().parse_args(["train", *map(str, argv)])
    return run_train(args)


def folder_args(tiny: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return [
        "--dataset", "folder", "--data-root", tiny["folder"], "--split", "train",
        "--val-split", "val", "--cache-dir", tiny["cache"], "--slic-workers", "1",
        "--num-workers", "0", "--quiet", "--out", out, *extra,
    ]  # fmt: skip


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


def test_padding_is_ignored_and_label_slic_ids_wrap_modulo_q(tiny):
    labels = torch.tensor([[[0, 0, 1], [2, 2, 1]], [[3, 3, 3], [3, 0, 0]]])
    valid = torch.ones_like(labels, dtype=torch.bool)
    valid[1, 1, 1:] = False  # the label 0 of image 1 lies in the padding
    assert count_unique_labels(labels, valid, 4).tolist() == [3, 1]

    torch.manual_seed(0)
    module = SegmentationModule(build_model("base-cifar10", q=3), refine="label-slic")
    image = torch.rand(2, 3, 16, 16)
    superpixels = torch.zeros(2, 16, 16, dtype=torch.int64)
    superpixels[:, 12:] = -1  # padding rows
    targets = module.refine(torch.randint(0, 3, (2, 16, 16)), superpixels)
    assert 0 <= int(targets.min()) and int(targets.max()) < 3
    terms = module.compute_losses(
        {"image": image, "superpixels": superpixels, "target": torch.zeros(2, dtype=torch.long)}
    )
    assert torch.isfinite(terms["loss"])


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
# Data and settings


def test_msrc_validation_is_every_fifth_image(tiny, tmp_path):
    args = build_train_parser().parse_args(
        ["train", "--preset", "classifier-msrc", "--data-root", str(tiny["msrc"]),
         "--out", str(tmp_path / "run")]
    )  # fmt: skip
    settings = resolve_settings(args)
    assert settings.val_split == "holdout" and settings.crop_size == 160
    train, val, description = open_training_sets(settings)
    all_ids = open_dataset("msrc", tiny["msrc"], "train").ids
    assert val.ids == all_ids[::5] and train.ids == [i for i in all_ids if i not in val.ids]
    assert "every 5th" in description
    assert train.multilabel and train.label(0).shape == (23,)


def test_default_data_root_and_clear_errors(tiny, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UNSUPSEG_DATA", raising=False)
    with pytest.raises(TrainError, match="stl10_binary"):
        default_data_root("stl10")
    (tmp_path / "data" / "cifar10_partial").mkdir(parents=True)
    monkeypatch.setenv("UNSUPSEG_DATA", str(tmp_path / "data"))
    assert default_data_root("cifar10") == tmp_path / "data" / "cifar10_partial"
    # The classifier needs image labels; a folder has none.
    code = train_cli("--preset", "classifier-msrc", *folder_args(tiny, tmp_path / "c"))
    assert code == 2 and "image-level labels" in caplog.text
    code = train_cli(
        "--preset", "base-bsds500", "--data-root", tmp_path / "nothing", "--out", tmp_path / "d"
    )
    assert code == 2 and "images/{train,val}" in caplog.text


def test_every_option_has_help():
    parser = build_train_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    options = [a for a in train_parser._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 30
    assert all(a.help for a in options), [a.dest for a in options if not a.help]


# --------------------------------------------------------------------------------------
# A whole run: outputs, checkpoints, predictions


@pytest.fixture(scope="module")
def autoencoder_run(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "ae"
    code = train_cli(
        "--preset", "autoencoder-cifar10", "--q", "16", "--epochs", "2", "--batch-size", "4",
        "--optimizer", "adam", "--lr", "0.01", "--log-every", "1",
        *folder_args(tiny, out),
    )  # fmt: skip
    assert code == 0
    return out


def test_run_writes_metrics_figures_and_checkpoints(autoencoder_run):
    out = autoencoder_run
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["q"] == 16 and config["settings"]["epochs"] == 2
    assert config["train_images"] == 8 and config["val_images"] == 4
    assert {"torch", "lightning"} <= set(config["versions"])
    rows = read_csv(out / "metrics.csv")
    assert tuple(rows[0]) == CSV_COLUMNS
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
    model, info = load_trained_model(checkpoints / "model-last.pt", "cpu")
    assert not model.training and model.q == 16
    assert info["preset"] == "autoencoder-cifar10" and info["model_overrides"] == {"q": 16}
    assert info["image_size"] == 32 and info["refine"]["method"] == "superpixel-vote"
    assert info["epoch"] == 2
    # The model in last.ckpt is the same as in model-last.pt.
    same, _ = load_checkpoint(checkpoints / "last.ckpt", architecture="autoencoder")
    for key, value in model.state_dict().items():
        assert torch.equal(value, same.state_dict()[key]), key
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
    with pytest.raises(ValueError, match="preset 'autoencoder-cifar10'.*not the 'base-cifar10'"):
        load_checkpoint(plain, preset="base-cifar10")
    with pytest.raises(ValueError, match="'autoencoder' model.*not the 'classifier'"):
        load_checkpoint(plain, architecture="classifier")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(2048))
    with pytest.raises(ValueError, match="not an unsupseg checkpoint"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(ValueError, match="not an unsupseg checkpoint"):
        load_checkpoint(foreign)
    tampered = torch.load(plain, weights_only=True)
    tampered["model_overrides"] = {"q": 8}
    torch.save(tampered, tmp_path / "tampered.pt")
    with pytest.raises(ValueError, match="do not fit"):
        load_checkpoint(tmp_path / "tampered.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_an_existing_run_is_not_overwritten(autoencoder_run, tiny, caplog):
    code = train_cli("--preset", "autoencoder-cifar10", *folder_args(tiny, autoencoder_run))
    assert code == 2 and "--resume" in caplog.text
    code = train_cli(
        "--preset", "base-cifar10", "--resume", *folder_args(tiny, autoencoder_run)
    )  # fmt: skip
    assert code == 2 and "autoencoder-cifar10" in caplog.text


# --------------------------------------------------------------------------------------
# Resume, DDP, real data


def test_resume_reaches_the_weights_of_an_uninterrupted_run(tiny, tmp_path):
    """Classifier (dropout: the global generator), SGD momentum, StepLR every epoch."""
    common = [
        "--preset", "classifier-cifar10", "--data-root", tiny["cifar"], "--batch-size", "3",
        "--lr", "0.05", "--lr-step-size", "1", "--lr-gamma", "0.5", "--seed", "5",
        "--figures-every", "5", "--cache-dir", tiny["cache"], "--slic-workers", "1",
        "--num-workers", "0", "--quiet",
    ]  # fmt: skip
    assert train_cli(*common, "--epochs", "2", "--out", tmp_path / "straight") == 0
    assert train_cli(*common, "--epochs", "1", "--out", tmp_path / "split") == 0
    # Resume with only what changes: the rest comes from the stored config.json.
    assert train_cli(
        "--preset", "classifier-cifar10", "--epochs", "2", "--resume", "--quiet",
        "--cache-dir", tiny["cache"], "--num-workers", "0", "--out", tmp_path / "split",
    ) == 0  # fmt: skip
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


def test_two_process_ddp_on_cpu(tiny, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "unsupseg.train", "--preset", "base-cifar10", "--q", "8", "--epochs", "1",
        "--batch-size", "2", "--log-every", "1", "--refine", "label-slic",
        *map(str, folder_args(tiny, out)),
    ]  # fmt: skip
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    rows = read_csv(out / "metrics.csv")
    # 8 images, 2 processes x batches of 2: 2 optimiser steps.
    assert [r["step"] for r in rows if r["split"] == "train_step"] == ["1", "2"]
    model, info = load_checkpoint(out / "checkpoints" / "model-last.pt", preset="base-cifar10")
    assert info["global_step"] == 2 and model.q == 8
    assert info["refine"] == {"method": "label-slic", "n_segments": 7, "compactness": 1e-4}
    assert (out / "checkpoints" / "last.ckpt").is_file()


def test_real_bsds500_photos_preset(bsds500, tmp_path):
    out = tmp_path / "bsds"
    code = train_cli(
        "--preset", "base-bsds500", "--data-root", bsds500, "--limit", "4", "--val-limit", "2",
        "--epochs", "1", "--crop-size", "48", "--batch-size", "2", "--cache-dir",
        tmp_path / "cache", "--slic-workers", "1", "--num-workers", "0", "--quiet",
        "--out", out,
    )  # fmt: skip
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["train_images"] == 4 and config["val_images"] == 2
    assert config["validation"] == "bsds500 split 'val'"
    rows = read_csv(out / "metrics.csv")
    assert {r["split"] for r in rows} >= {"train", "val"}
    assert (out / "figures" / "panel_epoch001.png").is_file()
    _, info = load_checkpoint(out / "checkpoints" / "model-best.pt", preset="base-bsds500")
    assert info["image_size"] is None and info["crop_size"] == 48
