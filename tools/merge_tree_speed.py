"""The merge tree of a fragmented label map: seconds, this version against another.

    python tools/merge_tree_speed.py [--against OLD_REGIONS_PY] [--json FILE]

The page and ``--segments`` build a merge tree over a result's connected regions
(:meth:`unsupseg.regions.Hierarchy.from_boundaries`, mean boundary strength). A
per-image run with few full-size iterations leaves a map of a few large regions full of
specks. Here: scikit-image's coffee (400x600), six 200-pixel blocks with 3% of the
pixels set to one of 50 other labels, seed 0 (about 7,000 connected regions), and
:func:`unsupseg.regions.greedy_merge` timed once on it. ``--against`` loads another
``regions.py`` (for example ``git show 0e962cb:src/unsupseg/regions.py > old.py``) and
times its ``greedy_merge`` on the same map, and checks that both trees join the same
leaves at the same heights; then it compares the two trees over SLIC leaves (800
segments) of coffee, astronaut and the first 3 BSDS500 val photos (where
``../shared/data`` has them), with the mean strength alone and with the ``hierarchy``
method's colour and size terms (``colour_weight=1``, ``size_ref=0.004``).

The machine (CPU, instruction sets, versions) is printed and written with the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
from skimage import data, io
from skimage.segmentation import slic

from unsupseg.bench import machine
from unsupseg.regions import connected_leaves, greedy_merge, image_boundary_strength


def fragmented_map() -> tuple[np.ndarray, np.ndarray]:
    image = data.coffee()
    rng = np.random.default_rng(0)
    blocks = (np.arange(400)[:, None] // 200) * 3 + np.arange(600)[None, :] // 200
    specks = rng.random(blocks.shape) < 0.03
    labels = np.where(specks, 6 + rng.integers(0, 50, blocks.shape), blocks)
    return connected_leaves(labels), image_boundary_strength(image / 255.0)


def timed(function, leaves: np.ndarray, strength: np.ndarray) -> tuple[float, tuple]:
    started = time.perf_counter()
    out = function(leaves, strength)
    return time.perf_counter() - started, out


def leaf_sets(merges: np.ndarray, n: int) -> list[frozenset]:
    members = [frozenset([i]) for i in range(n)]
    for a, b in merges:
        members.append(members[a] | members[b])
    return members[n:]


def same_tree(one: tuple, other: tuple, n: int) -> bool:
    return leaf_sets(one[0], n) == leaf_sets(other[0], n) and np.allclose(one[1], other[1])


def compare_on_photos(other_merge) -> dict[str, dict[str, bool]]:
    photos = {"coffee": data.coffee(), "astronaut": data.astronaut()}
    val = Path(__file__).resolve().parents[1].parent / "shared/data/bsds500/images/val"
    for path in sorted(val.glob("*.jpg"))[:3]:
        photos[path.stem] = io.imread(path)
    same = {}
    for name, image in photos.items():
        colours = image / 255.0
        strength = image_boundary_strength(colours)
        leaves = connected_leaves(slic(image, n_segments=800, start_label=0))
        n = int(leaves.max()) + 1
        terms = {"strength": {}, "colour_size": dict(colours=colours, colour_weight=1.0,
                                                     size_ref=0.004)}  # fmt: skip
        same[name] = {
            key: same_tree(greedy_merge(leaves, strength, **kw),
                           other_merge(leaves, strength, **kw), n)  # fmt: skip
            for key, kw in terms.items()
        }
    return same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="another regions.py whose greedy_merge to time")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    leaves, strength = fragmented_map()
    n = int(leaves.max()) + 1
    seconds, (merges, heights, *_) = timed(greedy_merge, leaves, strength)
    figures = {"regions": n, "seconds": round(seconds, 3)}
    if args.against:
        spec = importlib.util.spec_from_file_location("other_regions", args.against)
        other = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(other)
        other_seconds, (other_merges, other_heights, *_) = timed(
            other.greedy_merge, leaves, strength
        )
        figures["against_seconds"] = round(other_seconds, 3)
        figures["speed_up"] = round(other_seconds / seconds, 1)
        figures["same_tree"] = same_tree((merges, heights), (other_merges, other_heights), n)
        figures["same_tree_on_photos"] = compare_on_photos(other.greedy_merge)
    about = machine()
    for name, value in figures.items():
        print(f"{name:16s} {value}")
    print(f"CPU {about.get('cpu_name')}; instruction sets {about.get('cpu_instruction_sets')}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({**figures, **about}, handle, indent=2)


if __name__ == "__main__":
    main()
