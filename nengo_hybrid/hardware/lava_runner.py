"""Run a nengo-hybrid Loihi 2 program file as Lava processes.

This script runs in the Lava environment (``.venv-lava``: Python 3.10,
lava-nc 0.10.0, numpy); it imports neither nengo nor nengo_hybrid. The main
stack writes the program (`nengo_hybrid.hardware.loihi2.Program.write`, with
the inputs as ``input_<label>`` arrays of shape ``(B, n_steps, size)``) and
calls it through `nengo_hybrid.hardware.lava`::

    python lava_runner.py PROGRAM.npz OUTPUT.npz [--target sim|chip]

Lava processes, one network for all ``B`` samples (each population, input and
projection replicated ``B`` times as block-diagonal copies, so the samples
run side by side without interacting):

* populations of kind ``"sigma_delta"``: Lava's stock ``SigmaDelta``
  (``lava.proc.sdn``, ReLU), a stock Loihi 2 neuron;
* populations of kind ``"hybrid"``: `HybridSpiking`, a custom process with a
  fixed-point ``PyLoihiProcessModel`` defined here (no stock model exists; a
  real Loihi 2 needs a microcode neuron for it);
* projections: ``Dense`` with graded messages (``num_message_bits=24``),
  mixed sign mode, 8-bit weights and the projection's ``weight_exp``;
* host inputs: ``io.source.RingBuffer``; every population's payloads are
  recorded by an ``io.sink.RingBuffer``.

``--target sim`` runs under ``Loihi2SimCfg(select_tag="fixed_pt")`` on the
CPU; ``--target chip`` under ``Loihi2HwCfg`` when lava-loihi is importable,
else it exits with a message naming what is missing. The output file holds
``payload_<label>`` arrays ``(B, n_steps, n)`` (int32) and ``meta`` (JSON).
"""

import argparse
import importlib.util
import io
import json
import os
import sys
import tempfile
import time
import warnings

# this script's folder (nengo_hybrid/hardware) has a module named lava.py (the
# main stack's bridge): keep it from shadowing the lava package
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
# Lava tries to import every module next to a process's file when it looks for
# process models; the main stack's modules there do not import here
warnings.filterwarnings("ignore", message="Cannot import module", category=UserWarning)

import numpy as np  # noqa: E402
from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402

FORMAT = "nengo-hybrid-loihi2/1"
MESSAGE_BITS = 24  # Lava's graded-spike message width (its fixed-point models)
STATE_BITS = 24
DECAY_BITS = 12


class HybridSpiking(AbstractProcess):
    """nengo-hybrid's HybridSpiking neuron (ReLU base) with a CUBA current.

    See `PyHybridSpikingModelFixed` for the dynamics.
    """

    def __init__(self, *, shape, bias, du, frac_bits, max_spikes, initial_v):
        super().__init__(shape=shape)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.u = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=initial_v)
        self.bias = Var(shape=shape, init=bias)
        self.du = Var(shape=(1,), init=du)
        self.frac_bits = Var(shape=(1,), init=frac_bits)
        self.max_spikes = Var(shape=(1,), init=max_spikes)


@implements(proc=HybridSpiking, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyHybridSpikingModelFixed(PyLoihiProcessModel):
    """Fixed-point HybridSpiking: one graded spike per neuron and step.

    ``u = wrap24(sign(u) * (|u| * (4096 - du) >> 12) + a_in)``;
    ``v = clip(v + max(u + bias, 0), +-(2**23 - 1))``; ``n = v >> frac_bits``
    (at most ``max_spikes`` if above 0); ``v -= n << frac_bits``; send ``n``.
    """

    a_in = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u = LavaPyType(np.ndarray, np.int32, precision=24)
    v = LavaPyType(np.ndarray, np.int32, precision=24)
    bias = LavaPyType(np.ndarray, np.int32, precision=24)
    du = LavaPyType(np.ndarray, np.int32, precision=13)
    frac_bits = LavaPyType(np.ndarray, np.int32, precision=5)
    max_spikes = LavaPyType(np.ndarray, np.int32, precision=24)

    def run_spk(self):
        a_in = self.a_in.recv().astype(np.int64)
        u = self.u.astype(np.int64)
        decayed = np.sign(u) * (
            (np.abs(u) * ((1 << DECAY_BITS) - int(self.du[0]))) >> DECAY_BITS
        )
        half = 1 << (STATE_BITS - 1)
        u = ((decayed + a_in + half) & ((1 << STATE_BITS) - 1)) - half
        limit = half - 1
        v = self.v.astype(np.int64) + np.maximum(u + self.bias, 0)
        v = np.clip(v, -limit, limit)
        frac = int(self.frac_bits[0])
        n = v >> frac
        if self.max_spikes[0] > 0:
            n = np.minimum(n, int(self.max_spikes[0]))
        self.u[:] = u
        self.v[:] = v - (n << frac)
        self.s_out.send(n.astype(np.int32))


def read_program(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    if header.get("format") != FORMAT:
        sys.exit(f"lava_runner: {path} is not a Loihi 2 program ({FORMAT})")
    return header, arrays


def block_diagonal(w, n_samples):
    """``n_samples`` copies of ``w`` on the diagonal (samples do not interact)."""
    return np.kron(np.eye(n_samples, dtype=np.int64), w)


def make_population(rec, params, n_samples):
    from lava.proc.sdn.process import ActivationMode, SigmaDelta

    shape = (rec["n"] * n_samples,)

    def tiled(key):
        return np.tile(params[key], n_samples)

    if rec["kind"] == "hybrid":
        return HybridSpiking(
            shape=shape,
            bias=tiled("bias"),
            du=int(params["du"]),
            frac_bits=int(params["frac_bits"]),
            max_spikes=int(params["max_spikes"]),
            initial_v=tiled("initial_v"),
        )
    if rec["kind"] == "sigma_delta":
        return SigmaDelta(
            shape=shape,
            vth=int(params["vth"]),
            bias=tiled("bias"),
            act_mode=ActivationMode.RELU,
            cum_error=bool(params["cum_error"]),
            spike_exp=0,
            state_exp=int(params["state_exp"]),
        )
    sys.exit(f"lava_runner: population {rec['label']!r}: unknown kind {rec['kind']!r}")


def build(header, arrays):
    """Lava processes for the program; returns ``(start, sinks, n_samples, n_steps)``.

    ``start`` is the process to run (all processes are connected to it).
    """
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.utils.weightutils import SignMode

    inputs = {label: arrays[f"input_{label}"] for label in header["inputs"]}
    n_samples, n_steps = int(arrays["n_samples"]), int(arrays["n_steps"])
    senders, sinks = {}, {}
    for label, x in inputs.items():
        # (B, T, size) -> (B * size, T): sample-major, as the populations
        data = np.transpose(x, (0, 2, 1)).reshape(-1, n_steps).astype(np.int32)
        senders[label] = Source(data=data)
    for i, rec in enumerate(header["populations"]):
        prefix = f"pop_{i}_"
        params = {
            k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)
        }
        pop = make_population(rec, params, n_samples)
        senders[rec["label"]] = pop
        sinks[rec["label"]] = Sink(shape=(rec["n"] * n_samples,), buffer=n_steps)
        pop.s_out.connect(sinks[rec["label"]].a_in)
    for i, rec in enumerate(header["projections"]):
        dense = Dense(
            weights=block_diagonal(2 * arrays[f"proj_{i}_mantissa"], n_samples),
            weight_exp=int(rec["exp"]),
            num_weight_bits=8,
            sign_mode=SignMode.MIXED,
            num_message_bits=MESSAGE_BITS,
            name=rec["label"],
        )
        senders[rec["pre"]].s_out.connect(dense.s_in)
        dense.a_out.connect(senders[rec["post"]].a_in)
    # Lava runs the processes connected to the one it is started from: join
    # one sender of every other connected component to the first one's sink
    # through zero weights (adds nothing anywhere)
    if not sinks:
        sys.exit("lava_runner: the program has no populations: nothing to run")
    first = next(iter(sinks.values()))
    for label in components(header)[1:]:
        proc = senders[label]
        link = Dense(weights=np.zeros((first.a_in.shape[0], proc.s_out.shape[0]), int))
        proc.s_out.connect(link.s_in)
        link.a_out.connect(first.a_in)
    return first, sinks, n_samples, n_steps


def components(header):
    """One label (the first population's, if any) per connected component."""
    labels = [p["label"] for p in header["populations"]] + list(header["inputs"])
    parent = {label: label for label in labels}

    def root(label):
        while parent[label] != label:
            label = parent[label]
        return label

    for rec in header["projections"]:
        parent[root(rec["pre"])] = root(rec["post"])
    seen, out = set(), []
    for label in labels:
        if root(label) not in seen:
            seen.add(root(label))
            out.append(label)
    return out


def run_config(target):
    if target == "sim":
        from lava.magma.core.run_configs import Loihi2SimCfg

        return Loihi2SimCfg(select_tag="fixed_pt")
    # lava-loihi adds the NeuroCore (nc) and embedded-CPU (c) process models
    missing = [
        m
        for m in ("lava.magma.core.model.nc", "lava.magma.core.model.c")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        sys.exit(
            "lava_runner: --target chip needs lava-loihi (Intel's Loihi 2 "
            f"extension of Lava, for INRC members); not importable here: {missing}. "
            "Lava's fixed-point CPU models need no chip: run_lava(..., target='sim'), "
            "or nengo-hybrid deploy --profile loihi2 --target lava"
        )
    from lava.magma.core.run_configs import Loihi2HwCfg

    return Loihi2HwCfg(select_tag="fixed_pt")


def save(path, arrays, meta):
    arrays = dict(arrays)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(buffer.getvalue())
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("program", help="program file (.npz) written by nengo-hybrid")
    parser.add_argument("output", help="where to write the payloads (.npz)")
    parser.add_argument("--target", choices=("sim", "chip"), default="sim")
    args = parser.parse_args(argv)

    header, arrays = read_program(args.program)
    cfg = run_config(args.target)
    began = time.perf_counter()
    start, sinks, n_samples, n_steps = build(header, arrays)
    start.run(condition=RunSteps(num_steps=n_steps), run_cfg=cfg)
    try:
        payloads = {
            f"payload_{label}": sink.data.get()
            .reshape(n_samples, -1, n_steps)
            .transpose(0, 2, 1)
            .astype(np.int32)
            for label, sink in sinks.items()
        }
    finally:
        start.stop()
    meta = {
        "target": args.target,
        "seconds": time.perf_counter() - began,
        "lava_version": _lava_version(),
    }
    save(args.output, payloads, meta)


def _lava_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lava-nc")
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
