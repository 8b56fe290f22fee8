"""Batched emulator vs nengo-loihi's emulator: throughput, on the same mapped networks.

Two workloads, each built once into a nengo-loihi model (``target="sim"``):

* ``lmu_quick``: the quick LMU deployment (``models/lmu_quick.py``, built with
  `nengo_hybrid.networks.build_classifier`; untrained weights unless ``--run``
  gives a trained run folder): hidden layer `Thermometer` (``K``), the
  precomputed memory sent as host encoder spikes (8 levels, full scale 1.25x
  the largest value on 1000 training sequences, as `pipeline.deployable_network`),
  psMNIST digits (embedded MNIST), 49 steps + 1 chip step of host latency.
  Samples are digits (test split, then training split).
* ``random_mid``: a mid-size random network (3 hybrid ensembles, ReLU and LIF
  bases, decoded and recurrent neuron-to-neuron connections, Node input through
  nengo-loihi's own node encoder), 100 steps. Samples: the host spikes of the
  reference runs, circularly shifted in time by a different offset per sample.

For each workload, ``--reference-samples`` samples run on nengo-loihi's
emulator, each in a fresh simulator (build time excluded); nengo-loihi's
throughput is measured on its chip emulator alone (``EmulatorInterface.step``;
its host simulators excluded), fastest reference sample (the machine is
shared: best case against best case). The batched emulator then runs those samples
and the others; every probe output (chip probes and chip-to-host data) and
spike count of the reference samples must be bit-identical to nengo-loihi's
(``bit_identical``). For the LMU, the host encoder spikes of all samples are
computed by a NumPy replica of the host encoder (same elementwise operations
as Nengo's reference simulator), checked against the spikes nengo-loihi's host
sent for the reference samples (``host_spikes_identical``); its time is
reported separately and not included in the batched throughput.

Batched throughput: best of ``--repeats`` runs over ``--samples`` samples per
batch size; peak memory: ``tracemalloc`` peak (NumPy buffers) of one run.
Results: ``benchmarks/results/emulator_throughput.{json,md}``.

Usage::

    python benchmarks/emulator_throughput.py [--samples 1024] [--reference-samples 4]
        [--batch-sizes 16,32,64,128,512] [--run RUN] [--quick]
"""

import argparse
import os
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import nengo
import numpy as np

from nengo_hybrid.io import (
    atomic_write_json,
    atomic_write_text,
    environment_info,
    markdown_table,
)

RESULTS = Path(__file__).parent / "results"
DT = 0.001


# --- workloads --------------------------------------------------------------------


def lmu_workload(run=None, K=19):
    """The quick LMU deployment: ``(net, strategy, encoding, present, pool, values, info)``.

    ``present(x)`` makes the network play the sequences ``x``; ``values``
    ``(N, 49, d)`` are the memory node's values for the sample ``pool``.
    """
    from nengo_hybrid import pipeline
    from nengo_hybrid.data import psmnist
    from nengo_hybrid.hardware.inputs import encode_node_inputs
    from nengo_hybrid.hardware.strategies import Thermometer
    from nengo_hybrid.networks import build_classifier

    recipe = pipeline.load_recipe("lmu_quick")
    if run is None:
        net = build_classifier(recipe.RECIPE)
        data = psmnist(source="embedded", pool=4)
    else:
        _, net = pipeline.frozen_network(run)
        data = pipeline.load_data(recipe, pipeline._config(run)["data"])
    pool = np.concatenate([data.x_test, data.x_train])
    labels = np.concatenate([data.y_test, data.y_train])
    memory = net.lmu.memory
    values = net.inputs(data.x_train[:1000])[memory]
    scale = pipeline.INPUT_MARGIN * np.maximum(np.abs(values).max(axis=(0, 1)), 1e-3)
    (encoding,) = encode_node_inputs(net, {memory: scale}, levels=pipeline.INPUT_LEVELS)
    net.hidden_probe()
    values = net.inputs(pool)[memory]
    info = {
        "model": "models/lmu_quick.py",
        "weights": "untrained (build_classifier)" if run is None else trained(run),
        "strategy": f"Thermometer(K={K}) hidden layer",
        "input": f"memory as host encoder spikes, {pipeline.INPUT_LEVELS} levels",
        "data": data.description,
        "steps_per_sample": int(values.shape[1]) + 1,
        "n_test": len(data.x_test),
        "labels": labels,
    }

    def present(x):
        pipeline._present(net, x)

    strategy = {net.lmu.hidden: Thermometer(K)}
    return net, strategy, encoding, present, pool, values, info


def trained(run):
    """How the weights of run folder ``run`` were trained (its train.json)."""
    import json

    t = json.loads((Path(run) / "train.json").read_text())
    return (
        f"trained (`nengo-hybrid train --model {t['model']}`: {t['epochs']} epochs, "
        f"seed {t['seed']}, {t['schedule_repr']}, validation accuracy "
        f"{100 * t['val_accuracy']:.1f}%)"
    )


def mid_network(x, n=600, seed=7):
    """Three hybrid ensembles of ``n`` neurons fed by a Node playing ``x`` (T, 2)."""
    from nengo_hybrid import HybridSpiking

    rng = np.random.RandomState(seed)
    with nengo.Network(seed=seed) as net:
        u = nengo.Node(nengo.processes.PresentInput(x, DT), label="u")
        relu = HybridSpiking(nengo.RectifiedLinear(), precision=2.0)
        lif = HybridSpiking(nengo.LIFRate(), precision=1.5)
        a = nengo.Ensemble(n, 2, neuron_type=relu, label="a")
        b = nengo.Ensemble(n, 2, neuron_type=lif, label="b")
        c = nengo.Ensemble(n, 1, neuron_type=relu, label="c")
        nengo.Connection(u, a, synapse=0.005)
        w = (
            rng.randn(n, n)
            * (rng.rand(n, n) < 0.05)
            * 10 ** rng.uniform(-3, -1, (n, n))
        )
        nengo.Connection(a.neurons, a.neurons, transform=w, synapse=0.01)
        nengo.Connection(a, b, synapse=0.01)
        nengo.Connection(b, c, function=lambda v: v[0] * v[1], synapse=0.01)
        nengo.Connection(c, c, synapse=0.05)
        for ens in (a, b, c):
            nengo.Probe(ens.neurons)
        nengo.Probe(c, synapse=0.01)
    return net


def smooth_signal(n_steps, d, seed):
    rng = np.random.RandomState(seed)
    t = np.arange(n_steps)[:, None] * DT
    f = rng.uniform(1, 8, size=(3, d))
    ph = rng.uniform(0, 2 * np.pi, size=(3, d))
    return np.sin(2 * np.pi * f[:, None] * t + ph[:, None]).mean(0)


# --- host encoder replica ------------------------------------------------------------


def host_encoder_spikes(net, encoding, values, dt=DT):
    """Spikes an `encode_node_inputs` host encoder sends, for ``values`` (B, T, d).

    The same elementwise operations as Nengo's reference simulator on the host:
    ``J = W x`` (one nonzero per row of ``W``, so the matrix product adds exact
    zeros to a single rounded product), the base type's ``step`` and
    `HybridSpiking.step`; nengo-loihi sends one spike per nonzero output.
    """
    ens = encoding["ensemble"]
    (conn,) = [
        c
        for c in net.all_connections
        if c.post_obj == ens.neurons and c.pre_obj is encoding["node"]
    ]
    W = np.asarray(conn.transform.init, dtype=np.float64)
    assert (
        np.all((W != 0).sum(axis=1) == 1)
        and np.all(ens.gain == 1)
        and np.all(ens.bias == 0)
    )
    nt = ens.neuron_type
    n_samples, n_steps, _ = values.shape
    J = values @ W.T  # (B, T, n)
    v = np.repeat(
        nt.make_state(ens.n_neurons, rng=np.random)["voltage"][None], n_samples, 0
    )
    rate = np.empty((n_samples, ens.n_neurons))
    out = np.empty_like(rate)
    spikes = np.zeros((n_samples, n_steps + 1, ens.n_neurons), dtype=np.int32)
    for t in range(n_steps):
        nt.base_type.step(dt, J[:, t], rate)
        nt.step(dt, rate, out, v)
        spikes[:, t] = out != 0
    return spikes


# --- runs ------------------------------------------------------------------------------


def nengo_loihi_reference(net, n_steps, strategy):
    """One sample on nengo-loihi's emulator: batched emulator, inputs, outputs, timing."""
    from nengo_hybrid.hardware import Simulator
    from nengo_hybrid.hardware.emulator import BatchedEmulator, NengoLoihiRecorder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = Simulator(
            net, dt=DT, strategy=strategy, target="sim", allow_violations=True
        )
        batched = BatchedEmulator(sim)
        recorder = NengoLoihiRecorder(sim)
        emulator = sim.sims["emulator"]
        step, chip_time = emulator.step, [0.0]

        def timed_step():
            t0 = time.perf_counter()
            step()
            chip_time[0] += time.perf_counter() - t0

        emulator.step = timed_step
        t0 = time.perf_counter()
        sim.run_steps(n_steps)
        total = time.perf_counter() - t0
        ref = {
            "inputs": recorder.inputs(n_steps),
            "outputs": recorder.outputs(),
            "spike_count": emulator.compartment.spike_count.copy(),
            "chip_s": chip_time[0],
            "total_s": total,
            "compartments": batched.layout.n_compartments,
            "cores": len(sim.model.blocks),
        }
        sim.close()
    return batched, ref


def identical(batched, ref, out, sample):
    """Whether batched sample ``sample`` equals nengo-loihi's run ``ref``.

    Each reference run built its own model; probes correspond in the order of
    ``model.nengo_probes`` (the same network structure).
    """
    for data, mine in zip(ref["outputs"].values(), batched.nengo_probes.values()):
        got = np.ascontiguousarray(out.probes[mine][sample])
        if (
            got.dtype != data.dtype
            or got.tobytes() != np.ascontiguousarray(data).tobytes()
        ):
            return False  # compared byte for byte
    return bool(np.array_equal(out.spike_count[sample], ref["spike_count"]))


def measure_batched(batched, inputs, batch_sizes, repeats):
    rows = []
    n = next(iter(inputs.values())).shape[0]
    for bs in batch_sizes:
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            batched.run(inputs, batch_size=bs)
            times.append(time.perf_counter() - t0)
        tracemalloc.start()
        out = batched.run(inputs, batch_size=bs)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        outputs = sum(a.nbytes for a in out.probes.values()) + out.spike_count.nbytes
        del out
        rows.append(
            {
                "batch_size": bs,
                "samples": n,
                "best_s": min(times),
                "median_s": float(np.median(times)),
                "samples_per_s": n / min(times),
                "peak_mb": peak / 2**20,
                "outputs_mb": outputs / 2**20,
            }
        )
        print(
            f"  batch {bs}: {n / min(times):.1f} samples/s, peak {peak / 2**20:.0f} MB"
            f" (outputs {outputs / 2**20:.0f} MB)"
        )
    return rows


def bench_lmu(args):
    net, strategy, encoding, present, pool, values, info = lmu_workload(
        args.run, args.K
    )
    n_steps = info["steps_per_sample"]
    n_ref = args.reference_samples
    batched, refs = None, []
    for i in range(n_ref):
        present(pool[i : i + 1])
        b, ref = nengo_loihi_reference(net, n_steps, strategy)
        if batched is None:
            batched = b
        assert (b.routing.matrix != batched.routing.matrix).nnz == 0  # same weights
        refs.append(ref)
        print(
            f"  nengo-loihi sample {i}: {1000 * ref['chip_s'] / n_steps:.2f} ms/step (chip)"
        )
    t0 = time.perf_counter()
    spikes = host_encoder_spikes(net, encoding, values[: args.samples])
    encoder_s = time.perf_counter() - t0
    (inp,) = batched.inputs
    # rows the chip uses within n_steps (host steps 1 .. n_steps - 1)
    host_ok = all(
        np.array_equal(
            spikes[i, : n_steps - 1], list(ref["inputs"].values())[0][: n_steps - 1]
        )
        for i, ref in enumerate(refs)
    )
    inputs = {inp: spikes}
    out = batched.run({inp: spikes[:n_ref]})
    exact = all(identical(batched, ref, out, i) for i, ref in enumerate(refs))
    rows = measure_batched(batched, inputs, args.batch_sizes, args.repeats)
    n_test, labels = info.pop("n_test"), info.pop("labels")
    result = summarize(
        "lmu_quick", info, refs, rows, n_steps, exact, host_ok, encoder_s
    )
    accuracy = test_accuracy(net, batched, encoding, values[:n_test], labels[:n_test])
    result.update(accuracy)
    return result


def test_accuracy(net, batched, encoding, values, labels):
    """Accuracy on the test digits from the batched emulator's chip-to-host data.

    The host readout (``output = W h + b``, read on the last step) is applied
    in NumPy to the hidden activities the chip sends to the host on the step
    the last input arrives; an approximate host (float rounding of the
    readout is not nengo's), for information.
    """
    model = batched.model
    (probe,) = [p for p in batched.nengo_probes if p in model.chip2host_params]
    spikes = host_encoder_spikes(net, encoding, values)
    t0 = time.perf_counter()
    out = batched.run({batched.inputs[0]: spikes}, probes=[probe])
    elapsed = time.perf_counter() - t0
    hidden = out[probe][:, -1]  # the step on which the last input arrives
    w = net.lmu.readout.transform.init
    b = net.lmu.readout_bias.transform.init @ np.ones(1)
    logits = hidden @ w.T + b
    return {
        "test_samples": int(len(labels)),
        "test_accuracy_batched": float(np.mean(logits.argmax(axis=1) == labels)),
        "test_set_seconds": elapsed,
    }


def bench_mid(args):
    n_steps = 100
    n_ref = args.reference_samples
    batched, refs = None, []
    for i in range(n_ref):
        net = mid_network(smooth_signal(n_steps, 2, seed=i), n=args.mid_neurons)
        b, ref = nengo_loihi_reference(net, n_steps, None)
        if batched is None:
            batched = b
        assert (b.routing.matrix != batched.routing.matrix).nnz == 0  # same weights
        refs.append(ref)
        print(
            f"  nengo-loihi sample {i}: {1000 * ref['chip_s'] / n_steps:.2f} ms/step (chip)"
        )
    (inp,) = batched.inputs
    recorded = np.stack([list(ref["inputs"].values())[0] for ref in refs])
    out = batched.run({inp: recorded})
    exact = all(identical(batched, ref, out, i) for i, ref in enumerate(refs))
    rng = np.random.RandomState(0)
    shifts = rng.randint(0, n_steps, size=args.samples)
    spikes = np.stack(
        [np.roll(recorded[i % n_ref], shifts[i], axis=0) for i in range(args.samples)]
    )
    rows = measure_batched(batched, {inp: spikes}, args.batch_sizes, args.repeats)
    info = {
        "model": f"3 hybrid ensembles x {args.mid_neurons} neurons "
        "(ReLU p=2, LIF p=1.5, ReLU p=2)",
        "input": "Node through nengo-loihi's node encoder; samples: recorded host "
        "spikes, time-shifted",
        "steps_per_sample": n_steps,
    }
    return summarize("random_mid", info, refs, rows, n_steps, exact, None, None)


def summarize(name, info, refs, rows, n_steps, exact, host_ok, encoder_s):
    # best case for both: fastest reference sample, fastest batched run
    chip_s = min(r["chip_s"] for r in refs)
    total_s = min(r["total_s"] for r in refs)
    ref_sps = 1 / chip_s
    best = max(rows, key=lambda r: r["samples_per_s"])
    result = {
        "workload": name,
        **info,
        "cores": refs[0]["cores"],
        "compartments": refs[0]["compartments"],
        "reference_samples": len(refs),
        "nengo_loihi_ms_per_step_chip": 1000 * chip_s / n_steps,
        "nengo_loihi_ms_per_step_total": 1000 * total_s / n_steps,
        "nengo_loihi_ms_per_step_chip_median": 1000
        * float(np.median([r["chip_s"] for r in refs]))
        / n_steps,
        "nengo_loihi_samples_per_s": ref_sps,
        "batched_samples_per_s": best["samples_per_s"],
        "best_batch_size": best["batch_size"],
        "peak_mb_at_best": best["peak_mb"],
        "outputs_mb_at_best": best["outputs_mb"],
        "ratio": best["samples_per_s"] / ref_sps,
        "bit_identical": bool(exact),
        "host_spikes_identical": host_ok,
        "host_encoder_s_per_sample": None
        if encoder_s is None
        else encoder_s / rows[0]["samples"],
        "batched_with_host_encoder_samples_per_s": None
        if encoder_s is None
        else 1 / (1 / best["samples_per_s"] + encoder_s / rows[0]["samples"]),
        "batch_sizes": rows,
    }
    print(
        f"{name}: nengo-loihi {ref_sps:.2f} samples/s, batched {best['samples_per_s']:.1f} "
        f"(batch {best['batch_size']}), ratio {result['ratio']:.0f}x, bit-identical {exact}"
    )
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--reference-samples", type=int, default=4)
    parser.add_argument("--batch-sizes", default="16,32,64,128,512")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--K", type=int, default=19, help="Thermometer levels (LMU)")
    parser.add_argument("--mid-neurons", type=int, default=600)
    parser.add_argument("--run", default=None, help="trained lmu_quick run folder")
    parser.add_argument("--workloads", default="lmu_quick,random_mid")
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--out", default=str(RESULTS / "emulator_throughput"))
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.reference_samples, args.repeats = 64, 2, 1
        args.batch_sizes = "16,64"
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    results = []
    started = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
    for name in args.workloads.split(","):
        print(name)
        results.append({"lmu_quick": bench_lmu, "random_mid": bench_mid}[name](args))
    record = {
        "benchmark": "emulator_throughput",
        "date": started,
        "samples": args.samples,
        "repeats": args.repeats,
        "load_average_at_end": os.getloadavg(),
        "command": "python benchmarks/emulator_throughput.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": environment_info(),
        "results": results,
    }
    atomic_write_json(args.out + ".json", record)
    atomic_write_text(args.out + ".md", markdown(record))
    print(f"wrote {args.out}.json and .md")


def markdown(record):
    columns = [
        ("workload", "workload", ""),
        ("compartments", "compartments", ""),
        ("steps_per_sample", "steps/sample", ""),
        ("nengo_loihi_ms_per_step_chip", "nengo-loihi ms/step (chip)", ".2f"),
        ("nengo_loihi_samples_per_s", "nengo-loihi samples/s", ".2f"),
        ("batched_samples_per_s", "batched samples/s", ".1f"),
        ("ratio", "ratio", ".0f"),
        ("best_batch_size", "best batch", ""),
        ("peak_mb_at_best", "peak MB", ".0f"),
        ("outputs_mb_at_best", "of which outputs MB", ".0f"),
        ("bit_identical", "bit-identical", ""),
    ]
    machine = record["machine"]
    lines = [
        "# Batched emulator throughput vs nengo-loihi's emulator",
        "",
        f"Date: {record['date']}. Machine: {machine['platform']}, {machine['cpu_count']} "
        "CPUs, shared with other jobs (load average at the end "
        f"{', '.join(f'{x:.1f}' for x in record['load_average_at_end'])}): timings "
        f"are noisy. Command: `{record['command']}`.",
        "",
        'Same built nengo-loihi model (`target="sim"`) for both emulators. '
        "nengo-loihi: its chip emulator only (`EmulatorInterface.step`; host "
        "simulators and build excluded), one sample per fresh simulator, the "
        "fastest of the reference samples (the JSON has the median too). Batched: "
        f"{record['samples']} samples per run, "
        f"best of {record['repeats']} runs per batch size; peak memory is the "
        "`tracemalloc` peak of one run (NumPy buffers), including the returned "
        "probe outputs (nengo-loihi's format: float64 per probed value and step). "
        "*bit-identical*: every probe output (chip probes and chip-to-host data) "
        "and spike count of every reference sample equals nengo-loihi's, byte for "
        "byte.",
        "",
        markdown_table(record["results"], columns),
    ]
    for r in record["results"]:
        parts = [r["model"], r.get("weights"), r.get("strategy"), r["input"]]
        lines.append(f"* `{r['workload']}`: " + "; ".join(p for p in parts if p) + ".")
        if r.get("host_encoder_s_per_sample") is not None:
            lines.append(
                f"  Host encoder (NumPy replica of the host's encoder neurons, not "
                f"in the throughput): {1000 * r['host_encoder_s_per_sample']:.2f} ms "
                "per sample; its spikes equal those nengo-loihi's host sent: "
                f"{r['host_spikes_identical']}. Encoder plus batched emulator: "
                f"{r['batched_with_host_encoder_samples_per_s']:.0f} samples/s."
            )
        if r.get("test_accuracy_batched") is not None:
            lines.append(
                f"  Whole test split ({r['test_samples']} digits) on the batched "
                f"emulator: {r['test_set_seconds']:.2f} s, accuracy "
                f"{100 * r['test_accuracy_batched']:.1f}% (host readout applied in "
                "NumPy to the chip-to-host data)."
            )
        sizes = ", ".join(
            f"{b['batch_size']}: {b['samples_per_s']:.0f}/s (peak {b['peak_mb']:.0f} MB)"
            for b in r["batch_sizes"]
        )
        lines.append(f"  Batch sizes: {sizes}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
