"""The speed benchmarks: :mod:`unsupseg.bench` and ``unsupseg bench``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import unsupseg.bench as bench
from unsupseg.bench import bench_refine, bench_segment, bench_train, pixels_of_superpixels
from unsupseg.cli import main
from unsupseg.errors import ConfigError

MACHINE_KEYS = {
    "threads", "cpu_count", "cpu_capability", "processor", "cpu_name",
    "cpu_instruction_sets", "cuda_device", "versions",
}  # fmt: skip


def test_bench_refine_figures():
    figures = bench_refine(n_segments=2000, repeats=1)
    assert figures["benchmark"] == "refine"
    assert figures["identical"] is True
    assert figures["loop_seconds"] > 0 and figures["vectorised_seconds"] > 0
    assert abs(figures["ratio"] - figures["loop_seconds"] / figures["vectorised_seconds"]) < 1e-9
    assert figures["n_superpixels"] > 1000
    assert figures["image"].startswith("481x321")
    assert MACHINE_KEYS <= set(figures)
    assert isinstance(figures["cpu_instruction_sets"], list)
    with pytest.raises(ConfigError, match="q must be >= 2"):
        bench_refine(q=1)


def test_bench_refine_command_writes_the_figures(tmp_path, capsys):
    out = tmp_path / "refine.json"
    code = main(["bench", "refine", "--size", "120x80", "--n-segments", "200",
                 "--repeats", "1", "--json", str(out)])  # fmt: skip
    assert code == 0
    figures = json.loads(out.read_text())
    assert figures["image"].startswith("120x80") and figures["identical"] is True
    assert set(figures) == set(bench_refine(shape=(8, 12), n_segments=4, repeats=1))
    assert "ratio" in capsys.readouterr().out


def test_bench_segment_figures():
    figures = bench_segment(shape=(80, 120), iterations=1, stop_run=False)
    names = [(row["variant"], row["device"]) for row in figures["variants"]]
    assert names[0] == ("reference", "cpu") and ("unsupseg", "cpu") in names
    assert all(row["seconds_per_iteration"] > 0 for row in figures["variants"])
    assert figures["variants"][0]["speedup_vs_reference"] == 1.0
    assert "stop_rule" not in figures
    assert figures["image"].startswith("120x80")
    assert MACHINE_KEYS <= set(figures)


def test_bench_segment_command_passes_its_options(tmp_path, monkeypatch, capsys):
    seen = []

    def fake_variant(spec):  # the options' plumbing, not the timings
        seen.append(spec)
        return 0.5 if spec["step"] == "reference" else 0.25

    monkeypatch.setattr(bench, "_run_variant", fake_variant)
    out, missing = tmp_path / "segment.json", tmp_path / "missing.jpg"
    code = main(["bench", "segment", "--iterations", "2", "--size", "120x80",
                 "--stop-image", str(missing), "--json", str(out)])  # fmt: skip
    assert code == 0
    assert {tuple(spec["shape"]) for spec in seen} == {(80, 120)}
    assert {spec["iterations"] for spec in seen} == {2}
    figures = json.loads(out.read_text())
    assert figures["variants"][1]["speedup_vs_reference"] == 2.0
    assert f"stop-rule run: {missing} not found" in figures["skipped"]
    assert "stop_rule" not in figures
    printed = capsys.readouterr().out
    assert "reference (cpu" in printed and "skipped: stop-rule run" in printed
    # every per-image method's default step is marked on exactly one row
    marked = [m for row in figures["variants"] for m in row["auto_for"]]
    assert sorted(marked) == sorted(bench.auto_steps(torch.device("cpu")))
    assert sum(row["auto"] for row in figures["variants"]) == 1


def test_auto_steps_follow_the_cpu(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(bench, "resolve_precision", lambda p, d, m: "fp32")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert set(bench.auto_steps(cpu).values()) == {"unsupseg"}
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert set(bench.auto_steps(cpu).values()) == {"channels-last"}


def test_the_default_stop_image_is_found_from_the_data_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UNSUPSEG_DATA", raising=False)
    assert bench.default_stop_image() is None  # no ../shared/data beside tmp_path
    (tmp_path / "data" / "bsds500").mkdir(parents=True)
    monkeypatch.setenv("UNSUPSEG_DATA", str(tmp_path / "data"))
    expected = tmp_path / "data" / "bsds500" / "images" / "val" / "3096.jpg"
    assert bench.default_stop_image() == expected


def test_bench_train_throughput_beside_the_thesis():
    figures = bench_train(presets=["base-cifar10", "autoencoder-cifar10"], steps=1)
    assert figures["benchmark"] == "train" and figures["steps_timed"] == 1
    assert figures["seed_train_images"]["cifar10"] == 50000
    rows = [row for row in figures["rows"] if row["device"] == "cpu"]
    assert [row["preset"] for row in rows] == ["base-cifar10", "autoencoder-cifar10"]
    base = rows[0]
    # the thesis: 30 epochs x 50,000 images in 5:39:53
    assert abs(base["seed_images_per_second"] - 30 * 50000 / 20393) < 1e-6
    assert base["images_per_second"] > 0
    assert abs(base["ratio_to_seed"] - base["images_per_second"] / 30 / 50000 * 20393) < 1e-6
    assert MACHINE_KEYS <= set(figures)
    with pytest.raises(ConfigError, match="nope"):
        bench_train(presets=["nope"])


def test_bench_train_command(tmp_path, capsys):
    out = tmp_path / "train.json"
    assert main(["bench", "train", "--presets", "base-cifar10", "--steps", "1",
                 "--json", str(out)]) == 0  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert rows[0]["preset"] == "base-cifar10" and rows[0]["images_per_second"] > 0
    assert "base-cifar10 (cpu, 32px" in capsys.readouterr().out
    assert main(["bench", "train", "--presets", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_pixels_of_superpixels_matches_the_reference_setup():
    superpixels = np.random.default_rng(0).integers(0, 50, (30, 40))
    superpixels[superpixels == 7] = 8  # a missing id is skipped, as np.unique skips it
    flat = superpixels.reshape(-1)
    expected = [np.where(flat == s)[0] for s in np.unique(flat)]
    got = pixels_of_superpixels(superpixels)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("size", ["1x5", "481", "axb"])
def test_bench_size_option_refuses_bad_sizes(size, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "refine", "--size", size])
    assert exit_info.value.code == 2
    assert "--size" in capsys.readouterr().err
