"""Training and inference throughput: the hybrid LMU in NengoDL against Keras RNNs.

One run builds every model of one size, warms each up (one training epoch and
one prediction pass: graph building, tracing, XLA compilation), then times
``--repeats`` rounds in which every model trains one epoch and predicts the
same sequences, models interleaved, so that load from other processes on a
shared machine falls on all of them alike. Throughput is sequences per second
of the best round; ratios are taken against Keras LSTM and keras-lmu measured
in the same run. Process CPU time is recorded beside wall time (on a machine
shared with other work, it is the steadier of the two).

Models (same hidden units, batch and sequences):

* ``hybrid_lmu``: `nengo_hybrid.networks.LMUClassifier` with HybridSpiking
  hidden neurons, trained by `nengo_hybrid.training.fit` (annealed precision,
  the precomputed memory computed each epoch) on the fast path: NengoDL's
  loop with fixed-size buffers (`nengo_hybrid.dl.fixed_size_loop`) and XLA;
  the readout run once after the loop on the last step
  (`nengo_hybrid.dl._last_step_ops`), the hidden layer's history left out of
  the training step (`nengo_hybrid.dl.prune_training_probes`) and one input
  pipeline per simulator (`nengo_hybrid.training.fit`);
* ``hybrid_lmu_xla``: the same with the fixed-size loop and XLA (as ``auto``
  chooses it) only: the path before the last three changes (readout every
  step, hidden history in the training step, an input pipeline traced per
  epoch);
* ``hybrid_lmu_no_xla``: ``hybrid_lmu`` without XLA (which `training.fit`'s
  ``"auto"`` chooses for sequences longer than
  `nengo_hybrid.dl.XLA_MAX_SEQUENCE_STEPS`);
* ``hybrid_lmu_before``: the same, built with NengoDL's own loop, no XLA (the
  path before the fixed-size loop);
* ``rate_lmu``: the same LMU with ReLU rate neurons (fast path, ``sim.fit``);
* ``keras_lmu``: keras-lmu's ``LMU`` (FFT memory, SimpleRNN ReLU hidden cell);
* ``lstm``, ``gru``: ``tf.keras.layers.LSTM`` / ``GRU`` and a Dense readout.

Writes ``results/training_throughput_SIZE.{json,md}``.

Usage::

    python benchmarks/training_throughput.py --size quick --n-train 1000
    python benchmarks/training_throughput.py --size paper --n-train 200 \\
        --models hybrid_lmu,hybrid_lmu_before,keras_lmu,lstm
"""

import argparse
import contextlib
import json
import os
import time
from pathlib import Path

import numpy as np

from nengo_hybrid.io import atomic_write_json, atomic_write_text, environment_info

RESULTS = Path(__file__).parent / "results"
SIZES = {
    "quick": dict(n_hidden=64, order=32, steps=49),
    "paper": dict(n_hidden=212, order=256, steps=784),
}
MODELS = (
    "hybrid_lmu",
    "hybrid_lmu_xla",
    "hybrid_lmu_no_xla",
    "hybrid_lmu_before",
    "rate_lmu",
    "keras_lmu",
    "lstm",
    "gru",
)
SEED = 0


def load(n, steps):
    """Real psMNIST sequences (embedded digits), pooled to ``steps`` pixels."""
    from nengo_hybrid.data import psmnist

    pool = {784: 1, 196: 2, 49: 4}[steps]
    d = psmnist(source="embedded", pool=pool)
    return d.x_train[:n], d.y_train[:n], d.description


@contextlib.contextmanager
def xla_only():
    """The fast path as it was before the readout, pruning and pipeline changes."""
    from nengo_hybrid import dl, training

    saved = (
        dl._settings["last_step_ops"],
        dl.prune_training_probes,
        training._Feed.dataset_of,
    )
    dl._settings["last_step_ops"] = False
    dl.prune_training_probes = lambda sim, enabled=True: set()
    training._Feed.dataset_of = staticmethod(
        lambda minibatches, role: minibatches.dataset()
    )
    try:
        yield
    finally:
        dl._settings["last_step_ops"] = saved[0]
        dl.prune_training_probes = saved[1]
        training._Feed.dataset_of = saved[2]


def previous_path(fn, enabled):
    """``fn`` run inside `xla_only` (every call: tracing happens in the first)."""
    if not enabled:
        return fn

    def run():
        with xla_only():
            return fn()

    return run


def nengo_dl_model(
    size, batch, x, y, spiking=True, fast=True, previous=False, xla="auto"
):
    """``(train_epoch, predict, close)`` for the LMU in NengoDL."""
    import nengo
    import nengo_dl
    import tensorflow as tf

    from nengo_hybrid import dl, training
    from nengo_hybrid.networks import LMUClassifier, hybrid_relu
    from nengo_hybrid.pipeline.train import quiet
    from nengo_hybrid.schedules import Geometric

    net = LMUClassifier(
        n_hidden=size["n_hidden"],
        order=size["order"],
        theta=size["steps"],
        hidden_neurons=hybrid_relu(2.0) if spiking else nengo.RectifiedLinear(),
        memory="precomputed",
        seed=SEED,
    )
    dl.configure_classifier(net)
    with dl.fixed_size_loop(fast), quiet():
        sim = nengo_dl.Simulator(
            net, minibatch_size=batch, seed=SEED, progress_bar=False
        )
    sim.compile(
        optimizer=tf.optimizers.Adam(1e-3),
        loss={net.probe: tf.losses.SparseCategoricalCrossentropy(from_logits=True)},
    )
    # XLA as `training.fit` chooses it for a full training run (the timed
    # epochs alone are below dl.XLA_MIN_BATCH_STEPS)
    xla = dl.use_xla(sim, xla if fast else False)
    targets = {net.probe: net.targets(y)}

    def train_epoch():
        inputs = net.inputs(x)  # the FFT memory counts as training time
        if spiking:
            training.fit(sim, inputs, targets, Geometric(64, 2), progress=False,
                         jit_compile=xla)  # fmt: skip
        else:
            sim.fit(inputs, targets, epochs=1, verbose=0)

    def predict():
        sim.predict(net.inputs(x), verbose=0)

    return (
        previous_path(train_epoch, previous),
        previous_path(predict, previous),
        sim.close,
        sim.keras_model.trainable_weights,
    )


def keras_model(name, size, batch, x, y):
    """``(train_epoch, predict, close)`` for a Keras RNN of the same size."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    inp = tf.keras.Input((size["steps"], 1), batch_size=batch)
    if name == "keras_lmu":
        import keras_lmu

        layer = keras_lmu.LMU(
            memory_d=1,
            order=size["order"],
            theta=size["steps"],
            hidden_cell=tf.keras.layers.SimpleRNNCell(
                size["n_hidden"], activation="relu"
            ),
            hidden_to_memory=False,
            memory_to_memory=False,
            input_to_hidden=True,
            kernel_initializer="ones",
        )
    else:
        rnn = {"lstm": tf.keras.layers.LSTM, "gru": tf.keras.layers.GRU}[name]
        layer = rnn(size["n_hidden"])
    model = tf.keras.Model(inp, tf.keras.layers.Dense(10)(layer(inp)))
    model.compile(
        optimizer=tf.optimizers.Adam(1e-3),
        loss=tf.losses.SparseCategoricalCrossentropy(from_logits=True),
    )

    def train_epoch():
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)

    def predict():
        model.predict(x, batch_size=batch, verbose=0)

    return train_epoch, predict, lambda: None, model.trainable_weights


def build(name, size, batch, x, y):
    if name.startswith(("hybrid_lmu", "rate_lmu")):
        return nengo_dl_model(
            size,
            batch,
            x,
            y,
            spiking=name != "rate_lmu",
            fast=name != "hybrid_lmu_before",
            previous=name == "hybrid_lmu_xla",
            xla=False if name == "hybrid_lmu_no_xla" else "auto",
        )
    return keras_model(name, size, batch, x, y)


def timed(fn):
    """``(wall seconds, process CPU seconds)`` of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(names, size, batch, x, y, repeats):
    """Warm up every model, then time interleaved rounds of epochs and predictions."""
    results = {}
    with contextlib.ExitStack() as stack:
        models = {}
        for name in names:
            tic = time.perf_counter()
            train, predict, close, weights = build(name, size, batch, x, y)
            stack.callback(close)
            train()
            predict()
            models[name] = (train, predict)
            results[name] = dict(
                warmup_seconds=time.perf_counter() - tic,
                trainable_parameters=int(sum(np.prod(w.shape) for w in weights)),
                train=[],
                predict=[],
                load=[],
            )
            print(
                f"{name}: warm-up {results[name]['warmup_seconds']:.1f} s", flush=True
            )
        for _ in range(repeats):
            for name, (train, predict) in models.items():
                results[name]["train"].append(timed(train))
                results[name]["predict"].append(timed(predict))
                results[name]["load"].append(os.getloadavg()[0])
    return summarize(results, len(y))


def summarize(results, n):
    """Throughputs of the best and of the median round (``n`` sequences each).

    The best round is what the load disturbed least; on a shared machine a
    single lucky round can make it, so the median round is recorded too.
    """
    for r in results.values():
        for kind in ("train", "predict"):
            walls = [w for w, _ in r[kind]]
            cpus = [c for _, c in r[kind]]
            r[f"{kind}_sequences_per_second"] = n / min(walls)
            r[f"{kind}_sequences_per_cpu_second"] = n / min(cpus)
            r[f"{kind}_sequences_per_second_median"] = n / float(np.median(walls))
            r[f"{kind}_sequences_per_cpu_second_median"] = n / float(np.median(cpus))
    return results


def all_ratios(results):
    keys = {
        "train": "train_sequences_per_second",
        "train_cpu": "train_sequences_per_cpu_second",
        "predict": "predict_sequences_per_second",
    }
    out = {}
    for short, key in keys.items():
        for median in ("", "_median"):
            for base in ("lstm", "keras_lmu"):
                out[f"{short}{median}_vs_{base}"] = ratios(results, base, key + median)
    return out


def ratios(results, baseline, key):
    if baseline not in results:
        return {}
    return {name: r[key] / results[baseline][key] for name, r in results.items()}


def markdown(record):
    cfg, results = record["config"], record["results"]
    lines = [
        f"# Training throughput: {cfg['size']} size",
        "",
        f"Data: {record['data']}. Hidden {cfg['n_hidden']}, order {cfg['order']}, "
        f"{cfg['steps']} steps, batch {cfg['batch']}, {cfg['n_train']} sequences per "
        f"epoch; best of {cfg['repeats']} interleaved rounds after a warm-up; seed "
        f"{SEED}. Machine: {record['machine']['platform']}, "
        f"{record['machine']['cpu_count']} CPUs, **shared with other engineers' "
        f"jobs during the run**: load average {min(record['load']):.1f}-"
        f"{max(record['load']):.1f} (1 min). Wall-time throughputs are depressed by "
        "that load; ratios compare models timed in the same rounds. CPU-time "
        "throughput (sequences per second of this process's CPU time) is the "
        "steadier measure under load.",
        "",
        "| model | params | train seq/s | train seq/CPU-s | train / LSTM | "
        "train / keras-lmu | train CPU / LSTM | train CPU / keras-lmu | "
        "infer seq/s | infer / LSTM | infer / keras-lmu | warm-up s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    r_med = record["ratios"].get("train_median_vs_lstm", {})
    r_cpu_med = record["ratios"].get("train_cpu_median_vs_lstm", {})
    r_cpu_med_klmu = record["ratios"].get("train_cpu_median_vs_keras_lmu", {})
    i_med = record["ratios"].get("predict_median_vs_lstm", {})
    r_lstm = record["ratios"].get("train_vs_lstm", {})
    r_klmu = record["ratios"].get("train_vs_keras_lmu", {})
    r_cpu = record["ratios"].get("train_cpu_vs_lstm", {})
    r_cpu_klmu = record["ratios"].get("train_cpu_vs_keras_lmu", {})
    i_lstm = record["ratios"].get("predict_vs_lstm", {})
    i_klmu = record["ratios"].get("predict_vs_keras_lmu", {})

    def f(d, k):
        return f"{d[k]:.2f}" if k in d else "-"

    for name, r in results.items():
        lines.append(
            f"| {name} | {r['trainable_parameters']} | "
            f"{r['train_sequences_per_second']:.0f} | "
            f"{r['train_sequences_per_cpu_second']:.0f} | {f(r_lstm, name)} | "
            f"{f(r_klmu, name)} | {f(r_cpu, name)} | {f(r_cpu_klmu, name)} | "
            f"{r['predict_sequences_per_second']:.0f} | {f(i_lstm, name)} | "
            f"{f(i_klmu, name)} | {r['warmup_seconds']:.0f} |"
        )
    lines += [
        "",
        f"Median of the {cfg['repeats']} rounds (the best round above can be one "
        "that the load happened to spare):",
        "",
        "| model | train / LSTM | train CPU / LSTM | train CPU / keras-lmu | "
        "infer / LSTM |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in results:
        lines.append(
            f"| {name} | {f(r_med, name)} | {f(r_cpu_med, name)} | "
            f"{f(r_cpu_med_klmu, name)} | {f(i_med, name)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--markdown-only",
        action="store_true",
        help="recompute the summaries of the existing results JSON and rewrite "
        "both files, without running anything",
    )
    args = parser.parse_args(argv)
    stem = args.out / f"training_throughput_{args.size}"
    if args.markdown_only:
        record = json.loads(stem.with_suffix(".json").read_text())
        summarize(record["results"], record["config"]["n_train"])
        record["ratios"] = all_ratios(record["results"])
        atomic_write_json(stem.with_suffix(".json"), record)
        text = markdown(record)
        atomic_write_text(stem.with_suffix(".md"), text)
        print(text)
        return record

    size = SIZES[args.size]
    names = args.models.split(",")
    x, y, description = load(args.n_train, size["steps"])
    results = measure(names, size, args.batch, x, y, args.repeats)
    record = dict(
        benchmark="training_throughput",
        config=dict(vars(args), **size, out=str(args.out)),
        data=description,
        seeds=dict(weights=SEED, tensorflow=SEED, simulator=SEED),
        machine=environment_info(),
        load=[v for r in results.values() for v in r["load"]],
        results=results,
        ratios=all_ratios(results),
    )
    atomic_write_json(stem.with_suffix(".json"), record)
    text = markdown(record)
    atomic_write_text(stem.with_suffix(".md"), text)
    print(text)
    return record


if __name__ == "__main__":
    main()
