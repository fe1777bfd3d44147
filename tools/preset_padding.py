"""Zero against replicate padding of a photos preset's FCN, trained on BSDS500 train and
measured on val (never test).

Usage::

    .venv/bin/python tools/preset_padding.py --preset base-bsds500 --epochs 20 --n 100

Each padding trains ``--preset`` with the same seed and settings (``unsupseg train``,
``--val-limit 25 --figures-every 5 --out runs/padding/<preset>-<padding>``, as the README's
photos presets; a rerun resumes or reuses a finished run), then runs its best checkpoint
(lowest validation loss) over the first ``--n`` val photos at full size, with and without
the superpixel vote (``evaluate --checkpoint [--refine]``). It reports the frame (the
share of border pixels whose label differs from the pixel two inside,
:func:`unsupseg.metrics.border_frame`), mIoU, covering, PRI, VI and segments per image,
and appends them to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from unsupseg.evaluation import evaluate_dataset
from unsupseg.evaluation.dataset import open_scored_dataset
from unsupseg.evaluation.predictors import make_predictor
from unsupseg.metrics import border_frame
from unsupseg.training import TrainConfig, train

KEYS = ("miou_all", "miou_fine", "miou_coarse", "covering", "pri", "vi", "mean_segments",
        "mean_labels")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="base-bsds500")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--n", type=int, default=100, help="first N val photos")
    parser.add_argument("--runs", type=Path, default=Path("runs/padding"))
    parser.add_argument("--out", type=Path, default=Path("tools/preset_padding.json"))
    args = parser.parse_args()
    dataset, _, _ = open_scored_dataset("bsds500", "val")
    result: dict = {"preset": args.preset, "epochs": args.epochs, "n": args.n}
    for padding in ("zeros", "replicate"):
        run = args.runs / f"{args.preset}-{padding}"
        checkpoint = run / "checkpoints" / "model-best.pt"
        last = run / "checkpoints" / "model-last.pt"
        done = last.is_file() and torch.load(last, weights_only=True)["epoch"] == args.epochs
        if not done:  # train, or resume an interrupted run
            train(TrainConfig(preset=args.preset, out=run, epochs=args.epochs, padding=padding,
                              val_limit=25, figures_every=5,
                              resume=(run / "config.json").is_file(), quiet=True))  # fmt: skip
        for refine in (False, True):
            predict = make_predictor(checkpoint=checkpoint, refine=refine, device="cpu")
            frames = [border_frame(predict(dataset, i)) for i in range(args.n)]
            evaluation = evaluate_dataset(
                "bsds500", checkpoint=checkpoint, refine=refine, limit=args.n, device="cpu",
                out=run / ("evaluate-refine" if refine else "evaluate"), progress=False,
            )  # fmt: skip
            summary = evaluation.summary
            result[f"{padding}{'-refine' if refine else ''}"] = {
                "frame": float(np.mean(frames)),
                **{k: summary.get(k) for k in KEYS},
            }
    print(json.dumps(result, indent=1))
    rows = json.loads(args.out.read_text()) if args.out.is_file() else []
    args.out.write_text(json.dumps([*rows, result], indent=1) + "\n")


if __name__ == "__main__":
    main()
