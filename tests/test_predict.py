"""`unsupseg predict`: a trained checkpoint segments new images in one forward pass."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_train import _one_thread, autoencoder_run, tiny  # noqa: F401  (fixtures)

from unsupseg.cli import main
from unsupseg.models import build_model
from unsupseg.predict import predict_batch


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label maps split the pixels identically (ids may differ)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_predict_reproduces_the_training_snapshots(autoencoder_run, tiny, tmp_path, capsys):  # noqa: F811
    checkpoint = autoencoder_run / "checkpoints" / "model-last.pt"
    out = tmp_path / "pred"
    code = main(["predict", str(tiny["folder"] / "val"), "--checkpoint", str(checkpoint),
                 "--out", str(out), "--quiet", "--device", "cpu"])  # fmt: skip
    assert code == 0
    n_images = len(list((tiny["folder"] / "val").iterdir()))
    logged = "".join(capsys.readouterr())
    assert "time per image" in logged and f"over {n_images} images" in logged
    with np.load(autoencoder_run / "figures" / "snapshots" / "epoch002.npz") as snapshot:
        for index in range(4):  # the run's sample images are the first 4 validation images
            labels = np.load(out / f"img{index}" / "labels.npy")
            assert labels.shape == (32, 32)
            assert same_partition(labels, snapshot[f"image{index}"]), index
    summary = json.loads((out / "img0" / "summary.json").read_text())
    assert summary["parameters"]["checkpoint_preset"] == "autoencoder-cifar10"
    assert summary["iterations"] == 0
    assert sorted(p.name for p in (out / "img0").iterdir()) == sorted(
        ["labels.png", "labels.npy", "color.png", "overlay.png", "panel.png", "summary.json"]
    )


def test_predict_refine_and_finetune(autoencoder_run, tiny, tmp_path):  # noqa: F811
    checkpoint = autoencoder_run / "checkpoints" / "model-best.pt"
    image = tiny["folder"] / "val" / "img1.png"
    plain, refined, tuned = tmp_path / "plain", tmp_path / "refined", tmp_path / "tuned"
    common = ["--checkpoint", str(checkpoint), "--quiet", "--device", "cpu"]
    assert main(["predict", str(image), "--out", str(plain), *common]) == 0
    assert main(["predict", str(image), "--out", str(refined), "--refine", *common]) == 0
    assert main(["predict", str(image), "--out", str(tuned), "--finetune", "5", *common]) == 0
    before = np.load(plain / "img1" / "labels.npy")
    after = np.load(refined / "img1" / "labels.npy")
    # the vote keeps a subset of the argmax labels and changes no more than it must
    assert len(np.unique(after)) <= len(np.unique(before))
    summary = json.loads((tuned / "img1" / "summary.json").read_text())
    assert summary["iterations"] == 5
    assert len(summary["n_labels_per_iteration"]) == 6  # the forward pass, then 5 steps


def test_predict_bad_checkpoint_and_inputs(tmp_path, tiny, autoencoder_run, capsys):  # noqa: F811
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["predict", "--checkpoint", str(junk), "--out", str(tmp_path / "o")]) == 2
    assert "not an unsupseg checkpoint" in capsys.readouterr().err
    (tmp_path / "broken.png").write_bytes(b"nope")
    checkpoint = autoencoder_run / "checkpoints" / "model-last.pt"
    good = tiny["folder"] / "val" / "img0.png"
    out = tmp_path / "o"
    code = main(["predict", str(tmp_path / "broken.png"), str(good),
                 "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 1
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["img0"]


def test_ranks_split_the_inputs(autoencoder_run, tiny, tmp_path, monkeypatch):  # noqa: F811
    checkpoint = autoencoder_run / "checkpoints" / "model-last.pt"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    out = tmp_path / "rank1"
    code = main(["predict", str(tiny["folder"] / "val"), "--checkpoint", str(checkpoint),
                 "--out", str(out), "--quiet", "--device", "cpu"])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["img1", "img3"]


def test_predict_batch_mixed_sizes_full_resolution():
    torch.manual_seed(0)
    model = build_model("base-bsds500").eval()
    info = {"image_size": None, "slic": {"n_segments": None, "compactness": None}}
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, shape, dtype=np.uint8)
              for shape in ((20, 30, 3), (30, 20, 3), (20, 30, 3), (64, 48, 3))]  # fmt: skip
    results = predict_batch(model, info, images, refine=True, max_side=32)
    for image, result in zip(images, results, strict=True):
        assert result.labels.shape == image.shape[:2]
        assert result.superpixels.shape == image.shape[:2]
        assert result.labels.min() == 0
    assert results[3].working_shape == (32, 24)
    # one batched pass gives what a pass on the image alone gives
    alone = predict_batch(model, info, [images[2]], max_side=32)[0]
    np.testing.assert_array_equal(alone.argmax, predict_batch(model, info, images[:3])[2].argmax)
    with pytest.raises(ValueError, match="finetune"):
        predict_batch(model, info, images, finetune=-1)
    huge = np.zeros((2100, 2100, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="--max-side"):
        predict_batch(model, info, [huge])
    assert predict_batch(model, info, [huge], max_side=64)[0].labels.shape == (2100, 2100)


def test_predict_writes_a_folder_image_at_any_size(autoencoder_run, tmp_path):  # noqa: F811
    Image.fromarray(np.full((50, 70, 3), 120, dtype=np.uint8)).save(tmp_path / "flat.png")
    checkpoint = autoencoder_run / "checkpoints" / "model-last.pt"
    assert main(["predict", str(tmp_path / "flat.png"), "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "o"), "--quiet"]) == 0  # fmt: skip
    labels = np.load(tmp_path / "o" / "flat" / "labels.npy")
    assert labels.shape == (50, 70)  # run at the preset's 32x32, brought back to the input
