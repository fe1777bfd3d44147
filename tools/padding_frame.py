"""Zero against replicate padding of the per-image network on BSDS500 val (never test).

Usage::

    .venv/bin/python tools/padding_frame.py --method tip2020 --n 10
    .venv/bin/python tools/padding_frame.py --method kanezaki2018 --n 10

For the first ``--n`` val photos, each padding runs with the same seed and settings
(``--max-side`` 160, ``--max-iter`` 300, one torch thread). It reports the frame (the share
of border pixels whose label differs from the pixel two inside), PRI, VI, segments per
image and seconds per photo, averaged over the photos, and appends them to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from unsupseg.data import open_dataset
from unsupseg.evaluation.scoring import score_prediction
from unsupseg.metrics import border_frame
from unsupseg.per_image import METHODS, segment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", choices=METHODS, default="tip2020")
    parser.add_argument("--n", type=int, default=10, help="first N val photos")
    parser.add_argument("--max-side", type=int, default=160)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--data-root", default="../shared/data/bsds500")
    parser.add_argument("--out", type=Path, default=Path("tools/padding_frame.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = open_dataset("bsds500", args.data_root, "val", image_size="native")
    rows: dict[str, list[dict]] = {"zeros": [], "replicate": []}
    for index in range(args.n):
        image = dataset.image(index)
        for padding, scored in rows.items():
            started = time.perf_counter()
            labels = segment(image, args.method, max_side=args.max_side, max_iter=args.max_iter,
                             seed=0, padding=padding, device="cpu")  # fmt: skip
            row = score_prediction(dataset, index, labels)
            row["frame"] = border_frame(labels)
            row["seconds"] = time.perf_counter() - started
            scored.append(row)
    keys = ("pri", "vi", "n_segments", "frame", "seconds")
    result = {"method": args.method, "n": args.n, "max_side": args.max_side,
              "max_iter": args.max_iter}  # fmt: skip
    for padding, scored in rows.items():
        result[padding] = {key: float(np.mean([row[key] for row in scored])) for key in keys}
    print(json.dumps(result, indent=1))
    previous = json.loads(args.out.read_text()) if args.out.exists() else []
    args.out.write_text(json.dumps([*previous, result], indent=1) + "\n")


if __name__ == "__main__":
    main()
