"""The per-pixel argmax and the loss's layout: milliseconds, side by side in one run.

    python tools/loss_layout_speed.py [--threads N] [--rounds R] [--json FILE]

1. On a (1, 100, 321, 481) float32 map (a BSDS500 photo's response at q=100): torch's
   ``argmax(dim=1)`` against ``max(dim=1).indices`` (what
   :func:`unsupseg.algorithm.channel_argmax` computes), in the default layout and
   channels-last, and the copy from channels-last to the default layout. Medians of 7
   runs after a warm-up.
2. One kanezaki2018 iteration at 481x321 (q=100, 2 blocks, channels-last network, fp32
   and bf16 autocast), two ways, alternating in one process for R rounds: ``copy``, the
   response copied to the default layout and scored there with ``argmax`` (unsupseg up
   to the layout commit), and ``in place``, the response scored channels-last
   (:func:`unsupseg.algorithm.self_training_loss` now). Medians of seconds per iteration.

The machine (CPU, instruction sets, versions) is printed and written with the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from unsupseg.algorithm import IGNORE_INDEX, Refinement, self_training_loss
from unsupseg.bench import BENCH_SHAPE, bench_image, machine, median_seconds
from unsupseg.device import cpu_supports_bf16
from unsupseg.models.kanezaki import KanezakiNet
from unsupseg.per_image import network_forward
from unsupseg.superpixels import slic_superpixels


def median_ms(function, repeats: int = 7) -> float:
    function()  # warm-up
    return median_seconds(function, repeats) * 1000


def reductions() -> dict[str, float]:
    torch.manual_seed(0)
    response = torch.randn(1, 100, 321, 481)
    channels_last = response.contiguous(memory_format=torch.channels_last)
    assert torch.equal(response.argmax(dim=1), response.max(dim=1).indices)
    figures = {
        "argmax_default_layout_ms": median_ms(lambda: response.argmax(dim=1)),
        "max_indices_default_layout_ms": median_ms(lambda: response.max(dim=1).indices),
        "argmax_channels_last_ms": median_ms(lambda: channels_last.argmax(dim=1)),
        "max_indices_channels_last_ms": median_ms(lambda: channels_last.max(dim=1).indices),
        "copy_channels_last_to_default_ms": median_ms(lambda: channels_last.contiguous()),
    }
    figures["argmax_over_max_default_layout"] = (
        figures["argmax_default_layout_ms"] / figures["max_indices_default_layout_ms"]
    )
    return figures


def iteration(precision: str, copy: bool, x: torch.Tensor, superpixels: torch.Tensor):
    torch.manual_seed(0)
    net = KanezakiNet(q=100, n_conv=2)
    forward, x = network_forward(net, x, precision=precision, channels_last=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    refinement = Refinement(q=100)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        response = forward(x)
        if copy:
            response = response.contiguous()
            target = refinement(response.detach().argmax(dim=1), superpixels)
            loss = F.cross_entropy(response, target, ignore_index=IGNORE_INDEX)
        else:
            loss, _, _ = self_training_loss(response, superpixels, refinement)
        loss.backward()
        optimizer.step()

    return step


def iterations(rounds: int) -> dict[str, float]:
    image = bench_image(BENCH_SHAPE)
    superpixels = slic_superpixels(image, n_segments=10000, compactness=100)
    superpixels = torch.from_numpy(superpixels).unsqueeze(0)
    x = torch.from_numpy(image.transpose(2, 0, 1).copy()).unsqueeze(0)
    figures = {}
    for precision in ("fp32", "bf16") if cpu_supports_bf16() else ("fp32",):
        steps = {"copy": iteration(precision, True, x, superpixels),
                 "in_place": iteration(precision, False, x, superpixels)}  # fmt: skip
        times: dict[str, list[float]] = {name: [] for name in steps}
        for step in steps.values():
            step()  # warm-up
        for _ in range(rounds):
            for name, step in steps.items():
                started = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - started)
        for name in steps:
            figures[f"{precision}_channels_last_{name}_s"] = statistics.median(times[name])
        figures[f"{precision}_copy_over_in_place"] = (
            figures[f"{precision}_channels_last_copy_s"]
            / figures[f"{precision}_channels_last_in_place_s"]
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch threads (default: torch's)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=8, help="alternating iterations")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    figures = {**reductions(), **iterations(args.rounds)}
    for name, value in figures.items():
        print(f"{name:40s} {value:9.3f}")
    about = machine()
    print(f"threads {args.threads}; CPU {about.get('cpu_name')}; "
          f"instruction sets {', '.join(about.get('cpu_instruction_sets') or [])}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({**figures, **about, "threads": args.threads}, handle, indent=2)


if __name__ == "__main__":
    main()
