"""Data sets in their real on-disk formats, the superpixel cache and training items."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from conftest import bsds_struct_cells, palette_png
from PIL import Image

from unsupseg.data import (
    DatasetError,
    SuperpixelCache,
    TrainingDataset,
    collate,
    default_cache_dir,
    default_slic_params,
    open_dataset,
    read_bsds_ground_truth,
)
from unsupseg.data import cache as cache_module
from unsupseg.data.training import _renumber
from unsupseg.io import as_rgb_float
from unsupseg.superpixels import slic_superpixels

RNG = np.random.default_rng(1234)


def _random_images(n: int, height: int, width: int) -> np.ndarray:
    return RNG.integers(0, 256, (n, height, width, 3), dtype=np.uint8)




def _class_map(height: int, width: int, classes: list[int]) -> np.ndarray:
    """Vertical bands of the given class values."""
    bands = np.array_split(np.arange(width), len(classes))
    out = np.zeros((height, width), np.uint8)
    for band, value in zip(bands, classes, strict=True):
        out[:, band] = value
    return out


# --------------------------------------------------------------------------------------
# Writers of tiny data sets in the real formats


def write_cifar(root: Path, n: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for batch in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = _random_images(n, 32, 32)
        labels = [int(v) for v in RNG.integers(0, 10, n)]
        data = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # R plane, G plane, B plane
        entry = {b"batch_label": batch.encode(), b"labels": labels, b"data": data}
        with open(folder / batch, "wb") as handle:
            pickle.dump(entry, handle, protocol=2)
        written[batch] = (images, labels)
    return written


def write_stl(root: Path, n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    images = _random_images(n, 96, 96)
    labels = RNG.integers(1, 11, n).astype(np.uint8)
    for split in ("train", "test", "unlabeled"):
        # Column-major per channel: stored as (N, C, W, H).
        images.transpose(0, 3, 2, 1).tofile(folder / f"{split}_X.bin")
        if split != "unlabeled":
            labels.tofile(folder / f"{split}_y.bin")
    return images, labels


def write_voc(root: Path) -> Path:
    voc = root / "VOCdevkit" / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    maps = {
        "2007_000032": _class_map(30, 40, [0, 1, 255, 15]),
        "2007_000039": _class_map(36, 28, [0, 20]),
        "2007_000063": _class_map(30, 40, [0, 255]),
    }
    for image_id, classes in maps.items():
        Image.fromarray(_random_images(1, *classes.shape)[0]).save(
            voc / "JPEGImages" / f"{image_id}.jpg"
        )
        palette_png(voc / "SegmentationClass" / f"{image_id}.png", classes)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000032\n2007_000039\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000063\n")
    return voc


def write_msrc(root: Path) -> dict[str, np.ndarray]:
    maps = {
        "1_2_s": _class_map(20, 30, [1, 255, 1]),
        "1_4_s": _class_map(20, 30, [1, 3, 255]),
        "7_2_s": _class_map(30, 20, [0, 11, 18, 22]),
    }
    for image_id, classes in maps.items():
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_random_images(1, *classes.shape)[0]).save(
            root / "images" / f"{image_id}.png"
        )
        palette_png(root / "labels" / f"{image_id}.png", classes)
    with open(root / "manifest.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "category"])
        for image_id in maps:
            writer.writerow([image_id, image_id.split("_")[0]])
    return maps




def write_bsds(root: Path, split: str = "val") -> dict[str, list[np.ndarray]]:
    truths = {}
    for image_id, (height, width), annotators in (
        ("100007", (21, 32), 5),
        ("3096", (32, 21), 6),
        ("12003", (21, 32), 1),
    ):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "groundTruth" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(_random_images(1, height, width)[0]).save(
            root / "images" / split / f"{image_id}.jpg"
        )
        segs = [
            (RNG.integers(1, 4 + k, (height, width))).astype(np.uint16) for k in range(annotators)
        ]
        scipy.io.savemat(
            root / "groundTruth" / split / f"{image_id}.mat",
            {"groundTruth": bsds_struct_cells(segs)},
        )
        truths[image_id] = segs
    return truths


def write_folder(root: Path, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    images = []
    for i, (height, width) in enumerate(shapes):
        image = _random_images(1, height, width)[0]
        Image.fromarray(image).save(root / f"img_{i:02d}.png")
        images.append(image)
    (root / "notes.txt").write_text("not an image")
    return images


def position_image(height: int, width: int) -> np.ndarray:
    """Red encodes the row and green the column, so a crop's origin can be read back."""
    rows, cols = np.mgrid[:height, :width]
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = rows * 5
    image[..., 1] = cols * 5
    image[..., 2] = 250  # fixes the min-max scale: min 0, max 250
    return image


# --------------------------------------------------------------------------------------
# Data sets from tiny files


def test_cifar_pickled_batches(tmp_path):
    written = write_cifar(tmp_path, n=4)
    train = open_dataset("cifar10", tmp_path, "train")
    assert len(train) == 20 and train.n_classes == 10 and not train.multilabel
    images, labels = written["data_batch_2"]
    np.testing.assert_array_equal(train.image(5), images[1])
    assert train.label(5) == labels[1] and train.image_id(5) == "data_batch_2_00001"
    assert train.image(0).dtype == np.uint8 and train.ground_truth(0) is None
    test = open_dataset("cifar10", tmp_path / "cifar-10-batches-py", "test", image_size=16)
    assert len(test) == 4 and test.image(0).shape == (16, 16, 3)
    assert test.class_names[0] == "airplane"


def test_cifar_truncated_and_missing(tmp_path):
    write_cifar(tmp_path, n=2)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:200])
    with pytest.raises(DatasetError, match="data_batch_3.*truncated"):
        open_dataset("cifar10", tmp_path)
    batch.unlink()
    with pytest.raises(DatasetError, match=r"cifar-10-batches-py.*missing data_batch_3"):
        open_dataset("cifar10", tmp_path)


def test_stl_binaries(tmp_path):
    images, labels = write_stl(tmp_path, n=3)
    train = open_dataset("stl10", tmp_path, "train")
    assert len(train) == 3
    np.testing.assert_array_equal(train.image(2), images[2])
    assert [train.label(i) for i in range(3)] == [int(v) - 1 for v in labels]
    both = open_dataset("stl10", tmp_path, "train+unlabeled", image_size=(48, 40))
    assert len(both) == 6 and both.label(4) is None and both.image(4).shape == (48, 40, 3)
    assert both.image_id(4) == "unlabeled_000001"
    restored = pickle.loads(pickle.dumps(both))  # memory maps reopen in workers
    np.testing.assert_array_equal(restored.image(5), both.image(5))
    (tmp_path / "stl10_binary" / "test_X.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(DatasetError, match="test_X.bin.*truncated"):
        open_dataset("stl10", tmp_path, "test")


def test_voc_tree(tmp_path):
    voc = write_voc(tmp_path)
    train = open_dataset("voc2012", tmp_path, "train")
    assert train.image_size == (224, 224) and train.multilabel and train.n_classes == 20
    assert train.image(0).shape == (224, 224, 3)
    truth = train.ground_truth(0)
    assert truth.shape == (224, 224) and truth.dtype == np.uint8
    assert set(np.unique(truth)) == {0, 1, 15, 255}
    label = train.label(0)
    assert label.dtype == np.float32 and label.shape == (20,)
    assert np.flatnonzero(label).tolist() == [0, 14]  # classes 1 and 15; 0 and 255 are not
    assert np.flatnonzero(train.label(1)).tolist() == [19]
    native = open_dataset("voc2012", voc, "val", image_size="native")
    assert native.image(0).shape == (30, 40, 3) and not native.label(0).any()
    with pytest.raises(DatasetError, match=r"VOCdevkit.*ImageSets/Segmentation/trainval\.txt"):
        open_dataset("voc2012", tmp_path, "trainval")
    (voc / "SegmentationClass" / "2007_000039.png").unlink()
    with pytest.raises(DatasetError, match="1 of 2 class maps missing"):
        open_dataset("voc2012", tmp_path, "train")


def test_msrc_folder(tmp_path):
    maps = write_msrc(tmp_path)
    ds = open_dataset("msrc", tmp_path)
    assert ds.split == "train" and ds.ids == list(maps) and ds.n_classes == 23
    np.testing.assert_array_equal(ds.ground_truth(2), maps["7_2_s"])
    assert np.flatnonzero(ds.label(1)).tolist() == [1, 3]
    assert np.flatnonzero(ds.label(2)).tolist() == [0, 11, 18, 22]
    small = open_dataset("msrc", tmp_path, "all", image_size=(10, 15))
    assert small.ground_truth(0).shape == (10, 15)
    assert set(np.unique(small.ground_truth(0))) <= {1, 255}
    with pytest.raises(DatasetError, match=r"splits/val\.txt"):
        open_dataset("msrc", tmp_path, "val")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "val.txt").write_text("7_2_s\n")
    assert open_dataset("msrc", tmp_path, "val").ids == ["7_2_s"]


def test_bsds_savemat_ground_truth(tmp_path):
    truths = write_bsds(tmp_path)
    ds = open_dataset("bsds500", tmp_path, "val")
    assert ds.ids == sorted(truths) and ds.label(0) is None
    for i, image_id in enumerate(ds.ids):
        got = ds.ground_truth(i)
        assert len(got) == len(truths[image_id])
        for a, b in zip(got, truths[image_id], strict=True):
            assert a.dtype == np.uint16 and a.shape == ds.image(i).shape[:2]
            np.testing.assert_array_equal(a, b)
    resized = open_dataset("bsds500", tmp_path, "val", image_size=(16, 24))
    assert all(g.shape == (16, 24) for g in resized.ground_truth(1))


def test_bsds_layout_errors(tmp_path):
    with pytest.raises(DatasetError, match=r"images/val/\*\.jpg and .*groundTruth/val/\*\.mat"):
        open_dataset("bsds500", tmp_path, "val")
    write_bsds(tmp_path, "val")
    (tmp_path / "groundTruth" / "val" / "3096.mat").unlink()
    with pytest.raises(DatasetError, match="1 of 3 images have no ground truth"):
        open_dataset("bsds500", tmp_path, "val")
    bad = tmp_path / "bad.mat"
    scipy.io.savemat(bad, {"seg": np.zeros((2, 2))})
    with pytest.raises(DatasetError, match="no 'groundTruth' variable"):
        read_bsds_ground_truth(bad)


def test_folder_of_images(tmp_path):
    images = write_folder(tmp_path / "photos", [(20, 30), (25, 15)])
    ds = open_dataset("folder", tmp_path / "photos")
    assert ds.ids == ["img_00", "img_01"] and ds.label(0) is None and ds.n_classes is None
    np.testing.assert_array_equal(ds.image(1), images[1])
    assert ds.image_shape(1) == (25, 15)
    write_folder(tmp_path / "photos" / "val", [(8, 8)])
    assert len(open_dataset("folder", tmp_path / "photos", "val")) == 1
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="holds no image"):
        open_dataset("folder", tmp_path / "empty")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cifar10", "cifar-10-batches-py"),
        ("stl10", "stl10_binary"),
        ("voc2012", "VOCdevkit"),
        ("msrc", "labels"),
        ("bsds500", "groundTruth"),
        ("folder", "missing"),
    ],
)
def test_missing_dataset_names_path(tmp_path, name, expected):
    with pytest.raises(DatasetError) as info:
        open_dataset(name, tmp_path / "missing")
    message = str(info.value)
    assert str(tmp_path / "missing") in message and expected in message


def test_open_dataset_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown data set 'imagenet'"):
        open_dataset("imagenet", tmp_path)
    with pytest.raises(ValueError, match="no split 'val'"):
        open_dataset("cifar10", tmp_path, "val")
    with pytest.raises(ValueError, match="image_size"):
        open_dataset("folder", tmp_path, image_size=(0, 4))


# --------------------------------------------------------------------------------------
# Real data (shared/data beside the repository)


def test_real_bsds500_val(bsds500):
    ds = open_dataset("bsds500", bsds500, "val")
    assert len(ds) == 100
    annotators = [len(read_bsds_ground_truth(p)) for p in ds._truth_paths]
    assert min(annotators) >= 5 and max(annotators) <= 8
    for i in (0, 1, 2):
        image = ds.image(i)
        assert image.dtype == np.uint8 and image.shape[:2] in ((321, 481), (481, 321))
        truth = ds.ground_truth(i)
        assert all(t.shape == image.shape[:2] and t.dtype == np.uint16 for t in truth)
        assert all(t.min() >= 1 for t in truth)


def test_real_cifar10_partial(shared_data):
    root = shared_data / "cifar10_partial"
    if not (root / "cifar-10-batches-py").is_dir():
        pytest.skip(f"CIFAR-10 partial batches are absent from {root}")
    train = open_dataset("cifar10", root, "train")
    assert len(train) == 5 * 164
    assert sum(i.startswith("data_batch_1_") for i in train.ids) == 164
    assert [train.label(i) for i in range(5)] == [6, 9, 9, 4, 1]
    assert train.image(0).shape == (32, 32, 3)
    test = open_dataset("cifar10", root, "test")
    assert len(test) == 164 and [test.label(i) for i in range(5)] == [3, 8, 8, 0, 6]


def test_real_msrc(shared_data):
    root = shared_data / "msrc_v2"
    if not (root / "labels").is_dir():
        pytest.skip(f"MSRC-v2 is absent from {root}")
    ds = open_dataset("msrc", root)
    assert len(ds) == 295 and ds.class_names[4] == "horse"
    with open(root / "manifest.csv", newline="") as handle:
        manifest = {row["id"]: row["classes"].split() for row in csv.DictReader(handle)}
    for i in (0, 3, 200):
        truth = ds.ground_truth(i)
        assert truth.dtype == np.uint8 and truth.shape == ds.image(i).shape[:2]
        names = [ds.class_names[c] for c in np.flatnonzero(ds.label(i))]
        assert sorted(names) == sorted(manifest[ds.image_id(i)])


# --------------------------------------------------------------------------------------
# Superpixel cache


def test_default_slic_params():
    assert default_slic_params(321, 481) == (1544, 10.0)
    assert default_slic_params(32, 32) == (10, 10.0)
    assert default_slic_params(4, 4) == (8, 10.0)


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UNSUPSEG_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "superpixels"
    monkeypatch.delenv("UNSUPSEG_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "unsupseg" / "superpixels"


@pytest.fixture
def counted_slic(monkeypatch):
    calls = []
    original = cache_module._superpixels_of

    def counting(dataset, index, n_segments, compactness):
        calls.append(index)
        return original(dataset, index, n_segments, compactness)

    monkeypatch.setattr(cache_module, "_superpixels_of", counting)
    return calls


def test_cache_built_once_then_reused(tmp_path, counted_slic, monkeypatch):
    write_folder(tmp_path / "photos", [(20, 30), (25, 15), (20, 30)])
    ds = open_dataset("folder", tmp_path / "photos")
    monkeypatch.setenv("UNSUPSEG_CACHE", str(tmp_path / "cache"))
    first = SuperpixelCache(ds, workers=1, progress=False)
    assert first.built and counted_slic == [0, 1, 2]
    assert first.path.parent == tmp_path / "cache" / "superpixels"
    stamp = (first.path / "superpixels.npy").stat().st_mtime_ns
    again = SuperpixelCache(open_dataset("folder", tmp_path / "photos"), workers=1)
    assert not again.built and counted_slic == [0, 1, 2] and again.path == first.path
    assert (again.path / "superpixels.npy").stat().st_mtime_ns == stamp
    other = SuperpixelCache(ds, compactness=20, workers=1, progress=False)
    fixed_k = SuperpixelCache(ds, n_segments=5, workers=1, progress=False)
    assert len({first.path, other.path, fixed_k.path}) == 3 and other.built and fixed_k.built
    assert fixed_k.slic_params(1) == (5, 10.0)


def test_cache_equals_direct_slic(tmp_path):
    write_folder(tmp_path / "photos", [(20, 30), (25, 15), (12, 12)])
    varying = open_dataset("folder", tmp_path / "photos")
    write_cifar(tmp_path, n=2)
    uniform = open_dataset("cifar10", tmp_path, "test")
    for ds in (varying, uniform):
        cache = SuperpixelCache(ds, cache_dir=tmp_path / "cache", workers=1, progress=False)
        for i in range(len(ds)):
            stored = cache[i]
            assert isinstance(stored, np.memmap) and stored.dtype == np.int32
            k, m = cache.slic_params(i)
            assert k == default_slic_params(*ds.image_shape(i))[0]
            direct = slic_superpixels(as_rgb_float(ds.image(i)), k, m)
            np.testing.assert_array_equal(stored, direct)
            assert cache.n_superpixels(i) == direct.max() + 1
    np.testing.assert_array_equal(np.load(cache.path / "shapes.npy"), [[32, 32], [32, 32]])
    restored = pickle.loads(pickle.dumps(cache))  # DataLoader workers map the file again
    assert restored._array is None
    np.testing.assert_array_equal(restored[1], cache[1])


def test_cache_parallel_build_matches(tmp_path):
    write_folder(tmp_path / "photos", [(20, 30), (25, 15), (12, 12), (16, 16)])
    ds = open_dataset("folder", tmp_path / "photos")
    serial = SuperpixelCache(ds, cache_dir=tmp_path / "a", workers=1, progress=False)
    parallel = SuperpixelCache(ds, cache_dir=tmp_path / "b", workers=2, progress=False)
    for i in range(len(ds)):
        np.testing.assert_array_equal(serial[i], parallel[i])


def test_interrupted_build_leaves_no_entry(tmp_path, monkeypatch):
    write_folder(tmp_path / "photos", [(20, 30), (25, 15), (12, 12)])
    ds = open_dataset("folder", tmp_path / "photos")
    original = cache_module._superpixels_of

    def dies_at_third(dataset, index, n_segments, compactness):
        if index == 2:
            raise KeyboardInterrupt
        return original(dataset, index, n_segments, compactness)

    monkeypatch.setattr(cache_module, "_superpixels_of", dies_at_third)
    with pytest.raises(KeyboardInterrupt):
        SuperpixelCache(ds, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert list((tmp_path / "cache").iterdir()) == []
    monkeypatch.setattr(cache_module, "_superpixels_of", original)
    # A process killed outright leaves a hidden temporary folder and, at worst, an entry
    # folder without meta.json: neither is taken for a finished entry.
    cache = SuperpixelCache(ds, cache_dir=tmp_path / "cache", workers=1, progress=False)
    (cache.path / "meta.json").unlink()
    leftover = cache.path.with_name(f".{cache.path.name}.x.tmp")
    leftover.mkdir()
    rebuilt = SuperpixelCache(ds, cache_dir=tmp_path / "cache", workers=1, progress=False)
    assert rebuilt.built and (rebuilt.path / "meta.json").is_file()
    np.testing.assert_array_equal(rebuilt[2], cache[2])


# --------------------------------------------------------------------------------------
# Training items


@pytest.fixture
def position_set(tmp_path):
    folder = tmp_path / "positions"
    folder.mkdir()
    for i, (height, width) in enumerate([(30, 40), (40, 30)]):
        Image.fromarray(position_image(height, width)).save(folder / f"p{i}.png")
    ds = open_dataset("folder", folder)
    cache = SuperpixelCache(ds, cache_dir=tmp_path / "cache", workers=1, progress=False)
    return ds, cache


def test_crop_and_flip_keep_alignment(position_set):
    ds, cache = position_set
    train = TrainingDataset(ds, cache, crop_size=(24, 20), flip=True, seed=7)
    flipped = 0
    for epoch in range(6):
        train.set_epoch(epoch)
        for index in range(len(ds)):
            item = train[index]
            image, superpixels = item["image"].numpy(), item["superpixels"].numpy()
            assert image.shape == (3, 24, 20) and image.dtype == np.float32
            assert superpixels.dtype == np.int64 and superpixels.min() == 0
            rows = np.rint(image[0] * 250 / 5).astype(int)
            cols = np.rint(image[1] * 250 / 5).astype(int)
            flipped += cols[0, 0] > cols[0, -1]
            expected = _renumber(np.asarray(cache[index], np.int64)[rows, cols])
            np.testing.assert_array_equal(superpixels, expected)
            assert superpixels.max() + 1 == len(np.unique(superpixels))
    assert 0 < flipped < 12


def test_same_seed_epoch_index_same_item(position_set):
    ds, cache = position_set
    a = TrainingDataset(ds, cache, crop_size=16, seed=3)
    b = TrainingDataset(ds, cache, crop_size=16, seed=3)
    a.set_epoch(5)
    _ = a[0], a[1]  # order and earlier draws do not matter
    b.set_epoch(5)
    for index in (1, 0):
        torch.testing.assert_close(a[index]["image"], b[index]["image"])
        torch.testing.assert_close(a[index]["superpixels"], b[index]["superpixels"])
    crops = set()
    for epoch in range(8):
        a.set_epoch(epoch)
        crops.add(a[0]["image"].numpy().tobytes())
    assert len(crops) > 1


def test_padding_when_crop_exceeds_image(position_set):
    ds, cache = position_set
    item = TrainingDataset(ds, cache, crop_size=(36, 44), flip=False)[0]  # image is 30x40
    superpixels, image = item["superpixels"], item["image"]
    assert superpixels.shape == (36, 44)
    assert (superpixels[30:] == -1).all() and (superpixels[:, 40:] == -1).all()
    assert (superpixels[:30, :40] >= 0).all() and (image[:, 30:] == 0).all()


def test_collate_pads_mixed_orientations(position_set):
    ds, cache = position_set
    train = TrainingDataset(ds, cache, flip=False)
    items = [train[0], train[1]]
    batch = collate(items)
    assert batch["image"].shape == (2, 3, 40, 40) and batch["superpixels"].shape == (2, 40, 40)
    assert batch["size"].tolist() == [[30, 40], [40, 30]]
    assert batch["index"].tolist() == [0, 1] and batch["target"].tolist() == [-1, -1]
    assert (batch["superpixels"][0, 30:] == -1).all() and (batch["image"][0, :, 30:] == 0).all()
    assert (batch["superpixels"][1, :, 30:] == -1).all()
    torch.testing.assert_close(batch["image"][1, :, :, :30], items[1]["image"])
    np.testing.assert_array_equal(batch["superpixels"][0, :30].numpy(), cache[0])
    loader = torch.utils.data.DataLoader(train, batch_size=2, collate_fn=collate)
    assert next(iter(loader))["image"].shape == (2, 3, 40, 40)


def test_targets_by_dataset_kind(tmp_path):
    write_msrc(tmp_path / "msrc")
    ds = open_dataset("msrc", tmp_path / "msrc")
    cache = SuperpixelCache(ds, cache_dir=tmp_path / "cache", workers=1, progress=False)
    target = TrainingDataset(ds, cache)[2]["target"]
    assert target.dtype == torch.float32 and target.shape == (23,) and target.sum() == 4
    write_cifar(tmp_path / "cifar", n=2)
    cifar = open_dataset("cifar10", tmp_path / "cifar", "test")
    cifar_cache = SuperpixelCache(cifar, cache_dir=tmp_path / "cache", workers=1, progress=False)
    target = TrainingDataset(cifar, cifar_cache)[1]["target"]
    assert target.dtype == torch.int64 and int(target) == cifar.label(1)
    with pytest.raises(ValueError, match="built for other images"):
        TrainingDataset(cifar, cache)
