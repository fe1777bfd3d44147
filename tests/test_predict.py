"""Segmenting new images with a trained checkpoint: :mod:`unsupseg.inference` and
``unsupseg predict``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import band_image
from PIL import Image

from unsupseg.cli import main
from unsupseg.errors import ConfigError
from unsupseg.inference import channel_labels, predict, predict_batch
from unsupseg.io import read_image
from unsupseg.models import build_model
from unsupseg.models.checkpoint import Checkpoint, CheckpointInfo, load_checkpoint
from unsupseg.outputs import OUTPUT_FILES

#: One intra-op torch thread in every test: the machines are small and shared.
pytestmark = pytest.mark.usefixtures("one_thread")

@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A folder with train/ (8) and val/ (4) 32x32 PNGs of colour bands."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("val", 4)):
        (root / split).mkdir()
        for i in range(n):
            Image.fromarray(band_image(rng)).save(root / split / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def run(images, tmp_path_factory) -> Path:
    """A run folder of a real (tiny) training: autoencoder, q = 16, two epochs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs") / "ae"
    try:
        code = main([
            "train", "--preset", "autoencoder-cifar10", "--q", "16", "--epochs", "2",
            "--batch-size", "4", "--optimizer", "adam", "--lr", "0.01", "--log-every", "1",
            "--dataset", "folder", "--data-root", str(images), "--split", "train",
            "--val-split", "val", "--cache-dir", str(images.parent / "cache"),
            "--slic-workers", "1", "--num-workers", "0", "--quiet", "--out", str(out),
        ])  # fmt: skip
    finally:
        torch.set_num_threads(before)
    assert code == 0
    return out


@pytest.fixture(scope="module")
def last(run) -> Path:
    return run / "checkpoints" / "model-last.pt"


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label maps split the pixels identically (ids may differ)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def val_images(images: Path) -> list[np.ndarray]:
    return [read_image(images / "val" / f"img{i}.png") for i in range(4)]


# --------------------------------------------------------------------------------------
# The library


def test_predict_batch_reproduces_the_training_snapshots(run, last, images):
    checkpoint = load_checkpoint(last)
    results = predict_batch(checkpoint, val_images(images))
    with np.load(run / "figures" / "snapshots" / "epoch002.npz") as snapshot:
        for index, result in enumerate(results):  # the run's samples: the val images
            assert result.labels.shape == (32, 32)
            assert same_partition(result.labels, snapshot[f"image{index}"]), index
            assert result.n_iterations == 0 and result.superpixels is None
            assert result.reconstruction.shape == (32, 32, 3)  # an autoencoder
    assert results[0].params["checkpoint_preset"] == "autoencoder-cifar10"
    # predict is the labels of predict_batch
    np.testing.assert_array_equal(predict(checkpoint, val_images(images)[1]), results[1].labels)


def test_refine_and_finetune(last, images):
    checkpoint = load_checkpoint(last)
    image = val_images(images)[1]
    weights = {k: v.clone() for k, v in checkpoint.model.state_dict().items()}
    (plain,) = predict_batch(checkpoint, [image])
    (refined,) = predict_batch(checkpoint, [image], refine=True)
    # the vote keeps a subset of the argmax labels: each refined label is an argmax one
    assert len(np.unique(refined.labels)) <= len(np.unique(plain.labels))
    assert same_partition(refined.argmax, plain.argmax)
    assert refined.superpixels.shape == image.shape[:2]
    for label in np.unique(refined.labels):
        assert (refined.argmax[refined.labels == label] == label).any()

    tuned = predict_batch(checkpoint, [image], finetune=5, seed=3)[0]
    assert tuned.n_iterations == 5
    assert len(tuned.n_labels_history) == 6  # the forward pass, then 5 steps
    assert len(tuned.loss_history) == 5 and all(np.isfinite(tuned.loss_history))
    assert tuned.params["finetune"] == 5
    # fine-tuning trains a copy: the checkpoint's model is left as it was
    for key, value in checkpoint.model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    again = predict_batch(checkpoint, [image], finetune=5, seed=3)[0]
    assert again.loss_history == tuned.loss_history
    np.testing.assert_array_equal(again.labels, tuned.labels)
    faster = predict_batch(checkpoint, [image], finetune=5, finetune_lr=0.5, seed=3)[0]
    assert faster.loss_history[1:] != tuned.loss_history[1:]  # same first step, other lr


def test_channel_labels_give_each_label_its_winning_channel(last, images):
    checkpoint = load_checkpoint(last)
    image = val_images(images)[2]
    (plain,) = predict_batch(checkpoint, [image])
    raw = plain.response.argmax(axis=0)
    # without refinement every label is one channel of the argmax
    np.testing.assert_array_equal(channel_labels(plain), raw)
    (refined,) = predict_batch(checkpoint, [image], refine=True)
    channels = channel_labels(refined)
    for label in np.unique(refined.labels):
        inside = refined.labels == label
        values, counts = np.unique(raw[inside], return_counts=True)
        assert (channels[inside] == values[counts.argmax()]).all()


def test_predict_batch_mixed_sizes_full_resolution():
    torch.manual_seed(0)
    checkpoint = Checkpoint(
        build_model("base-bsds500").eval(),
        CheckpointInfo(preset="base-bsds500", architecture="base", image_size=None),
    )
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, shape, dtype=np.uint8)
              for shape in ((20, 30, 3), (30, 20, 3), (20, 30, 3), (64, 48, 3))]  # fmt: skip
    results = predict_batch(checkpoint, images, refine=True, max_side=32)
    for image, result in zip(images, results, strict=True):
        assert result.labels.shape == image.shape[:2]
        assert result.superpixels.shape == image.shape[:2]
        assert result.labels.min() == 0
    assert results[3].working_shape == (32, 24)
    # one batched pass gives what a pass on the image alone gives
    alone = predict_batch(checkpoint, [images[2]], max_side=32)[0]
    together = predict_batch(checkpoint, images[:3])[2]
    np.testing.assert_array_equal(alone.argmax, together.argmax)
    for kwargs, message in (
        (dict(finetune=-1), "finetune"),
        (dict(finetune_lr=0.0), "finetune_lr"),
        (dict(max_side=1), "max_side"),
    ):
        with pytest.raises(ConfigError, match=message):
            predict_batch(checkpoint, images, **kwargs)
    huge = np.zeros((2100, 2100, 3), dtype=np.uint8)
    with pytest.raises(ConfigError, match="--max-side"):
        predict_batch(checkpoint, [huge])
    assert predict(checkpoint, huge, max_side=64).shape == (2100, 2100)
    with pytest.raises(TypeError, match="load_checkpoint"):
        predict_batch(checkpoint.model, images)


def test_a_fixed_size_preset_brings_labels_back_to_any_input_size(last):
    flat = np.full((50, 70, 3), 120, dtype=np.uint8)
    labels = predict(load_checkpoint(last), flat)
    assert labels.shape == (50, 70)  # run at the preset's 32x32, brought back to the input


# --------------------------------------------------------------------------------------
# The command


def test_predict_command_writes_every_file_and_logs_the_time(last, images, tmp_path, capsys):
    out = tmp_path / "pred"
    code = main(["predict", str(images / "val"), "--checkpoint", str(last),
                 "--out", str(out), "--quiet", "--device", "cpu"])  # fmt: skip
    assert code == 0
    logged = "".join(capsys.readouterr())
    assert "time per image" in logged and "over 4 images" in logged
    expected = predict_batch(load_checkpoint(last), val_images(images))
    for index, result in enumerate(expected):
        np.testing.assert_array_equal(np.load(out / f"img{index}" / "labels.npy"), result.labels)
    summary = json.loads((out / "img0" / "summary.json").read_text())
    assert summary["parameters"]["checkpoint_preset"] == "autoencoder-cifar10"
    assert summary["checkpoint"] == str(last)
    assert summary["iterations"] == 0
    assert (summary["height"], summary["working_height"]) == (32, 32)
    assert sorted(p.name for p in (out / "img0").iterdir()) == sorted(OUTPUT_FILES)


def test_predict_command_passes_refine_and_finetune(last, images, tmp_path):
    out = tmp_path / "tuned"
    code = main(["predict", str(images / "val" / "img1.png"), "--checkpoint", str(last),
                 "--out", str(out), "--refine", "--finetune", "2", "--finetune-lr", "0.02",
                 "--quiet", "--device", "cpu"])  # fmt: skip
    assert code == 0
    summary = json.loads((out / "img1" / "summary.json").read_text())
    assert summary["iterations"] == 2
    assert len(summary["n_labels_per_iteration"]) == 3
    parameters = summary["parameters"]
    assert (parameters["refine"], parameters["finetune"], parameters["finetune_lr"]) == (
        True,
        2,
        0.02,
    )


def test_predict_bad_checkpoint_and_inputs(tmp_path, images, last, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["predict", "--checkpoint", str(junk), "--out", str(tmp_path / "o")]) == 2
    assert "not an unsupseg checkpoint" in capsys.readouterr().err
    missing = tmp_path / "missing.pt"
    assert main(["predict", "--checkpoint", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--checkpoint", str(last), "--finetune", "-1"])
    assert exit_info.value.code == 2
    (tmp_path / "broken.png").write_bytes(b"nope")
    good = images / "val" / "img0.png"
    out = tmp_path / "o"
    code = main(["predict", str(tmp_path / "broken.png"), str(good),
                 "--checkpoint", str(last), "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 1
    assert [p.name for p in out.iterdir()] == ["img0"]
    assert "broken.png" in capsys.readouterr().err


def test_ranks_split_the_inputs(last, images, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    out = tmp_path / "rank1"
    code = main(["predict", str(images / "val"), "--checkpoint", str(last),
                 "--out", str(out), "--quiet", "--device", "cpu"])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["img1", "img3"]


def test_predict_refuses_volumes_and_bands_it_cannot_take_and_reads_pages(last, tmp_path, capsys):
    import tifffile

    rng = np.random.default_rng(0)
    stack, volume, bands = tmp_path / "stack.tif", tmp_path / "volume.tif", tmp_path / "bands.tif"
    tifffile.imwrite(stack, rng.integers(0, 256, (8, 32, 32), dtype=np.uint8))
    tifffile.imwrite(volume, rng.integers(0, 256, (6, 32, 32), dtype=np.uint8),
                     metadata={"axes": "ZYX"})  # fmt: skip
    tifffile.imwrite(bands, rng.integers(0, 256, (32, 32, 5), dtype=np.uint8),
                     photometric="minisblack", planarconfig="contig")  # fmt: skip
    out = tmp_path / "o"
    args = ["predict", str(stack), str(volume), str(bands), "--checkpoint", str(last),
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "--pages" in err and "a volume of shape (6, 32, 32)" in err
    assert "5 bands; this checkpoint takes 3-channel images" in err
    assert not out.exists() or not list(out.iterdir())  # nothing half-done
    # --pages each predicts every page of the stack and every slice of the volume.
    assert main([*args[:3], "--pages", "each", *args[4:]]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"stack-page{i:03d}" for i in range(8)] + [
        f"volume-page{i:03d}" for i in range(6)
    ]  # fmt: skip
    labels = np.load(out / "volume-page003" / "labels.npy")
    assert labels.shape == (32, 32)


def test_predict_gives_exactly_k_connected_regions(last, images, tmp_path):
    from unsupseg.regions import connected_leaves

    checkpoint = load_checkpoint(last, "cpu")
    image = read_image(images / "val" / "img0.png")
    plain = predict(checkpoint, image)
    n = int(connected_leaves(plain).max()) + 1
    assert n >= 2
    for k in (1, n - 1, n):
        labels = predict(checkpoint, image, segments=k)
        assert sorted(np.unique(labels).tolist()) == list(range(k))
        assert connected_leaves(labels).max() + 1 == k
    connected = predict(checkpoint, image, connected=True)
    assert len(np.unique(connected)) == n
    with pytest.raises(ConfigError, match=f"has {n} connected regions"):
        predict(checkpoint, image, segments=n + 1)
    out = tmp_path / "o"
    assert main(["predict", str(images / "val" / "img0.png"), "--checkpoint", str(last),
                 "--segments", "1", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    assert not np.load(out / "img0" / "labels.npy").any()
    assert main(["predict", str(images / "val" / "img0.png"), "--checkpoint", str(last),
                 "--segments", "999999", "--out", str(tmp_path / "p"), "--quiet"]) == 1  # fmt: skip


def test_predict_reads_float64_tiffs_and_the_frames_of_an_animated_gif(last, tmp_path, capsys):
    import tifffile
    from PIL import Image

    rng = np.random.default_rng(1)
    tifffile.imwrite(tmp_path / "float.tif", rng.random((32, 32, 3)), photometric="rgb")
    frames = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(2)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    out = tmp_path / "o"
    args = ["predict", str(tmp_path / "float.tif"), str(tmp_path / "anim.gif"),
            "--checkpoint", str(last), "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 1
    assert "anim.gif: an animated image of 2 frames" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["float"]
    assert np.load(out / "float" / "labels.npy").shape == (32, 32)
    assert main([*args, "--pages", "each"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["anim-page000", "anim-page001", "float"]
