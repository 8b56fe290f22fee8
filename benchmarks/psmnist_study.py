"""The psMNIST study: hybrid-spiking LMU vs non-spiking LMU, LSTM and GRU.

Trains, on the same data split, with the same epoch budget, minibatch size,
optimizer (Adam) and learning rate:

* the hybrid-spiking LMU of a model recipe (default ``models/lmu_quick.py``) at
  several final precisions, with interpolation training
  (`nengo_hybrid.training.fit`, precision annealed geometrically from the
  recipe's start precision to the final one);
* the same LMU with non-spiking ReLU hidden units (NengoDL, plain ``sim.fit``);
* Keras LSTM and GRU with the same number of hidden units.

and writes a paper-style table (test accuracy, activity bits, significant bits
per weight multiply, parameters, training time) as JSON and markdown, plus a
plot of test accuracy against activity bits, to ``benchmarks/results/``. The
bit metrics are `nengo_hybrid.metrics.activity_bits` and ``significant_bits``
(our definitions, see that module) of the hidden layer's spike counts on the
whole test set; non-spiking models send 32-bit floats.

Usage::

    python benchmarks/psmnist_study.py [--recipe models/lmu_quick.py]
        [--precisions 1,2,4,8] [--epochs N] [--n-train N] [--source embedded]
"""

import argparse
import runpy
import time
from pathlib import Path

import nengo
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
FLOAT_BITS = 32


def load_data(recipe, source, n_train):
    """psMNIST as the recipe asks, from ``source``; optionally fewer training examples."""
    from nengo_hybrid.data import psmnist

    data = psmnist(**{**recipe["data"], "source": source})
    if data.n_steps != recipe["n_steps"]:
        raise ValueError(
            f"recipe expects {recipe['n_steps']} steps, data has {data.n_steps}"
        )
    if n_train:
        data.x_train, data.y_train = data.x_train[:n_train], data.y_train[:n_train]
    return data


def _simulator(net, recipe):
    import nengo_dl
    import tensorflow as tf

    sim = nengo_dl.Simulator(
        net,
        minibatch_size=recipe["minibatch_size"],
        seed=recipe["seed"],
        progress_bar=False,
    )
    sim.compile(
        optimizer=tf.optimizers.Adam(recipe["learning_rate"]),
        loss={net.probe: tf.losses.SparseCategoricalCrossentropy(from_logits=True)},
        metrics={net.probe: tf.metrics.SparseCategoricalAccuracy(name="acc")},
    )
    return sim


def _test_nengo_dl(sim, net, hidden, data, precision, memory=None):
    from nengo_hybrid import dl, metrics

    out = sim.predict(net.inputs(data.x_test), verbose=0)
    accuracy = float(np.mean(np.argmax(out[net.probe][:, -1], axis=-1) == data.y_test))
    result = dict(test_accuracy=accuracy)
    if memory is not None:
        ens = net.lmu.memory_neurons
        p = dl.get_precision(sim)[ens]
        counts = metrics.spike_counts(out[memory], ens.neuron_type, sim.dt, precision=p)
        result.update(
            memory_activity_bits=float(metrics.activity_bits(counts)),
            memory_significant_bits=float(metrics.significant_bits(counts)),
        )
    if precision is not None:
        neuron_type = net.lmu.hidden.neuron_type
        counts = metrics.spike_counts(
            out[hidden], neuron_type, sim.dt, precision=precision
        )
        result.update(
            activity_bits=float(metrics.activity_bits(counts)),
            significant_bits=float(metrics.significant_bits(counts)),
            mean_abs_spikes_per_step=float(np.mean(np.abs(counts))),
            max_spikes_per_step=int(np.max(np.abs(counts))),
        )
    else:
        result.update(activity_bits=FLOAT_BITS, significant_bits=None)
    return result


def _memory_probe(net):
    with net:
        probe = nengo.Probe(net.lmu.memory_neurons.neurons, label="memory_spikes")
        net.config[probe].keep_history = True
    return probe


def run_hybrid(recipe, data, precision, epochs, memory_precision=None):
    """Interpolation-train the hybrid LMU to ``precision``; return its row.

    With ``memory_precision`` the memory is quantized too (`hybrid_relu` on/off
    pairs, stepped in the simulator), annealed from the same start precision.
    """
    from nengo_hybrid import schedules, training
    from nengo_hybrid.networks import build_classifier, hybrid_relu

    start = float(recipe["schedule"]["start"])
    schedule = schedules.Geometric(max(start, precision), precision)
    memory, memory_probe, name = None, None, f"hybrid LMU, precision {precision:g}"
    if memory_precision is not None:
        memory = hybrid_relu(max(start, memory_precision))
        name += f", spiking memory precision {memory_precision:g}"
    net = build_classifier(recipe, precision=precision, memory=memory)
    hidden = net.hidden_probe()
    if memory is not None:
        memory_probe = _memory_probe(net)
        schedule = {
            net.lmu.hidden: schedule,
            net.lmu.memory_neurons: schedules.Geometric(
                max(start, memory_precision), memory_precision
            ),
        }
    sim = _simulator(net, recipe)
    tic = time.perf_counter()
    history = training.fit(
        sim,
        net.inputs(data.x_train),
        {net.probe: net.targets(data.y_train)},
        schedule=schedule,
        epochs=epochs,
        seed=recipe["seed"],
        progress=False,
        validation_data=(net.inputs(data.x_val), {net.probe: net.targets(data.y_val)}),
    )
    train_seconds = time.perf_counter() - tic
    row = dict(
        model=name,
        kind="hybrid_lmu",
        precision=precision,
        memory="precomputed linear" if memory is None else "spiking",
        memory_precision=memory_precision,
        schedule={
            getattr(k, "label", "all"): v.to_dict()
            for k, v in (
                schedule.items() if isinstance(schedule, dict) else [(None, schedule)]
            )
        },
        parameters=net.lmu.trainable_parameters(),
        train_seconds=train_seconds,
        val_accuracy=next(
            (
                v
                for k, v in history.epochs[-1].items()
                if k.startswith("val_") and k.endswith("acc")
            ),
            None,
        ),
        epoch_history=[
            {k: v for k, v in e.items() if not isinstance(v, dict)}
            for e in history.epochs
        ],
    )
    row.update(_test_nengo_dl(sim, net, hidden, data, precision, memory_probe))
    sim.close()
    return row


def run_rate_lmu(recipe, data, epochs):
    """Train the non-spiking LMU (ReLU rate hidden units) in NengoDL."""
    from nengo_hybrid.networks import build_classifier

    net = build_classifier(recipe, spiking=False)
    sim = _simulator(net, recipe)
    tic = time.perf_counter()
    sim.fit(
        net.inputs(data.x_train),
        {net.probe: net.targets(data.y_train)},
        epochs=epochs,
        verbose=0,
        shuffle=True,
    )
    row = dict(
        model="LMU (non-spiking)",
        kind="rate_lmu",
        precision=None,
        memory="precomputed linear",
        parameters=net.lmu.trainable_parameters(),
        train_seconds=time.perf_counter() - tic,
    )
    row.update(_test_nengo_dl(sim, net, None, data, None))
    sim.close()
    return row


def run_keras(recipe, data, epochs, cell):
    """Train a Keras LSTM or GRU with the LMU's hidden size."""
    import tensorflow as tf

    tf.random.set_seed(recipe["seed"])
    layer = {"lstm": tf.keras.layers.LSTM, "gru": tf.keras.layers.GRU}[cell]
    model = tf.keras.Sequential(
        [
            tf.keras.Input((data.n_steps, 1)),
            layer(recipe["network"]["n_hidden"]),
            tf.keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=tf.optimizers.Adam(recipe["learning_rate"]),
        loss=tf.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    tic = time.perf_counter()
    model.fit(
        data.x_train,
        data.y_train,
        batch_size=recipe["minibatch_size"],
        epochs=epochs,
        verbose=0,
        validation_data=(data.x_val, data.y_val),
    )
    train_seconds = time.perf_counter() - tic
    logits = model.predict(data.x_test, batch_size=recipe["minibatch_size"], verbose=0)
    return dict(
        model=cell.upper(),
        kind=cell,
        precision=None,
        memory=None,
        parameters=int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        train_seconds=train_seconds,
        test_accuracy=float(np.mean(np.argmax(logits, -1) == data.y_test)),
        activity_bits=FLOAT_BITS,
        significant_bits=None,
    )


def plot(rows, path):
    """Accuracy against activity bits, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nengo_hybrid.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(5, 3.5))
    hybrid = [
        r for r in rows if r["kind"] == "hybrid_lmu" and not r.get("memory_precision")
    ]
    ax.plot(
        [r["activity_bits"] for r in hybrid],
        [r["test_accuracy"] for r in hybrid],
        "o-",
        label="hybrid-spiking LMU",
    )
    for r in hybrid:
        ax.annotate(
            f"p={r['precision']:g}",
            (r["activity_bits"], r["test_accuracy"]),
            fontsize=7,
            xytext=(3, -9),
            textcoords="offset points",
        )
    for r, marker in zip([r for r in rows if r not in hybrid], "Dsv^*"):
        ax.plot([r["activity_bits"]], [r["test_accuracy"]], marker, label=r["model"])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("activity bits (non-spiking: 32-bit float)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


COLUMNS = [
    ("model", "model", ""),
    ("test_accuracy", "test accuracy", ".3f"),
    ("memory", "memory", ""),
    ("activity_bits", "activity bits", ".2f"),
    ("memory_activity_bits", "memory activity bits", ".2f"),
    ("significant_bits", "significant bits / multiply", ".2f"),
    ("parameters", "trainable params", "d"),
    ("train_seconds", "training time (s)", ".0f"),
]


PAPER_BITS = 3.74


def claim_check(rows):
    """One sentence testing the paper's claim on these rows."""
    hybrid = [
        r
        for r in rows
        if r["kind"] == "hybrid_lmu" and r["activity_bits"] <= PAPER_BITS
    ]
    rnn = [r for r in rows if r["kind"] in ("lstm", "gru")]
    if not hybrid or not rnn:
        return "Claim check: not enough rows (need a hybrid LMU <= 3.74 bits and LSTM/GRU)."
    best = max(hybrid, key=lambda r: r["test_accuracy"])
    best_rnn = max(rnn, key=lambda r: r["test_accuracy"])
    verdict = (
        "beats"
        if best["test_accuracy"] > best_rnn["test_accuracy"]
        else "does NOT beat"
    )
    return (
        f"Claim check (paper: hybrid LMU at <= {PAPER_BITS} activity bits beats LSTM and "
        f"GRU): the best hybrid LMU at <= {PAPER_BITS} bits ({best['model']}, "
        f"{best['activity_bits']:.2f} bits, {best['test_accuracy']:.3f}) {verdict} the best "
        f"of LSTM/GRU ({best_rnn['model']}, {best_rnn['test_accuracy']:.3f}) at this scale "
        "(one seed, same epochs; see the caveats in the report)."
    )


def write_results(record, out):
    """Write the study's JSON and markdown atomically."""
    from nengo_hybrid.io import atomic_write_json, atomic_write_text, markdown_table

    atomic_write_json(out.with_suffix(".json"), record)
    cfg = record["config"]
    text = [
        "# psMNIST study",
        "",
        f"Data: {record['data']['description']}.",
        "",
        f"Recipe `{cfg['recipe']}`: {record['recipe']['network']}; every model trained "
        f"{cfg['epochs']} epochs, minibatch {record['recipe']['minibatch_size']}, Adam "
        f"lr {record['recipe']['learning_rate']}, seed {record['recipe']['seed']} "
        f"(weights, shuffling, simulator; TF seed {record['recipe']['seed']}). Hybrid "
        "LMUs: precision annealed geometrically from "
        f"{record['recipe']['schedule']['start']:g} to the final precision. Bits: "
        "hidden-layer spike counts on the whole test set (nengo_hybrid.metrics "
        "definitions). LSTM/GRU have as many hidden units as the LMU.",
        "",
        markdown_table(record["rows"], COLUMNS),
        claim_check(record["rows"]),
        "",
        f"Machine: {record['machine']['platform']}, {record['machine']['cpu_count']} "
        f"CPUs (shared with other jobs; times are indicative). Total "
        f"{record['total_seconds']:.0f} s.",
        "",
        f"![accuracy vs bits]({out.with_suffix('.png').name})",
        "",
    ]
    atomic_write_text(out.with_suffix(".md"), "\n".join(text))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=str(ROOT / "models" / "lmu_quick.py"))
    parser.add_argument("--precisions", default="1,2,4,8")
    parser.add_argument(
        "--spiking-memory",
        default="2:8",
        help="hidden:memory precision pairs with a spiking memory",
    )
    parser.add_argument("--baselines", default="rate_lmu,lstm,gru")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument(
        "--source", default="embedded", choices=["embedded", "full", "auto"]
    )
    parser.add_argument("--out", default=str(RESULTS / "psmnist_study"))
    args = parser.parse_args(argv)

    import tensorflow as tf

    from nengo_hybrid.io import environment_info

    recipe = runpy.run_path(args.recipe)["RECIPE"]
    epochs = args.epochs or recipe["epochs"]
    tf.random.set_seed(recipe["seed"])
    data = load_data(recipe, args.source, args.n_train)
    print(data.description, flush=True)
    start = time.perf_counter()
    rows = []
    jobs = [("hybrid", (float(p), None)) for p in args.precisions.split(",") if p]
    jobs += [
        ("hybrid", tuple(map(float, pair.split(":"))))
        for pair in args.spiking_memory.split(",")
        if pair
    ]
    jobs += [(b, None) for b in args.baselines.split(",") if b]
    out = Path(args.out)
    for kind, precision in jobs:
        tf.random.set_seed(recipe["seed"])
        if kind == "hybrid":
            row = run_hybrid(
                recipe, data, precision[0], epochs, memory_precision=precision[1]
            )
        elif kind == "rate_lmu":
            row = run_rate_lmu(recipe, data, epochs)
        else:
            row = run_keras(recipe, data, epochs, kind)
        rows.append(row)
        print(
            {
                k: row[k]
                for k in ("model", "test_accuracy", "activity_bits", "train_seconds")
            },
            flush=True,
        )
        record = dict(
            config=dict(
                vars(args),
                epochs=epochs,
                recipe=str(Path(args.recipe).resolve().relative_to(ROOT)),
            ),
            recipe=recipe,
            data=data.to_dict(),
            machine=environment_info(),
            rows=rows,
            total_seconds=time.perf_counter() - start,
            complete=len(rows) == len(jobs),
        )
        write_results(record, out)  # after every model, so partial runs keep results
    plot(rows, out.with_suffix(".png"))
    return record


if __name__ == "__main__":
    main()
