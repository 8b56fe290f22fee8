"""Training throughput: hybrid-spiking LMU in NengoDL vs keras-lmu's LMU.

Same network size (hidden units, order, theta), same sequence length, same batch
size, same number of training sequences, measured in one run, one after the other
on this machine. Each model first runs one warm-up epoch (graph building and
tracing), then ``--repeats`` timed epochs; the best epoch counts.

Variants:

* ``nengo_dl_linear``: the `nengo_hybrid.networks.LMU` with its memory simulated
  step by step in NengoDL (memory node with the ``Ad`` recurrence).
* ``nengo_dl_precomputed``: the same network with the linear time-invariant memory
  computed for all steps at once (FFT convolution, `memory_response`) and fed to
  the memory node; the time of that convolution is included in the epoch time.
* ``keras_lmu``: ``keras_lmu.LMU`` (memory_d=1, no hidden→memory or memory→memory,
  input→hidden, a ``SimpleRNNCell`` hidden layer with ReLU), which keras-lmu runs
  with its FFT feedforward memory, plus a Dense readout. Non-spiking.

The ratio reported is keras-lmu time / NengoDL time (> 1: NengoDL is faster).

Usage::

    python benchmarks/lmu_throughput.py [--n-hidden 64 --order 64 --steps 196
                                         --batch 100 --n-train 1000]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from nengo_hybrid.io import atomic_write_text, environment_info

RESULTS = Path(__file__).parent / "results"


def data(n_train, steps, seed=0):
    """Real psMNIST sequences (embedded subset), pooled to ``steps`` pixels."""
    from nengo_hybrid.data import psmnist

    pool = {784: 1, 196: 2, 49: 4, 16: 7}[steps]
    d = psmnist(source="embedded", pool=pool)
    return d.x_train[:n_train], d.y_train[:n_train], d.description


def nengo_dl_epoch(args, x, y, memory):
    """Return a function training one epoch of the hybrid LMU in NengoDL."""
    import nengo_dl
    import tensorflow as tf

    from nengo_hybrid.networks import LMUClassifier, hybrid_relu

    net = LMUClassifier(
        n_hidden=args.n_hidden,
        order=args.order,
        theta=args.steps,
        hidden_neurons=hybrid_relu(precision=2.0),
        memory=memory,
        seed=0,
    )
    sim = nengo_dl.Simulator(
        net,
        minibatch_size=args.batch,
        progress_bar=False,
        seed=0,
        unroll_simulation=args.unroll,
    )
    sim.compile(
        optimizer=tf.optimizers.Adam(1e-3),
        loss={net.probe: tf.losses.SparseCategoricalCrossentropy(from_logits=True)},
    )

    def epoch():
        inputs = net.inputs(x)  # includes the FFT memory when precomputed
        sim.fit(inputs, {net.probe: net.targets(y)}, epochs=1, verbose=0)

    return epoch, sim


def keras_lmu_epoch(args, x, y):
    """Return a function training one epoch of keras-lmu's LMU of the same size."""
    import keras_lmu
    import tensorflow as tf

    inp = tf.keras.Input((args.steps, 1))
    lmu = keras_lmu.LMU(
        memory_d=1,
        order=args.order,
        theta=args.steps,
        hidden_cell=tf.keras.layers.SimpleRNNCell(args.n_hidden, activation="relu"),
        hidden_to_memory=False,
        memory_to_memory=False,
        input_to_hidden=True,
        kernel_initializer="ones",
    )(inp)
    model = tf.keras.Model(inp, tf.keras.layers.Dense(10)(lmu))
    model.compile(
        optimizer=tf.optimizers.Adam(1e-3),
        loss=tf.losses.SparseCategoricalCrossentropy(from_logits=True),
    )

    def epoch():
        model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)

    return epoch, model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-hidden", type=int, default=64)
    parser.add_argument("--order", type=int, default=64)
    parser.add_argument("--steps", type=int, default=196, choices=[16, 49, 196, 784])
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--unroll",
        type=int,
        default=1,
        help="NengoDL unroll_simulation (must divide --steps)",
    )
    parser.add_argument(
        "--variants", default="nengo_dl_precomputed,nengo_dl_linear,keras_lmu"
    )
    parser.add_argument("--out", default=str(RESULTS / "lmu_throughput"))
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.random.set_seed(0)
    x, y, description = data(args.n_train, args.steps)
    variants = args.variants.split(",")
    epochs, params, closers = {}, {}, []
    for variant in variants:  # build and warm up (trace) every model first
        if variant == "keras_lmu":
            epochs[variant], model = keras_lmu_epoch(args, x, y)
            weights = model.trainable_weights
        else:
            memory = variant.replace("nengo_dl_", "")
            epochs[variant], sim = nengo_dl_epoch(args, x, y, memory)
            weights = sim.keras_model.trainable_weights
            closers.append(sim)
        params[variant] = int(sum(np.prod(w.shape) for w in weights))
        epochs[variant]()
    # interleave the timed epochs (A, B, C, A, B, C, ...) so that load from other
    # processes on the shared machine affects every variant alike
    times = {variant: [] for variant in variants}
    for _ in range(args.repeats):
        for variant in variants:
            start = time.perf_counter()
            epochs[variant]()
            times[variant].append(time.perf_counter() - start)
    for sim in closers:
        sim.close()
    results = {}
    for variant in variants:
        best = min(times[variant])
        results[variant] = dict(
            epoch_seconds=best,
            median_epoch_seconds=float(np.median(times[variant])),
            all_epoch_seconds=times[variant],
            sequences_per_second=len(y) / best,
            trainable_parameters=params[variant],
        )
        print(
            f"{variant}: best {best:.2f} s/epoch, median "
            f"{np.median(times[variant]):.2f}, {params[variant]} params",
            flush=True,
        )

    ratios = {
        name: results["keras_lmu"]["epoch_seconds"] / r["epoch_seconds"]
        for name, r in results.items()
        if name != "keras_lmu" and "keras_lmu" in results
    }
    record = dict(
        config=vars(args),
        data=description,
        seeds=dict(tensorflow=0, weights=0),
        machine=environment_info(),
        results=results,
        speed_ratio_keras_over_nengo_dl=ratios,
        note="ratio > 1 means the NengoDL hybrid LMU trains faster than keras-lmu",
    )
    atomic_write_text(args.out + ".json", json.dumps(record, indent=2))
    lines = [
        "# LMU training throughput",
        "",
        f"Data: {description}. Hidden {args.n_hidden}, order {args.order}, theta "
        f"{args.steps}, batch {args.batch}, {len(y)} sequences per epoch, best of "
        f"{args.repeats} interleaved epochs after a warm-up. "
        f"Machine: {record['machine']['platform']}, "
        f"{record['machine']['cpu_count']} CPUs (shared).",
        "",
        "| variant | best s/epoch | median s/epoch | sequences/s | trainable params "
        "| keras-lmu time / this |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        ratio = ratios.get(name, 1.0 if name == "keras_lmu" else float("nan"))
        lines.append(
            f"| {name} | {r['epoch_seconds']:.2f} | {r['median_epoch_seconds']:.2f} | "
            f"{r['sequences_per_second']:.1f} | "
            f"{r['trainable_parameters']} | {ratio:.2f} |"
        )
    atomic_write_text(args.out + ".md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return record


if __name__ == "__main__":
    main()
