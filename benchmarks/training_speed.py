"""Training-epoch time: HybridSpiking against NengoDL's SpikingRectifiedLinear.

Builds the same small network (784 -> 256 -> 64 -> 10, digits presented for a
few steps) with each neuron type, trains each for one warm-up epoch and then
times the following epochs, alternating the two types so both see the same
machine load. Writes ``results/training_speed.{json,md}``.

Example::

    python benchmarks/training_speed.py --samples 2000 --repeats 5
"""

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import nengo
import nengo_dl
import numpy as np
import tensorflow as tf

from nengo_hybrid import HybridSpiking
from nengo_hybrid.data import EMBEDDED_SOURCE, embedded_mnist
from nengo_hybrid.io import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
    markdown_table,
)

RESULTS = Path(__file__).parent / "results"


def build(neuron_type, seed):
    with nengo.Network(seed=seed) as net:
        nengo_dl.configure_settings(stateful=False)
        net.config[nengo.Connection].synapse = None
        inp = nengo.Node(np.zeros(784))
        layer = inp
        for size in (256, 64):
            ens = nengo.Ensemble(size, 1, neuron_type=neuron_type)
            nengo.Connection(layer, ens.neurons, transform=nengo_dl.dists.Glorot())
            layer = ens.neurons
        out = nengo.Node(size_in=10)
        nengo.Connection(layer, out, transform=nengo_dl.dists.Glorot())
        probe = nengo.Probe(out)
    return net, inp, probe


def time_epochs(neuron_types, x, y, args):
    """Time epochs of each type, interleaved so both see the same machine load."""
    with contextlib.ExitStack() as stack:
        runs = {}
        for name, neuron_type in neuron_types.items():
            net, inp, probe = build(neuron_type, args.seed)
            sim = stack.enter_context(
                nengo_dl.Simulator(
                    net, minibatch_size=args.batch, progress_bar=False, seed=args.seed
                )
            )
            sim.compile(
                optimizer=tf.optimizers.Adam(1e-3),
                loss={probe: tf.losses.SparseCategoricalCrossentropy(from_logits=True)},
            )
            runs[name] = (sim, {inp: x}, {probe: y})
        first = {name: _timed_epoch(*run) for name, run in runs.items()}
        times = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                times[name].append(_timed_epoch(*run))
    return first, times


def _timed_epoch(sim, x, y):
    start = time.perf_counter()
    sim.fit(x, y, epochs=1, verbose=0)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--samples", type=int, default=2000, help="training digits per epoch"
    )
    parser.add_argument(
        "--steps", type=int, default=8, help="steps each digit is shown"
    )
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per type")
    parser.add_argument("--precision", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    tf.random.set_seed(args.seed)
    images, labels = embedded_mnist()
    x = np.repeat(images[: args.samples, None, :], args.steps, axis=1)
    y = np.repeat(labels[: args.samples, None, None], args.steps, axis=1)

    types = {
        "HybridSpiking(RectifiedLinear, p=%g)" % args.precision: HybridSpiking(
            nengo.RectifiedLinear(), precision=args.precision
        ),
        "nengo.SpikingRectifiedLinear": nengo.SpikingRectifiedLinear(),
    }
    first, times = time_epochs(types, x, y, args)
    rows = [
        dict(
            neuron_type=name,
            first_epoch_s=first[name],
            epoch_s_median=statistics.median(times[name]),
            epoch_s=times[name],
        )
        for name in types
    ]
    baseline = rows[1]["epoch_s_median"]
    for row in rows:
        row["ratio_to_spiking_relu"] = row["epoch_s_median"] / baseline

    result = dict(
        benchmark="training_speed",
        config=vars(args) | {"out": str(args.out)},
        data=f"{EMBEDDED_SOURCE}; first {args.samples} digits, each shown for {args.steps} steps",
        environment=environment_info(),
        rows=rows,
    )
    atomic_write_json(args.out / "training_speed.json", result)
    table = markdown_table(
        rows,
        [
            ("neuron_type", "neuron type", ""),
            ("first_epoch_s", "first epoch (s, incl. tracing)", ".2f"),
            ("epoch_s_median", "epoch (s, median)", ".2f"),
            ("ratio_to_spiking_relu", "ratio", ".2f"),
        ],
    )
    header = (
        "# Training speed: one NengoDL epoch\n\n"
        f"Network 784-256-64-10, batch {args.batch}, {args.samples} digits x {args.steps} steps, "
        f"seed {args.seed}, {args.repeats} timed epochs each after one warm-up, interleaved.\n"
        f"Data: {result['data']}.\n\n"
    )
    atomic_write_text(args.out / "training_speed.md", header + table)
    print(table)


if __name__ == "__main__":
    main()
