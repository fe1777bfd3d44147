"""Hardening of the superpixel cache: content keys, unreadable images, killed builds."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unsupseg.data import DatasetError, SuperpixelCache, open_dataset
from unsupseg.data import cache as cache_module
from unsupseg.data.cache import content_fingerprint, sweep_temporaries
from unsupseg.data.subsets import first_images
from unsupseg.io import as_rgb_float
from unsupseg.superpixels import slic_superpixels

REPO = Path(__file__).resolve().parents[1]
LINUX_PROC = sys.platform.startswith("linux") and Path("/proc/self/stat").is_file()


def _write_png(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return image


def _photos(folder: Path, n: int = 3, size: tuple[int, int] = (20, 30)) -> Path:
    for i in range(n):
        _write_png(folder / f"img_{i:02d}.png", *size, seed=i)
    return folder


def _open(folder: Path):
    return open_dataset("folder", folder)


def _cache(dataset, cache_dir: Path, workers: int = 1) -> SuperpixelCache:
    return SuperpixelCache(dataset, cache_dir=cache_dir, workers=workers, progress=False)


def _assert_equals_direct_slic(cache: SuperpixelCache, dataset) -> None:
    for i in range(len(dataset)):
        k, m = cache.slic_params(i)
        np.testing.assert_array_equal(
            cache[i], slic_superpixels(as_rgb_float(dataset.image(i)), k, m)
        )


def _entries(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.is_dir() else []


# --------------------------------------------------------------------------------------
# 1. Entries are keyed by the images' content


def test_same_size_replacement_rebuilds_in_place(tmp_path):
    photos = _photos(tmp_path / "photos")
    first = _cache(_open(photos), tmp_path / "cache")
    target = photos / "img_01.png"
    stat = target.stat()
    _write_png(target, 20, 30, seed=99)  # another photo of the same size...
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...and the same mtime
    assert target.stat().st_size == stat.st_size and not first.matches(_open(photos))
    again = _cache(_open(photos), tmp_path / "cache")
    assert again.built and again.path == first.path  # rebuilt in place, no stale twin
    assert _entries(tmp_path / "cache") == [first.path.name]
    _assert_equals_direct_slic(again, _open(photos))
    assert again.matches(_open(photos)) and not _cache(_open(photos), tmp_path / "cache").built


def test_resized_images_rebuild(tmp_path):
    photos = _photos(tmp_path / "photos")
    _cache(_open(photos), tmp_path / "cache")
    for i in range(3):
        _write_png(photos / f"img_{i:02d}.png", 40, 24, seed=10 + i)
    again = _cache(_open(photos), tmp_path / "cache")
    assert again.built and again[0].shape == (40, 24)
    _assert_equals_direct_slic(again, _open(photos))


def test_cifar_keyed_by_its_batch_files(tmp_path):
    from test_data import write_cifar

    write_cifar(tmp_path / "c", n=2)
    first = _cache(open_dataset("cifar10", tmp_path / "c", "test"), tmp_path / "cache")
    assert first.key["content"].startswith("data:")
    batch = tmp_path / "c" / "cifar-10-batches-py" / "test_batch"
    write_cifar(tmp_path / "d", n=2)  # other random pixels, same ids and sizes
    batch.write_bytes((tmp_path / "d" / "cifar-10-batches-py" / "test_batch").read_bytes())
    again = _cache(open_dataset("cifar10", tmp_path / "c", "test"), tmp_path / "cache")
    assert again.built and again.path == first.path
    _assert_equals_direct_slic(again, open_dataset("cifar10", tmp_path / "c", "test"))


def test_every_data_set_is_keyed_by_its_files(tmp_path):
    # A data set found to have no files would still work, but would decode every image
    # to hash its pixels: catch a renamed attribute of the data set classes.
    from test_data import write_bsds, write_cifar, write_msrc, write_stl, write_voc

    write_bsds(tmp_path / "bsds")
    write_msrc(tmp_path / "msrc")
    write_voc(tmp_path / "voc")
    write_cifar(tmp_path / "cifar", n=1)
    write_stl(tmp_path / "stl", n=1)
    kinds = {
        name: content_fingerprint(open_dataset(name, tmp_path / folder)).split(":")[0]
        for name, folder in [
            ("bsds500", "bsds"),
            ("msrc", "msrc"),
            ("voc2012", "voc"),
            ("folder", "bsds/images/val"),
            ("cifar10", "cifar"),
            ("stl10", "stl"),
        ]
    }
    assert kinds == {
        "bsds500": "files",
        "msrc": "files",
        "voc2012": "files",
        "folder": "files",
        "cifar10": "data",
        "stl10": "data",
    }


def test_fingerprint_of_a_subset_follows_its_own_images(tmp_path):
    photos = _photos(tmp_path / "photos")
    subset = first_images(_open(photos), 2)
    before = content_fingerprint(subset)
    assert before.startswith("files:")
    _write_png(photos / "img_02.png", 20, 30, seed=50)  # not in the subset
    assert content_fingerprint(first_images(_open(photos), 2)) == before
    _write_png(photos / "img_00.png", 20, 30, seed=51)
    assert content_fingerprint(first_images(_open(photos), 2)) != before


def test_serving_checks_the_shape(tmp_path):
    photos = _photos(tmp_path / "photos")
    cache = _cache(_open(photos), tmp_path / "cache")
    _write_png(photos / "img_01.png", 30, 20, seed=7)  # resized while the cache is open
    assert cache[0].shape == (20, 30)
    with pytest.raises(
        DatasetError, match=r"img_01\.png: image is 30x20 .* delete .*cache"
    ) as info:
        cache[1]
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------
# 2. An unreadable image is a DatasetError, in this process and in pool workers


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_image_is_a_dataset_error(tmp_path, workers, damage):
    photos = _photos(tmp_path / "photos", n=4)
    bad = photos / "x.png"
    if damage == "garbage":
        bad.write_bytes(b"this is not a PNG file at all" * 10)  # fails on its header
    else:
        _write_png(bad, 20, 30, seed=3)
        bad.write_bytes(bad.read_bytes()[:200])  # header readable, pixels not
    with pytest.raises(DatasetError) as info:
        _cache(_open(photos), tmp_path / "cache", workers=workers)
    message = str(info.value)
    assert str(bad) in message and "replace or remove" in message and "\n" not in message
    # Nothing chained: printing it shows no traceback of a worker or of Pillow.
    assert info.value.__cause__ is None and info.value.__suppress_context__
    printed = "".join(traceback.format_exception(info.value))
    assert "RemoteTraceback" not in printed and "During handling" not in printed
    assert _entries(tmp_path / "cache") == []  # no entry, no temporary folder


# --------------------------------------------------------------------------------------
# 3 and 4. Killed and terminated builds: no orphan workers, no temporary folder left

#: A build in a child process: SLIC made slow, each call marking its process id.
_BUILD_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    from unsupseg.data import SuperpixelCache, open_dataset
    from unsupseg.data import cache as cache_module

    photos, cache_dir, marks, workers = sys.argv[1:5]
    original = cache_module._superpixels_of

    def slow(dataset, index, n_segments, compactness):
        (Path(marks) / str(os.getpid())).touch()
        time.sleep(0.5)
        return original(dataset, index, n_segments, compactness)

    cache_module._superpixels_of = slow
    SuperpixelCache(
        open_dataset("folder", photos), cache_dir=cache_dir, workers=int(workers), progress=False
    )
    """
)


def _parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid``, from /proc (no psutil)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.update(int(c) for c in task.read_text().split())
        except OSError:
            pass
    if not found:  # kernels without the children files
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _parent_of(int(entry.name)) == pid:
                found.add(int(entry.name))
    return found


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _kill_leftovers(pids: set[int]) -> None:
    """SIGKILL the given workers that still run, so a failing test leaves no orphan."""
    for pid in pids:
        with contextlib.suppress(OSError):
            if _running(pid) and b"build.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _start_build(tmp_path: Path, workers: int) -> tuple[subprocess.Popen, Path, set[int]]:
    """A child building a cache of 40 images; returns once ``workers`` run SLIC."""
    photos = _photos(tmp_path / "photos", n=40, size=(16, 16))
    marks = tmp_path / "marks"
    marks.mkdir()
    script = tmp_path / "build.py"
    script.write_text(_BUILD_SCRIPT)
    child = subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(photos),
            str(tmp_path / "cache"),
            str(marks),
            str(workers),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        _wait_for(
            lambda: len(list(marks.iterdir())) >= workers or child.poll() is not None, 60, "SLIC"
        )
    except AssertionError:
        child.kill()
        raise
    assert child.poll() is None, child.communicate()[1].decode()[-2000:]
    busy = {int(p.name) for p in marks.iterdir()}
    return child, photos, busy


@pytest.fixture(scope="module")
def killed_build(tmp_path_factory):
    """A parallel build killed by SIGKILL: (its pid, its workers, photos, cache folder)."""
    tmp_path = tmp_path_factory.mktemp("killed")
    child, photos, busy = _start_build(tmp_path, workers=2)
    workers = _children(child.pid)
    assert busy <= workers and len(busy) == 2
    child.kill()
    child.wait()
    child.stdout.close()
    child.stderr.close()
    return child.pid, busy, photos, tmp_path / "cache"


@pytest.mark.skipif(not LINUX_PROC, reason="needs Linux /proc")
def test_workers_die_with_a_killed_parent(killed_build):
    _, workers, _, _ = killed_build
    try:
        _wait_for(lambda: not any(_running(pid) for pid in workers), 5, f"workers {workers} to end")
    finally:
        _kill_leftovers(workers)


def test_parent_watch_ends_an_orphaned_worker(monkeypatch):
    # The portable fallback of PR_SET_PDEATHSIG: a daemon thread polls os.getppid().
    ppids = iter([41, 41, 1])  # the parent 41 dies and the worker is handed to init
    monkeypatch.setattr(cache_module.os, "getppid", lambda: next(ppids))
    monkeypatch.setattr(cache_module, "PARENT_POLL_S", 0.0)

    def exit_(status):
        raise SystemExit(status)

    monkeypatch.setattr(cache_module.os, "_exit", exit_)
    with pytest.raises(SystemExit):
        cache_module._watch_parent(41)


@pytest.mark.skipif(not LINUX_PROC, reason="needs Linux /proc")
def test_next_build_sweeps_a_killed_builds_folder(killed_build, tmp_path):
    pid, _, photos, cache_dir = killed_build
    left = [name for name in _entries(cache_dir) if name.endswith(".tmp")]
    assert len(left) == 1 and f".{pid}." in left[0] and left[0].startswith(".")
    # A live owner's folder (this process) and unrelated files are kept.
    live = cache_dir / f".entry.{cache_module._host_tag()}.{os.getpid()}.0123abcd.tmp"
    live.mkdir()
    (cache_dir / "notes.txt").write_text("kept")
    cache = _cache(_open(photos), cache_dir)
    assert cache.built and _entries(cache_dir) == sorted([cache.path.name, live.name, "notes.txt"])
    _assert_equals_direct_slic(cache, _open(photos))
    live.rmdir()


@pytest.mark.skipif(not LINUX_PROC, reason="needs Linux /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signals_remove_the_temporary_folder(tmp_path, signum):
    child, _, busy = _start_build(tmp_path, workers=2)
    assert any(name.endswith(".tmp") for name in _entries(tmp_path / "cache"))
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=30)
    # SIGTERM still ends the process by SIGTERM (its default action), after cleaning up;
    # SIGINT is Python's KeyboardInterrupt.
    assert child.returncode == -signum, stderr.decode()[-2000:]
    if signum == signal.SIGTERM:
        assert b"Traceback" not in stderr
    assert _entries(tmp_path / "cache") == []
    try:
        _wait_for(lambda: not any(_running(pid) for pid in busy), 5, f"workers {busy} to end")
    finally:
        _kill_leftovers(busy)


def test_interrupt_removes_the_temporary_folder(tmp_path, monkeypatch):
    photos = _photos(tmp_path / "photos", n=3)

    def interrupted(dataset, index, n_segments, compactness):
        assert [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module, "_superpixels_of", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _cache(_open(photos), tmp_path / "cache")
    assert _entries(tmp_path / "cache") == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored


def test_sweep_keeps_what_it_cannot_judge(tmp_path):
    host, entry = cache_module._host_tag(), "folder-all-native-kauto-m10-n3-0123456789ab"
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    kept = [
        f".{entry}.{host}.{os.getpid()}.00000001.tmp",  # owner alive
        f".{entry}.otherhost.{ended}.00000002.tmp",  # another machine's, recent
        f".{entry}.abcd_123.tmp",  # an earlier version's, no owner, recent
        f".something.{host}.{ended}.00000003.tmp",  # not named like an entry
        entry,
    ]
    gone = [
        f".{entry}.{host}.{ended}.00000000.tmp",  # owner ended
        f".{entry}.otherhost.{ended}.00000004.tmp",  # another machine's, untouched for long
        f".{entry}.zzzz_999.tmp",  # an earlier version's, untouched for long
        f".{entry}.old-{ended}",
        f".{entry}.{host}.{os.getpid()}.00000005.tmp",  # a reused pid's, untouched for long
    ]
    for name in kept + gone:
        (tmp_path / name).mkdir()
    long_ago = time.time() - 2 * cache_module.UNOWNED_TMP_AGE_S
    for name in gone[1:]:
        os.utime(tmp_path / name, (long_ago, long_ago))
    assert sorted(p.name for p in sweep_temporaries(tmp_path)) == sorted(gone)
    assert _entries(tmp_path) == sorted(kept)
