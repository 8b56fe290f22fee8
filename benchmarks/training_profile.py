"""Where a training epoch of the quick hybrid LMU spends its time.

Three measurements of `nengo_hybrid.training.fit` on the ``lmu_quick`` recipe
(64 hidden, order 32, 49 steps, batch 100, embedded psMNIST):

1. **Epoch breakdown** (each variant): the training steps (Keras batch begin
   to end), the precision callback (`nengo_hybrid.dl.set_precision`), the
   validation pass, the bit measurement (`training._bits`), and the rest of the
   epoch (Keras's data adapter and iterator, our shuffle and checks).
2. **Variants**, built in one process and timed in interleaved epochs after
   a warm-up: NengoDL's own loop (before), ``unroll_simulation=7``, the
   fixed-size loop (`nengo_hybrid.dl.fixed_size_loop`), the fixed-size loop
   with XLA, and the same without the hidden layer's full history.
3. **Operators** (TensorFlow profiler, a few batches of the before and the
   XLA variants): kernel time by NengoDL builder, forward and gradient,
   against the executor's time around the kernels.

Wall and process CPU time are both recorded: on a shared machine the CPU time
is the steadier. Writes ``results/training_profile.{json,md}``.

Usage::

    python benchmarks/training_profile.py [--n-train 500 --repeats 3]
"""

import argparse
import collections
import contextlib
import glob
import json
import os
import re
import tempfile
import time
from pathlib import Path

from nengo_hybrid.io import atomic_write_json, atomic_write_text, environment_info

RESULTS = Path(__file__).parent / "results"
SEED = 0
VARIANTS = {
    "nengo_dl_loop": dict(fixed=False, xla=False),
    "nengo_dl_loop_unroll7": dict(fixed=False, xla=False, unroll=7),
    "fixed_loop": dict(fixed=True, xla=False),
    "fixed_loop_xla": dict(fixed=True, xla=True),
    "fixed_loop_xla_no_layer_history": dict(fixed=True, xla=True, history=False),
}


class Clock:
    """Accumulated wall time of named parts of an epoch."""

    def __init__(self):
        self.parts = collections.Counter()

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            tic = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.parts[name] += time.perf_counter() - tic

        return timed

    def callback(self):
        import tensorflow as tf

        clock = self

        class Steps(tf.keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                self.tic = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                clock.parts["training steps"] += time.perf_counter() - self.tic

            def on_test_begin(self, logs=None):
                self.test_tic = time.perf_counter()

            def on_test_end(self, logs=None):
                clock.parts["validation"] += time.perf_counter() - self.test_tic

        return Steps()


def simulator(recipe, options):
    import nengo_dl
    import tensorflow as tf

    from nengo_hybrid import dl
    from nengo_hybrid.pipeline.train import compile_classifier, quiet

    net = recipe.build(mode="train")
    dl.configure_classifier(net)
    if not options.get("history", True):
        for probe in net.layer_probes():
            net.config[probe].keep_history = False
    with dl.fixed_size_loop(options["fixed"]), quiet():
        sim = nengo_dl.Simulator(
            net,
            minibatch_size=int(recipe["minibatch_size"]),
            seed=SEED,
            progress_bar=False,
            unroll_simulation=options.get("unroll", 1),
        )
    compile_classifier(sim, net, float(recipe["learning_rate"]))
    tf.keras.utils.set_random_seed(SEED)
    return net, sim


def epoch_runner(recipe, data, options, n_train):
    """``(run_epoch, clock, close)`` for one variant."""
    from nengo_hybrid import dl, training
    from nengo_hybrid.schedules import Schedule

    net, sim = simulator(recipe, options)
    clock = Clock()
    schedule = Schedule.from_dict(recipe["schedule"])
    x, y = data.x_train[:n_train], data.y_train[:n_train]
    x_val, y_val = data.x_val, data.y_val
    n_val = len(y_val) - len(y_val) % sim.minibatch_size
    validation = (net.inputs(x_val[:n_val]), {net.probe: net.targets(y_val[:n_val])})

    def run_epoch():
        with contextlib.ExitStack() as stack:
            for module, name, part in (
                (dl, "set_precision", "precision callback"),
                (training, "_bits", "bit measurement"),
            ):
                original = getattr(module, name)
                setattr(module, name, clock.wrap(part, original))
                stack.callback(setattr, module, name, original)
            training.fit(
                sim,
                net.inputs(x),
                {net.probe: net.targets(y)},
                schedule,
                validation_data=validation,
                progress=False,
                callbacks=[clock.callback()],
                jit_compile=options["xla"],
            )

    return run_epoch, clock, sim


def timed_epoch(run_epoch, clock):
    clock.parts.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    run_epoch()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    parts = dict(clock.parts)
    parts["rest of the epoch"] = wall - sum(parts.values())
    return dict(wall=wall, cpu=cpu, parts=parts)


def measure_variants(recipe, data, n_train, repeats, names):
    results, runners = {}, {}
    with contextlib.ExitStack() as stack:
        for name in names:
            options = VARIANTS[name]
            tic = time.perf_counter()
            run_epoch, clock, sim = epoch_runner(recipe, data, options, n_train)
            stack.callback(sim.close)
            run_epoch()  # warm-up: tracing, XLA compilation
            runners[name] = (run_epoch, clock)
            results[name] = dict(options=options, epochs=[])
            results[name]["warmup_seconds"] = time.perf_counter() - tic
            print(
                f"{name}: warm-up {results[name]['warmup_seconds']:.1f} s", flush=True
            )
        for _ in range(repeats):
            for name, (run_epoch, clock) in runners.items():
                epoch = timed_epoch(run_epoch, clock)
                epoch["load"] = os.getloadavg()[0]
                results[name]["epochs"].append(epoch)
    for r in results.values():
        best = min(r["epochs"], key=lambda e: e["cpu"])
        r["best_cpu"] = best
        r["cpu_seconds"] = best["cpu"]
        r["wall_seconds"] = min(e["wall"] for e in r["epochs"])
    return results


def op_profile(recipe, data, options, n_batches):
    """Kernel and executor time from TensorFlow's profiler, over ``n_batches``."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    net, sim = simulator(recipe, options)
    from nengo_hybrid import dl

    dl.use_xla(sim, options["xla"])
    n = n_batches * sim.minibatch_size
    x = net.inputs(data.x_train[:n])
    y = {net.probe: net.targets(data.y_train[:n])}
    sim.fit(x, y, epochs=1, verbose=0)  # warm-up
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        sim.fit(x, y, epochs=1, verbose=0)
        tf.profiler.experimental.stop()
        path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
        space = xplane_pb2.XSpace()
        space.ParseFromString(Path(path).read_bytes())
    sim.close()
    return summarize(space, n_batches)


def category(name):
    """A kernel event's category: direction and NengoDL builder (or XLA)."""
    direction = "gradient" if "gradient_tape" in name or "_grad" in name else "forward"
    match = re.search(r"iteration_\d+/(\w+?Builder)", name)
    if match:
        return f"{direction}: {match.group(1)}"
    if "while" in name:
        return f"{direction}: while loop (control, TensorArrays)"
    if "xla" in name.lower() or "cluster" in name.lower():
        return "XLA cluster"
    if "Adam" in name or "ResourceApply" in name:
        return "optimizer"
    return f"{direction}: outside the loop"


def summarize(space, n_batches):
    """Per-batch milliseconds: the train function, kernels by category, executor."""
    per_batch = 1e9 * n_batches  # picoseconds -> ms per batch
    kernels, executor, train = collections.Counter(), 0.0, 0.0
    n_kernels = 0
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, "?")
                if line.name == "python":
                    if name == "train_function":
                        train += event.duration_ps
                elif name == "ExecutorState::Process":
                    executor += event.duration_ps
                elif line.name.startswith("tf_Compute") or "Xla" in line.name:
                    kernels[category(name)] += event.duration_ps
                    n_kernels += 1
    return dict(
        train_function_ms=train / per_batch,
        executor_ms=executor / per_batch,
        kernel_ms=sum(kernels.values()) / per_batch,
        kernels_per_batch=n_kernels / n_batches,
        kernel_ms_by_category={
            k: v / per_batch for k, v in kernels.most_common() if v / per_batch > 0.05
        },
    )


def markdown(record):
    cfg = record["config"]
    variants = record["variants"]
    base = variants["nengo_dl_loop"]["cpu_seconds"]
    lines = [
        "# Training profile: quick hybrid LMU",
        "",
        f"Recipe lmu_quick (64 hidden, order 32, 49 steps, batch 100), "
        f"{cfg['n_train']} training and {record['n_val']} validation sequences "
        f"({record['data']}), one `training.fit` epoch with validation and bit "
        f"measurement; best of {cfg['repeats']} interleaved epochs after a warm-up; "
        f"seed {SEED}. Machine: {record['machine']['platform']}, "
        f"{record['machine']['cpu_count']} CPUs, shared with other engineers' jobs "
        f"(load average {min(record['load']):.1f}-{max(record['load']):.1f}): wall "
        "times are inflated by that load, CPU times (this process) much less.",
        "",
        "## Variants",
        "",
        "| variant | epoch CPU s | CPU speed-up | epoch wall s (best) | warm-up s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, r in variants.items():
        lines.append(
            f"| {name} | {r['cpu_seconds']:.2f} | {base / r['cpu_seconds']:.2f} | "
            f"{r['wall_seconds']:.2f} | {r['warmup_seconds']:.0f} |"
        )
    lines += ["", break_even(record), ""]
    lines += [
        "",
        "## Epoch breakdown (wall s, epoch of least CPU time)",
        "",
        "| variant | " + " | ".join(PARTS) + " |",
        "| --- |" + " --- |" * len(PARTS),
    ]
    for name, r in variants.items():
        parts = r["best_cpu"]["parts"]
        lines.append(
            f"| {name} | " + " | ".join(f"{parts.get(p, 0):.2f}" for p in PARTS) + " |"
        )
    lines += ["", READING]
    for name, prof in record["ops"].items():
        lines += [
            "",
            f"## Operators: {name} (ms per batch of 100 sequences)",
            "",
            f"train function {prof['train_function_ms']:.1f} ms; kernels "
            f"{prof['kernel_ms']:.1f} ms over {prof['kernels_per_batch']:.0f} kernel "
            f"launches; executor (inclusive of kernels) {prof['executor_ms']:.1f} ms "
            "(the two CPU threads summed).",
            "",
            "| category | kernel ms |",
            "| --- | --- |",
        ]
        lines += [
            f"| {k} | {v:.2f} |" for k, v in prof["kernel_ms_by_category"].items()
        ]
    return "\n".join(lines) + "\n"


def break_even(record):
    """Minibatch steps after which XLA's compile time is repaid (CPU time)."""
    variants, cfg = record["variants"], record["config"]
    if not {"fixed_loop", "fixed_loop_xla"} <= set(variants):
        return ""
    plain, xla = variants["fixed_loop"], variants["fixed_loop_xla"]
    batch_steps = cfg["n_train"] // 100 * 49
    saved = (plain["cpu_seconds"] - xla["cpu_seconds"]) / batch_steps
    extra = xla["warmup_seconds"] - plain["warmup_seconds"]
    if saved <= 0:
        return "XLA saved no CPU time per step in this run."
    return (
        f"XLA saves {1e3 * saved:.2f} ms of CPU time per minibatch step (batch 100) "
        f"and its warm-up took {extra:.1f} s longer (wall, compiling): it pays off "
        f"after about {max(extra, 0) / saved:.0f} minibatch steps "
        "(`nengo_hybrid.dl.XLA_MIN_BATCH_STEPS` is where `training.fit` turns it on)."
    )


READING = """\
## Reading

* NengoDL's own loop launches thousands of small kernels per batch: every
  connection is a transpose, a batched matmul, a transpose and a scatter into
  the signal base each step (DotIncBuilder), plus copies, the recurrent
  ``synapse=0`` as a Lowpass process, and the while loop's TensorArray
  bookkeeping, forward and gradient. Each kernel does little arithmetic on
  100 x 64 values, so its launch and the executor's bookkeeping around it
  weigh as much as the work. ``unroll_simulation`` (variant
  ``nengo_dl_loop_unroll7``, not in every run) keeps the same kernels and
  multiplies the build time.
* The fixed-size loop alone changes little; it is what lets XLA compile the
  training step, which then runs as a few launches (the XLA cluster is
  reported as one kernel outside the loop).
* With XLA, what remains per epoch is fixed cost: the validation pass, the
  bit measurement's prediction and Keras's per-``fit`` setup (data adapter,
  iterators); they dominate short epochs such as this one, less so the
  recipe's 40 batches per epoch. The precision callback costs little.
* Further gains would need the network to do less per step: the hidden
  layer's input kernel (memory and input, 33 x 64) applied to all steps at
  once outside the loop, and the readout only on the last step. Both change
  the Nengo network (a TensorNode or a precomputed input current), which the
  GUI, the emulator and the frozen file read; not done here.
"""


PARTS = (
    "training steps",
    "precision callback",
    "validation",
    "bit measurement",
    "rest of the epoch",
)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--n-train", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--op-batches", type=int, default=3)
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated, of {', '.join(VARIANTS)}",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--rewrite", action="store_true", help="rewrite the markdown from the JSON"
    )
    args = parser.parse_args(argv)
    if args.rewrite:
        record = json.loads((args.out / "training_profile.json").read_text())
        atomic_write_text(args.out / "training_profile.md", markdown(record))
        return record

    from nengo_hybrid import zoo

    recipe = zoo.read("lmu_quick")
    data = recipe.load_data("embedded")
    variants = measure_variants(
        recipe, data, args.n_train, args.repeats, args.variants.split(",")
    )
    ops = {
        name: op_profile(recipe, data, VARIANTS[name], args.op_batches)
        for name in ("nengo_dl_loop", "fixed_loop_xla")
    }
    record = dict(
        benchmark="training_profile",
        config=dict(vars(args), out=str(args.out)),
        data=data.description,
        n_val=len(data.y_val) - len(data.y_val) % int(recipe["minibatch_size"]),
        seeds=dict(weights=SEED, simulator=SEED, shuffle=SEED),
        machine=environment_info(),
        load=[e["load"] for r in variants.values() for e in r["epochs"]],
        variants=variants,
        ops=ops,
    )
    atomic_write_json(args.out / "training_profile.json", record)
    text = markdown(record)
    atomic_write_text(args.out / "training_profile.md", text)
    print(text)
    return record


if __name__ == "__main__":
    main()
