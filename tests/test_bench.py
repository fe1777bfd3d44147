import json

from unsupseg.cli import main


def test_bench_refine_writes_figures(tmp_path, capsys):
    out = tmp_path / "refine.json"
    assert (
        main(["bench", "refine", "--n-segments", "2000", "--repeats", "1", "--json", str(out)]) == 0
    )
    figures = json.loads(out.read_text())
    assert figures["identical"] is True
    assert figures["loop_seconds"] > 0 and figures["vectorised_seconds"] > 0
    assert abs(figures["ratio"] - figures["loop_seconds"] / figures["vectorised_seconds"]) < 1e-9
    assert figures["n_superpixels"] > 1000
    assert figures["image"].startswith("481x321")
    assert "ratio" in capsys.readouterr().out


def test_bench_segment_writes_figures(tmp_path):
    out = tmp_path / "segment.json"
    code = main(
        [
            "bench",
            "segment",
            "--iterations",
            "1",
            "--size",
            "120x80",
            "--no-stop-run",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    figures = json.loads(out.read_text())
    names = [(row["variant"], row["device"]) for row in figures["variants"]]
    assert names[0] == ("reference", "cpu") and ("unsupseg", "cpu") in names
    assert all(row["seconds_per_iteration"] > 0 for row in figures["variants"])
    assert figures["variants"][0]["speedup_vs_reference"] == 1.0
    assert "stop_rule" not in figures
    assert figures["image"].startswith("120x80")


def test_bench_train_writes_throughput_beside_the_seed(tmp_path):
    out = tmp_path / "train.json"
    code = main(["bench", "train", "--presets", "base-cifar10", "autoencoder-cifar10",
                 "--steps", "1", "--json", str(out)])  # fmt: skip
    assert code == 0
    rows = json.loads(out.read_text())["rows"]
    assert [row["preset"] for row in rows] == ["base-cifar10", "autoencoder-cifar10"]
    base = rows[0]
    # the seed: 30 epochs x 50,000 images in 5:39:53
    assert abs(base["seed_images_per_second"] - 30 * 50000 / 20393) < 1e-6
    assert base["images_per_second"] > 0
    assert abs(base["ratio_to_seed"] - base["images_per_second"] / 30 / 50000 * 20393) < 1e-6
    assert main(["bench", "train", "--presets", "nope"]) == 2


def test_pixels_of_superpixels_matches_the_reference_setup():
    import numpy as np

    from unsupseg.bench import pixels_of_superpixels

    superpixels = np.random.default_rng(0).integers(0, 50, (30, 40))
    superpixels[superpixels == 7] = 8  # a missing id is skipped, as np.unique skips it
    flat = superpixels.reshape(-1)
    expected = [np.where(flat == s)[0] for s in np.unique(flat)]
    got = pixels_of_superpixels(superpixels)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
