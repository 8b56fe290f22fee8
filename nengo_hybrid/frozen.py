"""The frozen network file: a trained network without TensorFlow or NengoDL.

Training ends by freezing (`nengo_hybrid.training.freeze`): the trained
parameters are written into the Nengo objects. `FrozenNetwork` reads them from
there into a small explicit data model and writes them to one ``.npz`` file; the
later stages (check, deploy, report, Nengo GUI) read only that file and rebuild
the network from its recipe with `FrozenNetwork.build`.

What the file holds, per object of ``network.all_ensembles`` and
``network.all_connections`` (matched by position, checked by label and shape):

* ensembles: ``encoders``, ``gain``, ``bias``; the ``neuron`` kind
  (``"HybridSpiking"`` or ``"SigmaDelta"``; absent for other neurons); for
  `.HybridSpiking` the final ``precision`` and the initial ``voltage`` of every
  neuron, for `.SigmaDelta` the final ``threshold`` and ``cum_error``;
* connections: ``decoders`` (decoded connections, NengoDL's `NoSolver` form) or
  ``transform`` (the weight matrix), or nothing when the connection has no
  weights;
* ``meta``: the recipe (name, file and settings), the data and seed the network
  was trained with, and deployment facts measured at freezing time, such as the
  full scale of host signals sent to the chip (``input_scales``).

The file is written atomically; a missing, corrupt or mismatched file raises
`FrozenError` naming the file and what to do.
"""

import pathlib

import nengo
import numpy as np
from nengo.solvers import NoSolver

from nengo_hybrid.io import read_npz, write_npz
from nengo_hybrid.neurons import HybridSpiking, SigmaDelta

FORMAT = "nengo-hybrid-frozen/1"
ENSEMBLE_ARRAYS = ("encoders", "gain", "bias")


class FrozenError(ValueError):
    """A frozen network file is missing, unreadable or does not fit its recipe."""


def _label(obj):
    if isinstance(obj, nengo.ensemble.Neurons):
        return f"{_label(obj.ensemble)}.neurons"
    return str(obj.label) if obj.label is not None else type(obj).__name__


def _array(value, what):
    if isinstance(value, nengo.dists.Distribution) or value is None:
        raise FrozenError(
            f"{what} is {value!r}, not a trained array: freeze the network first "
            "(nengo_hybrid.training.freeze)"
        )
    return np.asarray(value, dtype=np.float64)


def _ensemble_record(ens):
    record = {"label": _label(ens), "n_neurons": ens.n_neurons}
    arrays = {
        name: _array(getattr(ens, name), f"{ens}.{name}") for name in ENSEMBLE_ARRAYS
    }
    neuron_type = ens.neuron_type
    if isinstance(neuron_type, HybridSpiking):
        record["neuron"] = "HybridSpiking"
        record["precision"] = float(neuron_type.precision)
        voltage = neuron_type.initial_state.get("voltage")
        arrays["voltage"] = _array(voltage, f"{ens} initial voltage")
    elif isinstance(neuron_type, SigmaDelta):
        record["neuron"] = "SigmaDelta"
        record["threshold"] = float(neuron_type.threshold)
        record["cum_error"] = bool(neuron_type.cum_error)
    return record, arrays


def _neuron_kind(record):
    """The record's neuron kind (files from before ``neuron`` was stored: by key)."""
    return record.get("neuron", "HybridSpiking" if "precision" in record else None)


def _rebuilt_neuron_type(old, record, values):
    """The neuron type an ensemble runs with, from its record and arrays."""
    kind = _neuron_kind(record)
    if kind == "HybridSpiking":
        return HybridSpiking(
            old.base_type,
            precision=record["precision"],
            max_spikes=getattr(old, "max_spikes", None),
            amplitude=old.amplitude,
            initial_state={"voltage": values["voltage"]},
        )
    if kind == "SigmaDelta":
        return SigmaDelta(
            old.base_type,
            threshold=record["threshold"],
            cum_error=record["cum_error"],
            amplitude=old.amplitude,
        )
    return old


def _connection_record(conn):
    record = {
        "label": _label(conn),
        "pre": _label(conn.pre_obj),
        "post": _label(conn.post_obj),
    }
    arrays = {}
    if isinstance(conn.solver, NoSolver) and conn.solver.values is not None:
        record["kind"] = "decoders"
        record["weights"] = bool(conn.solver.weights)
        arrays["decoders"] = np.asarray(conn.solver.values, dtype=np.float64)
    elif isinstance(conn.transform, nengo.transforms.Dense):
        record["kind"] = "transform"
        arrays["transform"] = _array(conn.transform.init, f"{conn}.transform")
    else:
        record["kind"] = "none"
    return record, arrays


class FrozenNetwork:
    """Trained parameters of a recipe's network, independent of any framework.

    Parameters
    ----------
    meta : dict
        JSON-serialisable: ``recipe`` (``name``, ``path``, ``settings``) and any
        facts of the run (data, seed, ``input_scales``, ...).
    ensembles, connections : list of (dict, dict of arrays)
        One ``(record, arrays)`` per object, in network order.
    """

    def __init__(self, meta, ensembles, connections):
        self.meta = meta
        self.ensembles = ensembles
        self.connections = connections

    @classmethod
    def from_network(cls, network, meta):
        """Read the parameters of a frozen network (after `training.freeze`)."""
        return cls(
            meta,
            [_ensemble_record(e) for e in network.all_ensembles],
            [_connection_record(c) for c in network.all_connections],
        )

    @property
    def precisions(self):
        """``{ensemble label: precision}`` of the `.HybridSpiking` ensembles."""
        return {
            r["label"]: r["precision"] for r, _ in self.ensembles if "precision" in r
        }

    @property
    def thresholds(self):
        """``{ensemble label: threshold}`` of the `.SigmaDelta` ensembles."""
        return {
            r["label"]: r["threshold"] for r, _ in self.ensembles if "threshold" in r
        }

    def set_precisions(self, precisions):
        """Run `.HybridSpiking` ensembles at ``{label: precision}``."""
        self._set("precision", precisions)

    def set_thresholds(self, thresholds):
        """Run `.SigmaDelta` ensembles at ``{label: threshold}``."""
        self._set("threshold", thresholds)

    def _set(self, key, values):
        for record, _ in self.ensembles:
            if record["label"] in values and key in record:
                record[key] = float(values[record["label"]])

    # ------------------------------------------------------------ file

    def write(self, path):
        """Write the file atomically (``.npz``: arrays plus JSON metadata)."""
        arrays = {}
        for kind, items in (
            ("ensemble", self.ensembles),
            ("connection", self.connections),
        ):
            for i, (_, values) in enumerate(items):
                for name, value in values.items():
                    arrays[f"{kind}_{i}_{name}"] = value
        header = {
            "format": FORMAT,
            "meta": self.meta,
            "ensembles": [r for r, _ in self.ensembles],
            "connections": [r for r, _ in self.connections],
        }
        return write_npz(path, arrays, header)

    @classmethod
    def read(cls, path):
        """Read a file written by `write`; `FrozenError` if missing or corrupt."""
        path = pathlib.Path(path)
        if not path.is_file():
            raise FrozenError(
                f"frozen network file {path} is missing: train the run first "
                "(`nengo-hybrid train`), or freeze its checkpoint "
                "(`nengo-hybrid freeze --run RUN`)"
            )
        try:
            header, arrays = read_npz(path)
        except Exception as err:
            raise FrozenError(
                f"frozen network file {path} is unreadable (truncated or corrupt: "
                f"{err}); freeze it again with `nengo-hybrid freeze --run RUN`"
            ) from err
        if header.get("format") != FORMAT:
            raise FrozenError(
                f"{path} is not a nengo-hybrid frozen network (format "
                f"{header.get('format')!r}, expected {FORMAT!r})"
            )

        def items(kind, records):
            prefix = f"{kind}_"
            out = []
            for i, record in enumerate(records):
                start = f"{prefix}{i}_"
                out.append(
                    (
                        record,
                        {
                            k[len(start) :]: v
                            for k, v in arrays.items()
                            if k.startswith(start)
                        },
                    )
                )
            return out

        frozen = cls(
            header["meta"],
            items("ensemble", header["ensembles"]),
            items("connection", header["connections"]),
        )
        frozen.path = path
        return frozen

    # ------------------------------------------------------------ network

    def _mismatch(self, what):
        source = getattr(self, "path", "the frozen network")
        recipe = self.meta.get("recipe", {}).get("path", "its recipe")
        return FrozenError(
            f"{source} does not fit the network built from {recipe}: {what}. The "
            "recipe changed since the run was frozen; train again, or restore the "
            "recipe the run was trained with"
        )

    def apply(self, network):
        """Write the parameters into ``network`` (built from the same recipe).

        Everything is checked (counts, labels, shapes) before anything is changed.
        """
        ensembles, connections = network.all_ensembles, network.all_connections
        if len(ensembles) != len(self.ensembles) or len(connections) != len(
            self.connections
        ):
            raise self._mismatch(
                f"{len(ensembles)} ensembles and {len(connections)} connections, the "
                f"file has {len(self.ensembles)} and {len(self.connections)}"
            )
        for ens, (record, values) in zip(ensembles, self.ensembles):
            if _label(ens) != record["label"] or ens.n_neurons != record["n_neurons"]:
                raise self._mismatch(
                    f"ensemble {_label(ens)} ({ens.n_neurons} neurons) is "
                    f"{record['label']} ({record['n_neurons']}) in the file"
                )
            kind = _neuron_kind(record)
            if kind is not None and not isinstance(
                ens.neuron_type, (HybridSpiking, SigmaDelta)
            ):
                raise self._mismatch(
                    f"{ens} has {type(ens.neuron_type).__name__} neurons, the file "
                    f"has {kind} (a rate base type is needed to rebuild them)"
                )
            if values["encoders"].shape != (ens.n_neurons, ens.dimensions):
                raise self._mismatch(f"{ens} encoders have another shape")
        for conn, (record, values) in zip(connections, self.connections):
            if (
                _label(conn.pre_obj) != record["pre"]
                or _label(conn.post_obj) != record["post"]
            ):
                raise self._mismatch(
                    f"connection {conn} is {record['pre']} -> {record['post']} in the file"
                )
            if record["kind"] == "transform" and values["transform"].shape != tuple(
                conn.transform.shape
            ):
                raise self._mismatch(
                    f"{conn} transform shape {tuple(conn.transform.shape)} is "
                    f"{values['transform'].shape} in the file"
                )

        for ens, (record, values) in zip(ensembles, self.ensembles):
            ens.encoders = values["encoders"]
            ens.normalize_encoders = False
            ens.gain = values["gain"]
            ens.bias = values["bias"]
            ens.neuron_type = _rebuilt_neuron_type(ens.neuron_type, record, values)
        for conn, (record, values) in zip(connections, self.connections):
            if record["kind"] == "decoders":
                decoders = values["decoders"]
                conn.solver = NoSolver(decoders, weights=record["weights"])
                conn.function = _zeros(decoders.shape[1])
                conn.transform = None
            elif record["kind"] == "transform":
                conn.transform = values["transform"]
        return network

    def build(self, recipe=None, **kwargs):
        """Build the recipe's network with these parameters (no TensorFlow).

        Parameters
        ----------
        recipe : nengo_hybrid.zoo.Recipe, optional
            Default: read from the file named in ``meta`` (falling back to the
            settings stored in the file when that file moved).
        **kwargs
            Passed to the recipe's ``build`` (e.g. ``gui=True``).
        """
        from nengo_hybrid import zoo

        if recipe is None:
            info = self.meta["recipe"]
            path = pathlib.Path(info["path"])
            if not path.is_file():
                path = zoo.find(info["name"])
            recipe = zoo.Recipe(path, info["settings"])
        return self.apply(recipe.build(**kwargs))


class _zeros:
    """``function`` of a frozen decoded connection: the decoders carry the mapping."""

    def __init__(self, size):
        self.size = int(size)

    def __call__(self, x):
        return np.zeros(self.size)


def read(path):
    """Read a frozen network file (`FrozenNetwork.read`)."""
    return FrozenNetwork.read(path)
