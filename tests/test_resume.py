"""Resuming a training run: ``last.ckpt`` at every epoch end (and every N steps), a run
killed with SIGKILL and resumed with ``--resume`` ending bit for bit as an uninterrupted
one, and the one-line refusal of a checkpoint that cannot be resumed from.

The kill tests start ``unsupseg train`` as a real process on a tiny folder data set,
kill it at a point drawn from a seeded generator, resume it (in this process, through
the command line's ``main``) and compare every tensor of the final ``last.ckpt`` with
that of an uninterrupted run. They are marked ``slow``.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import REPO, band_image
from PIL import Image

from unsupseg.cli import main
from unsupseg.errors import CheckpointError
from unsupseg.training import SegmentationDataModule, SegmentationModule, TrainConfig, train

#: One intra-op torch thread in every test (and in the training processes): the
#: machines are small and shared, and the runs compared must use the same number.
pytestmark = pytest.mark.usefixtures("one_thread")

#: 6 training images in batches of 2: 3 optimiser steps per epoch, 12 in all.
EPOCHS, STEPS_PER_EPOCH = 4, 3


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """A tiny folder data set (train/ and val/) and its superpixel cache folder."""
    root = tmp_path_factory.mktemp("resume")
    rng = np.random.default_rng(3)
    for split, n in (("train", 6), ("val", 2)):
        (root / "folder" / split).mkdir(parents=True)
        for i in range(n):
            image = band_image(rng, 24, 24)
            Image.fromarray(image).save(root / "folder" / split / f"img{i}.png")
    return {"folder": root / "folder", "cache": root / "cache"}


def run_args(data: dict[str, Path], out: Path, *extra: Any) -> list[str]:
    """``unsupseg train`` arguments of the runs compared: SGD with momentum, a learning
    rate halved every epoch, a validation split, a train_step row every step."""
    return [
        "train", "--preset", "base-cifar10", "--q", "4", "--epochs", str(EPOCHS),
        "--batch-size", "2", "--lr", "0.05", "--lr-step-size", "1", "--lr-gamma", "0.5",
        "--log-every", "1", "--figures-every", "10", "--dataset", "folder",
        "--data-root", str(data["folder"]), "--split", "train", "--val-split", "val",
        "--cache-dir", str(data["cache"]), "--slic-workers", "1", "--num-workers", "0",
        "--device", "cpu", "--quiet", "--out", str(out), *map(str, extra),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> Path:
    """An uninterrupted run (in this process; it also builds the superpixel cache), with
    one torch thread as the others: the sums of a convolution's gradient depend on it."""
    out = tmp_path_factory.mktemp("reference") / "run"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(run_args(data, out)) == 0
    finally:
        torch.set_num_threads(before)
    return out


def load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_tensors(a: Any, b: Any, where: str = "") -> int:
    """Every tensor (and plain value) of two nested structures is equal; returns the
    number of tensors compared."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a, b), f"{where} differs"
        return 1
    if isinstance(a, dict):
        assert set(a) == set(b), (where, set(a) ^ set(b))
        return sum(assert_same_tensors(a[k], b[k], f"{where}/{k}") for k in a)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        pairs = enumerate(zip(a, b, strict=True))
        return sum(assert_same_tensors(x, y, f"{where}[{i}]") for i, (x, y) in pairs)
    assert a == b or (a != a and b != b), (where, a, b)  # NaN equals NaN here
    return 0


def assert_same_run(reference: Path, out: Path) -> None:
    """The final last.ckpt of both runs has the same weights, optimiser and scheduler
    state and loop progress, and metrics.csv the same rows (but for the seconds)."""
    ours, theirs = (
        load(reference / "checkpoints" / "last.ckpt"),
        load(out / "checkpoints" / "last.ckpt"),
    )
    assert ours["global_step"] == theirs["global_step"] == EPOCHS * STEPS_PER_EPOCH
    compared = 0
    for key in ("state_dict", "optimizer_states", "lr_schedulers", "epoch", "global_step",
                "loops"):  # fmt: skip
        compared += assert_same_tensors(ours[key], theirs[key], key)
    assert compared > len(ours["state_dict"])  # the weights, then momentum buffers
    best = ours["callbacks"]["TrainingRecorder"]["best"]
    assert best == theirs["callbacks"]["TrainingRecorder"]["best"]
    assert_same_tensors(
        load(reference / "checkpoints" / "model-best.pt")["state_dict"],
        load(out / "checkpoints" / "model-best.pt")["state_dict"],
    )

    def rows(run: Path) -> list[dict[str, str]]:
        with open(run / "metrics.csv", newline="") as handle:
            return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(handle)]

    expected = rows(reference)
    assert len(expected) == EPOCHS * (STEPS_PER_EPOCH + 2)  # train_step rows, train, val
    assert rows(out) == expected  # none lost, none twice
    assert not list(out.rglob(".*.tmp"))


# --------------------------------------------------------------------------------------
# In this process: fast


class Crash(Exception):
    """Stands for the machine going down in the middle of a step."""


def test_last_checkpoint_every_epoch_and_every_n_steps(data, tmp_path, monkeypatch):
    """last.ckpt is there during the run (not only at its end), at each epoch end and,
    with checkpoint_every, every N steps; a crash within an epoch resumes from the last
    of those steps and ends as an uninterrupted run."""
    seen: list[tuple[int, int | None]] = []
    original = SegmentationModule.training_step
    crash_at: list[int] = []

    def step(self, batch, batch_idx):
        last = Path(self.trainer.default_root_dir) / "checkpoints" / "last.ckpt"
        seen.append((self.global_step, load(last)["global_step"] if last.exists() else None))
        if self.global_step in crash_at:
            raise Crash(f"crash at step {self.global_step}")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(SegmentationModule, "training_step", step)
    common = dict(
        preset="base-cifar10", q=4, epochs=3, batch_size=2, lr=0.05, lr_step_size=1,
        lr_gamma=0.5, log_every=1, figures_every=10, dataset="folder",
        data_root=data["folder"], split="train", val_split="val", cache_dir=data["cache"],
        slic_workers=1, num_workers=0, device="cpu", quiet=True,
    )  # fmt: skip
    train(TrainConfig(**common, out=tmp_path / "epochs"))
    # before each step, the checkpoint of the last epoch end: 3 steps per epoch
    assert seen == [(s, None if s < 3 else s - s % 3) for s in range(9)]
    seen.clear()
    train(TrainConfig(**common, out=tmp_path / "straight", checkpoint_every=2))
    # every 2 steps, and at each epoch end (3, 6)
    assert [last for _, last in seen] == [None, None, 2, 3, 4, 4, 6, 6, 8]
    # A crash in step 5 (the 2nd of epoch 2): resumed from step 4, within the epoch.
    crash_at.append(5)
    with pytest.raises(Crash):
        train(TrainConfig(**common, out=tmp_path / "crashed", checkpoint_every=2))
    crash_at.clear()
    checkpoint = load(tmp_path / "crashed" / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 4
    assert checkpoint["SegmentationDataModule"] == {"epoch": 1, "batches": 1}
    train(TrainConfig(**common, out=tmp_path / "crashed", checkpoint_every=2, resume=True))
    straight = load(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    resumed = load(tmp_path / "crashed" / "checkpoints" / "last.ckpt")
    for key in ("state_dict", "optimizer_states", "lr_schedulers", "loops"):
        assert_same_tensors(straight[key], resumed[key], key)
    with (
        open(tmp_path / "straight" / "metrics.csv") as a,
        open(tmp_path / "crashed" / "metrics.csv") as b,
    ):
        strip = ("seconds",)
        rows_a = [{k: v for k, v in r.items() if k not in strip} for r in csv.DictReader(a)]
        rows_b = [{k: v for k, v in r.items() if k not in strip} for r in csv.DictReader(b)]
    assert rows_a == rows_b and len(rows_a) == 3 * (3 + 2)


def test_the_sampler_continues_an_epoch_and_starts_at_the_resumed_epoch():
    """The epoch of the first iterator is set when the loader is made (Lightning sets
    it later, after DataLoader workers already drew from the sampler), and the batches
    done in a resumed epoch are left out of it, not of the next."""
    from types import SimpleNamespace

    from unsupseg.training.data import EpochSampler

    sampler = EpochSampler(10, shuffle=True, seed=3)
    sampler.set_epoch(2)
    whole = list(sampler)
    sampler.resume_at(2, 4)
    assert list(sampler) == whole[4:] and len(sampler) == 10
    sampler.set_epoch(3)
    assert len(list(sampler)) == 10

    class Items:
        def __len__(self) -> int:
            return 10

    module = SegmentationDataModule(None, batch_size=2, seed=3)  # type: ignore[arg-type]
    progress = SimpleNamespace(current=SimpleNamespace(processed=2))
    trainer = SimpleNamespace(
        global_rank=0, world_size=1, fit_loop=SimpleNamespace(epoch_progress=progress)
    )
    module.trainer = trainer  # type: ignore[assignment]
    module.load_state_dict({"epoch": 2, "batches": 2})
    loader = module._loader(Items(), train=True)  # type: ignore[arg-type]
    assert loader.sampler.epoch == 2
    assert list(loader.sampler) == whole[4:]


def test_a_corrupt_last_checkpoint_is_one_line(reference, data, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "config.json").write_bytes((reference / "config.json").read_bytes())
    last = out / "checkpoints" / "last.ckpt"
    whole = (reference / "checkpoints" / "last.ckpt").read_bytes()
    for broken in (whole[: len(whole) // 2], b"garbage" * 100):
        last.write_bytes(broken)
        with pytest.raises(CheckpointError, match="truncated or corrupt.*delete it"):
            train(TrainConfig(preset="base-cifar10", out=out, resume=True, quiet=True,
                              cache_dir=data["cache"], num_workers=0))  # fmt: skip
        code = main([*run_args(data, out), "--resume"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and str(last) in err[0], err
        assert "delete it" in err[0] and "Traceback" not in err[0]
    torch.save({"state_dict": {}}, last)  # readable, but not a checkpoint of a run
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint of a run"):
        train(TrainConfig(preset="base-cifar10", out=out, resume=True, quiet=True,
                          cache_dir=data["cache"], num_workers=0))  # fmt: skip


# --------------------------------------------------------------------------------------
# A real process, killed with SIGKILL


#: (file whose n-th new version triggers the kill, n, --checkpoint-every, seed of the
#: extra delay). model-last.pt is written at each epoch end just before last.ckpt, so
#: the delay kills either before that epoch's last.ckpt or after it.
KILL_POINTS = [
    pytest.param("model-last.pt", 1, 0, 1, id="epoch1-end"),
    pytest.param("model-last.pt", 2, 0, 2, id="epoch2-end"),
    pytest.param("last.ckpt", 5, 1, 3, id="step-checkpoints-mid-epoch"),
    pytest.param("last.ckpt", 3, 2, 4, id="every-2-steps"),
]


def kill_after(command: list[str], watch: Path, versions: int, delay: float) -> int:
    """Start ``command``; SIGKILL it ``delay`` seconds after ``watch`` was written for the
    ``versions``-th time (each atomic write is a new file). Returns how many versions
    were seen; fails when the process ended before it could be killed."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    seen, inode = 0, None
    try:
        deadline = time.monotonic() + 120
        while seen < versions and process.poll() is None and time.monotonic() < deadline:
            try:
                current = watch.stat().st_ino
            except FileNotFoundError:
                current = None
            if current is not None and current != inode:
                seen, inode = seen + 1, current
            time.sleep(0.002)
        time.sleep(delay)
        alive = process.poll() is None
    finally:
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate()
    assert alive, f"the run ended before it was killed:\n{stderr[-2000:]}"
    return seen


@pytest.mark.slow
@pytest.mark.parametrize(("watch", "versions", "every", "seed"), KILL_POINTS)
def test_killed_run_resumes_bit_for_bit(reference, data, tmp_path, watch, versions, every, seed):
    out = tmp_path / "run"
    delay = float(np.random.default_rng(seed).uniform(0.0, 0.15))
    command = [sys.executable, "-m", "unsupseg.cli", *run_args(data, out)]
    if every:
        command += ["--checkpoint-every", str(every)]
    seen = kill_after(command, out / "checkpoints" / watch, versions, delay)
    assert seen == versions
    last = out / "checkpoints" / "last.ckpt"
    if last.exists():  # the kill left a whole checkpoint (written atomically)
        step = load(last)["global_step"]
        assert 0 < step < EPOCHS * STEPS_PER_EPOCH
        if every == 1 and step % STEPS_PER_EPOCH:
            assert load(last)["SegmentationDataModule"]["batches"] == step % STEPS_PER_EPOCH
    resume = run_args(data, out, "--resume", *(["--checkpoint-every", every] if every else []))
    assert main(resume) == 0
    assert_same_run(reference, out)
