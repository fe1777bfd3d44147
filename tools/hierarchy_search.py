"""Evaluate hierarchy configurations on BSDS500 train/val (never test).

Usage::

    .venv/bin/python tools/hierarchy_search.py --split train --n 20 --configs base,leafs1
    .venv/bin/python tools/hierarchy_search.py --split val --n 100 --configs default

Every cut of a uniform threshold grid is scored by Segmentation Covering (pooled over
images), PRI and VI (means over images), ODS (one threshold for the data set) and OIS
(best threshold per image), each metric on its own. The scores come from one
contingency table of leaves x ground-truth segments per annotator, summed over the
leaves of each region (checked against :mod:`unsupseg.metrics` with ``--check``).
Results are appended to ``--out`` (JSON) and printed as a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse

from unsupseg.data.datasets import read_bsds_ground_truth
from unsupseg.io import read_image
from unsupseg.ucm.build import HierarchyConfig, config_strength, hierarchy_from_strength

ROOT = Path("/work/shared/data/bsds500")
GRID = np.linspace(0.0, 1.0, 41)

C = HierarchyConfig
BASE = dict(texture_weight=0.0)
CONFIGS: dict[str, HierarchyConfig] = {
    "default": C(),
    "first": C(colour_sigmas=(1.0, 2.0, 4.0), texture_weight=1.0),
    "colour": C(texture_weight=0.0),
    "colour_s1": C(texture_weight=0.0, leaf_sigma=1.0),
    "colour_s2": C(texture_weight=0.0, leaf_sigma=2.0),
    "colour_h02": C(texture_weight=0.0, leaf_h=0.02),
    "colour_h05": C(texture_weight=0.0, leaf_h=0.05),
    "colour_half": C(texture_weight=0.0, cue_scale=0.5, colour_sigmas=(0.5, 1.0, 2.0)),
    "first_half_s1": C(
        cue_scale=0.5, colour_sigmas=(0.5, 1.0, 2.0), texture_sigmas=(2.0, 4.0), leaf_sigma=1.0
    ),
}


def cue_key(config: HierarchyConfig) -> tuple:
    return (
        config.colour_sigmas,
        config.lab_weights,
        config.texture_sigmas,
        config.texture_weight,
        config.n_textons,
        config.cue_scale,
        config.seed,
        config.spectral_weight,
        config.spectral_scale,
        config.spectral_vectors,
        config.spectral_radius,
        config.spectral_rho,
    )


def strength_of(image, config):
    return config_strength(image, config)


def leaf_tables(leaves, annotators):
    """Per annotator: dense (n_leaves, n_gt) counts."""
    n = int(leaves.max()) + 1
    flat = leaves.ravel()
    tables = []
    for gt in annotators:
        _, g = np.unique(gt.ravel(), return_inverse=True)
        m = int(g.max()) + 1
        tables.append(
            np.bincount(flat * m + g.ravel(), minlength=n * m).reshape(n, m).astype(np.float64)
        )
    return tables


def cut_leaf_labels(h, thresholds):
    """For each threshold, the region id of every leaf (consecutive)."""
    n = h.n_leaves
    out = []
    for t in thresholds:
        k = int(np.searchsorted(h.heights, t, side="right"))
        parent = np.arange(n + k)
        if k:
            parent[h.merges[:k].ravel()] = np.repeat(np.arange(n, n + k), 2)
        root = parent
        while True:
            up = root[root]
            if np.array_equal(up, root):
                break
            root = up
        _, lab = np.unique(root[:n], return_inverse=True)
        out.append(lab)
    return out


def scores_from_table(table):
    """covering weighted, area, RI, VI from a (n_pred, n_gt) count table."""
    n = table.sum()
    ap = table.sum(axis=1)
    ag = table.sum(axis=0)
    iou = table / (ap[:, None] + ag[None, :] - table)
    weighted = float(np.sum(ag * iou.max(axis=0)))
    ri = 1.0 - (np.sum(ap**2) / 2 + np.sum(ag**2) / 2 - np.sum(table**2)) / (n * (n - 1) / 2)
    p = table[table > 0] / n
    pa = ap[ap > 0] / n
    pb = ag[ag > 0] / n
    vi = max(2 * -np.sum(p * np.log2(p)) + np.sum(pa * np.log2(pa)) + np.sum(pb * np.log2(pb)), 0.0)
    return weighted, float(n), float(ri), float(vi)


def score_hierarchy(h, annotators, thresholds=GRID):
    """Arrays over thresholds: covering weighted, area, PRI, VI, n_regions."""
    tables = leaf_tables(h.leaves, annotators)
    res = np.zeros((len(thresholds), 5))
    for i, lab in enumerate(cut_leaf_labels(h, thresholds)):
        k = int(lab.max()) + 1
        m = sparse.csr_matrix((np.ones(lab.size), (lab, np.arange(lab.size))), shape=(k, lab.size))
        w = a = 0.0
        ris, vis = [], []
        for t in tables:
            ww, aa, ri, vi = scores_from_table(np.asarray(m @ t))
            w += ww
            a += aa
            ris.append(ri)
            vis.append(vi)
        res[i] = (w, a, np.mean(ris), np.mean(vis), k)
    return res


def check(h, annotators, thresholds):
    from unsupseg.metrics import (
        probabilistic_rand_index,
        segmentation_covering_terms,
        variation_of_information,
    )

    fast = score_hierarchy(h, annotators, thresholds)
    worst = 0.0
    for i, t in enumerate(thresholds):
        cut = h.cut(t)
        w, a = segmentation_covering_terms(cut, annotators)
        ref = (
            w,
            a,
            probabilistic_rand_index(cut, annotators),
            variation_of_information(cut, annotators),
        )
        worst = max(
            worst, *(abs(x - y) / max(1.0, abs(y)) for x, y in zip(fast[i, :4], ref, strict=True))
        )
    return worst


def summarise(per_image):
    """per_image: (n_images, T, 5). ODS/OIS of covering, PRI, VI."""
    arr = np.asarray(per_image)
    cov_t = arr[:, :, 0].sum(0) / arr[:, :, 1].sum(0)
    pri_t = arr[:, :, 2].mean(0)
    vi_t = arr[:, :, 3].mean(0)
    cov_img = arr[:, :, 0] / arr[:, :, 1]
    best = cov_img.argmax(1)
    idx = np.arange(len(arr))
    ois_cov = arr[idx, best, 0].sum() / arr[idx, best, 1].sum()
    return {
        "ods_covering": float(cov_t.max()),
        "ods_pri": float(pri_t.max()),
        "ods_vi": float(vi_t.min()),
        "ods_t_covering": float(GRID[cov_t.argmax()]),
        "ods_t_pri": float(GRID[pri_t.argmax()]),
        "ods_t_vi": float(GRID[vi_t.argmin()]),
        "ois_covering": float(ois_cov),
        "ois_pri": float(arr[:, :, 2].max(1).mean()),
        "ois_vi": float(arr[:, :, 3].min(1).mean()),
        "ois_t_covering_quartiles": [
            float(q) for q in np.percentile(GRID[best], [10, 25, 50, 75, 90])
        ],
        "regions_at_ods": float(np.median(arr[:, cov_t.argmax(), 4])),
        "covering_curve": [round(float(x), 4) for x in cov_t],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", default="train", choices=["train", "val"])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--configs", default="default")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        help="NAME:field=value;field=value  an ad-hoc config (python literals)",
    )
    ap.add_argument("--out", default="tools/hierarchy_search.json")
    ap.add_argument(
        "--check", action="store_true", help="compare fast scores with unsupseg.metrics"
    )
    args = ap.parse_args(argv)
    configs = {}
    for name in filter(None, args.configs.split(",")):
        configs[name] = CONFIGS[name]
    for spec in args.set:
        name, _, body = spec.partition(":")
        fields = {}
        for item in filter(None, body.split(";")):
            k, _, v = item.partition("=")
            fields[k.strip()] = eval(v, {})  # noqa: S307 - a developer's command line
        configs[name] = dataclasses.replace(HierarchyConfig(), **fields)
    ids = sorted(p.stem for p in (ROOT / "images" / args.split).glob("*.jpg"))
    ids = ids[args.offset : args.offset + args.n]
    data = [
        (
            read_image(ROOT / "images" / args.split / f"{i}.jpg"),
            read_bsds_ground_truth(ROOT / "groundTruth" / args.split / f"{i}.mat"),
        )
        for i in ids
    ]
    out_path = Path(args.out)
    records = json.loads(out_path.read_text()) if out_path.exists() else []
    cache: dict = {}
    rows = []
    for name, config in configs.items():
        per_image, cue_cpu, merge_cpu, wall, leaves = [], 0.0, 0.0, 0.0, []
        for j, (image, gts) in enumerate(data):
            image = np.asarray(image, dtype=np.float64)
            if image.max() > 1.0:
                image = image / 255.0
            key = (j, cue_key(config))
            w0 = time.perf_counter()
            if key not in cache:
                c0 = time.process_time()
                cache[key] = (strength_of(image, config), time.process_time() - c0)
            strength, ccpu = cache[key]
            c0 = time.process_time()
            h = hierarchy_from_strength(image, strength, config)
            merge_cpu += time.process_time() - c0
            cue_cpu += ccpu
            wall += time.perf_counter() - w0
            leaves.append(h.n_leaves)
            if args.check and j < 2:
                print(
                    f"check {ids[j]}: max rel diff {check(h, gts, GRID[::5]):.2e}", file=sys.stderr
                )
            per_image.append(score_hierarchy(h, gts))
        s = summarise(per_image)
        s.update(
            name=name,
            split=args.split,
            n=len(ids),
            offset=args.offset,
            config=dataclasses.asdict(config),
            cue_cpu_s=cue_cpu / len(ids),
            merge_cpu_s=merge_cpu / len(ids),
            median_leaves=float(np.median(leaves)),
        )
        records.append(s)
        rows.append(s)
        print(
            f"{name:18s} {args.split}{len(ids):<4d} ODS cov {s['ods_covering']:.4f} "
            f"PRI {s['ods_pri']:.4f} "
            f"VI {s['ods_vi']:.3f} | OIS cov {s['ois_covering']:.4f} PRI {s['ois_pri']:.4f} "
            f"VI {s['ois_vi']:.3f} | t* {s['ods_t_covering']:.3f} "
            f"oisq {s['ois_t_covering_quartiles'][1]:.2f}-"
            f"{s['ois_t_covering_quartiles'][3]:.2f} | leaves {s['median_leaves']:.0f} "
            f"| cpu cue {s['cue_cpu_s']:.2f}s merge {s['merge_cpu_s']:.2f}s",
            flush=True,
        )
        out_path.write_text(json.dumps(records, indent=1))
    return rows


if __name__ == "__main__":
    main()
