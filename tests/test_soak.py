"""Soak: one process segments a folder of a few hundred small images, one in ten of
them broken; its resident memory stays flat and exactly the broken files are listed."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import REPO
from PIL import Image

N_IMAGES = 200
WARM_UP = 40
#: Growth of the resident memory allowed after warm-up, over the remaining 160 images.
MAX_GROWTH_MB = 24

DRIVER = """
import json, os, sys
import unsupseg.cli.segment as segment

page = os.sysconf("SC_PAGE_SIZE")
rss = []
write = segment.write_image_outputs

def recording(*args, **kwargs):
    folder = write(*args, **kwargs)
    with open("/proc/self/statm") as handle:
        rss.append(int(handle.read().split()[1]) * page / 2**20)
    return folder

segment.write_image_outputs = recording
from unsupseg.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as handle:
    json.dump(rss, handle)
sys.exit(code)
"""


def _broken(kind: int, good: bytes) -> bytes:
    """Ten kinds of broken file, by ``kind``."""
    ihdr = struct.pack(">IIBBBBB", 90_000, 90_000, 8, 2, 0, 0, 0)
    chunk = (
        struct.pack(">I", len(ihdr))
        + b"IHDR"
        + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )
    return [
        b"",
        good[: len(good) // 2],
        good[:40],
        b"not an image at all",
        bytes(range(256)) * 4,
        good[:8] + chunk + b"\x00\x00\x00\x00IEND\xaeB`\x82",
        good.replace(b"IDAT", b"IDAX"),
        good[:-30],
        b"\x89PNG\r\n\x1a\n",
        good[:60] + bytes(len(good) - 60),
    ][kind % 10]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_memory_stays_flat_and_broken_files_are_listed(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    broken = set()
    for index in range(N_IMAGES):
        path = folder / f"img{index:03d}.png"
        Image.fromarray(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(path)
        if index % 10 == 9:
            path.write_bytes(_broken(index // 10, path.read_bytes()))
            broken.add(path.name)
    rss_file = tmp_path / "rss.json"
    argv = ["segment", str(folder), "--out", str(tmp_path / "out"), "--q", "8",
            "--max-iter", "2", "--n-segments", "20", "--quiet"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(rss_file), *argv],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    listed = done.stderr.split(f"{len(broken)} input(s) failed:")[1]
    assert set(re.findall(r"img\d{3}\.png", listed)) == broken
    assert len(listed.strip().splitlines()) == len(broken)
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert written == {f"img{i:03d}" for i in range(N_IMAGES) if i % 10 != 9}
    rss = json.loads(rss_file.read_text())
    assert len(rss) == N_IMAGES - len(broken)
    growth = max(rss[WARM_UP:]) - rss[WARM_UP]
    after = max(rss[WARM_UP:])
    print(
        f"resident memory: {rss[0]:.0f} MB after the first image, {rss[WARM_UP]:.0f} MB "
        f"after {WARM_UP}, at most {after:.0f} MB after ({growth:.1f} MB growth)"
    )
    assert growth < MAX_GROWTH_MB, rss
