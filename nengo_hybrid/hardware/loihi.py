"""nengo-loihi integration: the one place that reaches into nengo-loihi.

Importing this module registers a nengo-loihi builder for `.HybridSpiking`
*explicitly* (nengo-loihi looks builders up along the class hierarchy, so
without it `.HybridSpiking` would fall through to the generic NeuronType
builder; with a subclass of a supported type it would silently inherit a
wrong mapping).

Mapping (per neuron, ``p = precision``, ``K`` compartments from the strategy):

* base `nengo.RectifiedLinear`: non-leaky integrate-and-fire compartments with
  threshold ``K / (p * dt * amplitude_base)``; the increment per step is the
  input current, so each compartment integrates ``p * dt * r(J) / K`` in units
  of its threshold, as in `.HybridSpiking.step`.
* base `nengo.LIFRate`: LIF compartments with ``tau_rc * K / p`` and
  ``tau_ref * K / p`` (same rate curve scaled by ``p / K``; rate-equivalent,
  not step-exact).
* anything else: a `nengo.exceptions.BuildError` naming the ensemble.

Each chip spike stands for ``amplitude / (p * dt)`` of output, whereas
nengo-loihi scales outgoing weights by ``amplitude / dt``: the `Model` of this
module rescales the synapses fed by hybrid blocks by ``1 / p`` before
discretization. A plain ``nengo_loihi`` model cannot do that, so building a
``precision != 1`` network without this `Model` is an error, not a silent
mis-scaling.

This module imports nengo-loihi without TensorFlow (`_import_nengo_loihi`;
`enable_nengo_dl_builders` restores nengo-loihi's NengoDL support), checks
that nengo-loihi is the 1.1 series its copied network builder comes from
(`check_nengo_loihi_version`), reads what nengo-loihi can run from its builder
registry (`supported_bases`, `loihi_neuron_types`), and checks a model before
nengo-loihi discretizes it (`check_discretization`: nengo-loihi's own range
checks are bare asserts).
"""

import collections
import contextlib
import importlib
import sys
import warnings

import nengo
import numpy as np
from nengo.builder.network import build_network as nengo_build_network
from nengo.builder.network import seed_network
from nengo.exceptions import BuildError, ValidationError

from nengo_hybrid.hardware.config import config_strategies
from nengo_hybrid.hardware.profiles import load_profile
from nengo_hybrid.hardware.strategies import (
    OneBit,
    Substeps,
    Thermometer,
    as_strategy,
    coerce_strategy_argument,
)
from nengo_hybrid.neurons import HybridSpiking

#: modules hidden while nengo-loihi is imported (see `_import_nengo_loihi`)
_DL_MODULES = ("tensorflow", "nengo_dl")
_ABSENT = object()


@contextlib.contextmanager
def _hidden_modules(names):
    """Make ``import name`` fail for ``names``; restore `sys.modules` exactly after."""
    saved = {name: sys.modules.get(name, _ABSENT) for name in names}
    try:
        for name in names:
            sys.modules[name] = None
        yield
    finally:
        for name, module in saved.items():
            if module is _ABSENT:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def _import_nengo_loihi():
    """Import nengo-loihi without letting it import TensorFlow and NengoDL.

    ``nengo_loihi.compat`` imports TensorFlow and NengoDL at import time, only
    to offer NengoDL builders for nengo-loihi's own neuron types
    (`nengo_loihi.LoihiLIF`, ...); that costs seconds and gigabytes in a
    process that never trains. Unless TensorFlow is already imported, both are
    hidden during the import (nengo-loihi then records them as absent);
    `enable_nengo_dl_builders` gives nengo-loihi its NengoDL support back.
    """
    if "nengo_loihi" in sys.modules or sys.modules.get("tensorflow") is not None:
        return importlib.import_module("nengo_loihi")
    with _hidden_modules(_DL_MODULES):
        return importlib.import_module("nengo_loihi")


nengo_loihi = _import_nengo_loihi()

from nengo_loihi.block import Synapse, SynapseConfig  # noqa: E402
from nengo_loihi.builder import Builder as LoihiBuilder  # noqa: E402
from nengo_loihi.builder import Model as LoihiModel  # noqa: E402
from nengo_loihi.builder import discretize as loihi_discretize  # noqa: E402
from nengo_loihi.builder import split_blocks as loihi_split  # noqa: E402
from nengo_loihi.builder.builder import ValidationLevel  # noqa: E402
from nengo_loihi.builder.discretize import discretize_model  # noqa: E402
from nengo_loihi.builder.inputs import ChipReceiveNeurons  # noqa: E402
from nengo_loihi.builder.validate import validate_model  # noqa: E402
from nengo_loihi.config import BlockShape  # noqa: E402
from nengo_loihi.splitter import Split  # noqa: E402

try:  # pragma: no cover (no NxSDK in CI)
    import nxsdk  # noqa: F401

    HAS_NXSDK = True
except ImportError:
    HAS_NXSDK = False


def enable_nengo_dl_builders():
    """Give nengo-loihi its NengoDL support after a TensorFlow-free import.

    `nengo_hybrid.hardware.loihi` imports nengo-loihi with TensorFlow and
    NengoDL hidden (unless TensorFlow was already imported), so nengo-loihi
    believes they are not installed. Call this once NengoDL is loaded: it sets
    ``HAS_TF``, ``HAS_DL``, ``tf`` and ``nengo_dl`` in ``nengo_loihi.compat``
    and ``nengo_loihi.neurons`` and installs nengo-loihi's NengoDL builders for
    its Loihi neuron types, as an ordinary import would have. Idempotent.

    Raises
    ------
    ImportError
        If NengoDL (or TensorFlow) is not importable.
    """
    import nengo_dl
    import tensorflow as tf
    from nengo_loihi import compat, neurons

    for module in (compat, neurons):
        module.HAS_TF, module.tf = True, tf
        module.HAS_DL, module.nengo_dl = True, nengo_dl
    try:  # imported by nengo_loihi.neurons; it needs NengoDL, so it failed then
        from nengo_extras.loihi_training import (
            LoihiLIFBuilder,
            LoihiSpikingRectifiedLinearBuilder,
        )
    except ImportError:
        pass  # nengo-loihi's ErrorBuilder stays (asks for nengo-extras)
    else:
        neurons.LoihiLIFBuilder = LoihiLIFBuilder
        neurons.LoihiSpikingRectifiedLinearBuilder = LoihiSpikingRectifiedLinearBuilder
    neurons.install_dl_builders()


# --- nengo-loihi version --------------------------------------------------------

#: the nengo-loihi release series whose build_network `_build_network` copies
SUPPORTED_NENGO_LOIHI = "1.1"


class NengoLoihiVersionError(BuildError):
    """The installed nengo-loihi is not the version nengo-hybrid's build copies."""


def check_nengo_loihi_version(version=None):
    """Raise `NengoLoihiVersionError` unless nengo-loihi is 1.1.x.

    `_build_network` is a copy of nengo-loihi 1.1's
    ``nengo_loihi.builder.network.build_network`` (and `discretization_problem`
    mirrors 1.1's discretisation); another version may build differently.
    """
    version = nengo_loihi.__version__ if version is None else version
    if str(version).split(".")[:2] != SUPPORTED_NENGO_LOIHI.split("."):
        raise NengoLoihiVersionError(
            f"nengo-hybrid's Loihi build supports nengo-loihi "
            f"{SUPPORTED_NENGO_LOIHI}.x (it copies that version's network builder), "
            f"but nengo-loihi {version} is installed; install "
            f"'nengo-loihi~={SUPPORTED_NENGO_LOIHI}.0'"
        )


# --- what nengo-loihi can run -------------------------------------------------


def _configure_relu(block, base, p_eff, dt):
    block.compartment.configure_relu(vth=1.0 / (p_eff * dt * base.amplitude), dt=dt)


def _configure_lif(block, base, p_eff, dt):
    block.compartment.configure_lif(
        tau_rc=base.tau_rc / p_eff, tau_ref=base.tau_ref / p_eff, dt=dt
    )


#: base rate type -> (its spiking counterpart, our compartment configuration)
COMPARTMENT_CONFIGS = {
    nengo.RectifiedLinear: (nengo.SpikingRectifiedLinear, _configure_relu),
    nengo.LIFRate: (nengo.LIF, _configure_lif),
}


def supported_bases():
    """Base types a `.HybridSpiking` neuron can have on Loihi compartments.

    A base is supported when nengo-loihi's builder registry has a builder for
    its spiking counterpart (exact class: ``RectifiedLinear`` ->
    ``SpikingRectifiedLinear``, ``LIFRate`` -> ``LIF``) and this module has a
    compartment configuration for it (`COMPARTMENT_CONFIGS`).
    """
    return tuple(
        base
        for base, (spiking, _) in COMPARTMENT_CONFIGS.items()
        if spiking in LoihiBuilder.builders
    )


def loihi_neuron_types():
    """Neuron types nengo-loihi builds onto compartments (exact classes).

    Read from nengo-loihi's builder registry: every registered
    `~nengo.neurons.NeuronType` subclass except the catch-all ``NeuronType``
    (whose builder raises) and `.HybridSpiking` (checked per base type).
    """
    return tuple(
        cls
        for cls in LoihiBuilder.builders
        if isinstance(cls, type)
        and issubclass(cls, nengo.neurons.NeuronType)
        and cls not in (nengo.neurons.NeuronType, HybridSpiking)
    )


#: base types supported when this module was imported (see `supported_bases`)
SUPPORTED_BASES = supported_bases()

HybridBlock = collections.namedtuple(
    "HybridBlock", ["ensemble", "neuron_type", "strategy"]
)


def check_supported(ens):
    """Raise a `~nengo.exceptions.BuildError` if ``ens`` cannot run on Loihi."""
    neuron_type = ens.neuron_type
    base = neuron_type.base_type
    bases = supported_bases()
    if type(base) not in bases:
        raise BuildError(
            f"{ens}: HybridSpiking with base type {type(base).__name__} cannot run "
            "on Loihi compartments (supported bases: "
            f"{', '.join(b.__name__ for b in bases)}). Use one of those, "
            "or run the ensemble on the host with "
            "net.config[ens].on_chip = False"
        )
    if type(base) is nengo.LIFRate and base.amplitude != 1:
        raise BuildError(
            f"{ens}: amplitude on the LIFRate base type is not supported on Loihi; "
            "set amplitude on HybridSpiking instead"
        )


def configure_block(block, neuron_type, dt, K=1):
    """Configure ``block``'s compartments for ``neuron_type`` with ``K`` per neuron."""
    base = neuron_type.base_type
    _, configure = COMPARTMENT_CONFIGS[type(base)]
    configure(block, base, neuron_type.precision / K, dt)


@LoihiBuilder.register(HybridSpiking)
def build_hybrid_spiking(model, neuron_type, neurons, block):
    """nengo-loihi build function for `.HybridSpiking` (registered explicitly)."""
    ens = neurons.ensemble
    check_supported(ens)
    if not isinstance(model, Model):
        if neuron_type.precision != 1:
            raise BuildError(
                f"{ens}: HybridSpiking with precision={neuron_type.precision} needs "
                "the nengo-hybrid Loihi build (spikes carry amplitude/(precision*dt), "
                "which plain nengo-loihi does not scale). Use "
                "nengo_hybrid.hardware.Simulator(network) or "
                "nengo_loihi.Simulator(network, model=nengo_hybrid.hardware.Model())"
            )
        warnings.warn(
            f"{ens}: HybridSpiking initial voltages are set to zero on Loihi; use "
            "nengo_hybrid.hardware.Simulator to start the emulator from the "
            "reference simulator's initial voltages",
            stacklevel=2,
        )
        configure_block(block, neuron_type, model.dt, K=1)
        return

    strategy = model.strategy_for(ens)
    if isinstance(strategy, Thermometer) and type(neuron_type.base_type) is not (
        nengo.RectifiedLinear
    ):
        raise BuildError(
            f"{ens}: the Thermometer strategy needs a RectifiedLinear base (its "
            "thresholds are levels of a linear drive); use Expand or OneBit"
        )
    configure_block(block, neuron_type, model.dt, K=strategy.compartments)
    model.hybrid_blocks[block] = HybridBlock(ens, neuron_type, strategy)


class Model(LoihiModel):
    """A nengo-loihi `~nengo_loihi.builder.Model` that knows `.HybridSpiking`.

    Parameters
    ----------
    dt : float
        Simulator time step.
    strategy : Strategy or dict
        Multi-bit strategy for all hybrid ensembles, or ``{ensemble: strategy}``
        (ensembles not in the dict use `.OneBit`). See `.strategies`. A
        strategy set in the network config (`.add_params`) wins over the
        default, an entry of the dict wins over the config.
    profile : str or Profile
        Hardware profile used to plan how ensembles are split over cores (the
        plan accounts for the 64-bit word rounding of synapse memory).
    label : str, optional
    """

    def __init__(self, dt=0.001, strategy=None, profile="loihi1", label=None):
        super().__init__(dt=dt, label=label, builder=_HybridBuilder())
        strategy = coerce_strategy_argument(strategy)
        if isinstance(strategy, dict):
            self.strategies = strategy
            self.default_strategy = OneBit()
            if any(isinstance(s, Substeps) for s in self.strategies.values()):
                raise BuildError(
                    "Substeps(K) changes the simulation step of the whole network; "
                    "pass it as the strategy for all ensembles, not per ensemble"
                )
        else:
            self.strategies = {}
            self.default_strategy = strategy
        self.config_strategies = {}  # filled by the build from the network config
        self.profile = load_profile(profile)
        self.hybrid_blocks = collections.OrderedDict()
        self.pre_split = None  # filled by the build: per-block summary before split
        self.split_plan = {}  # block -> number of cores planned
        self.discretize_warnings = []
        self.synapse_conn = {}  # Synapse -> nengo.Connection that created it
        self.float_weights = {}  # Synapse -> float weights before discretization
        #: called with the model after the core split, before discretisation
        #: (`Simulator` runs the hardware checks there)
        self.after_split = None

    def build(self, obj, *args, **kwargs):
        if not isinstance(obj, nengo.Connection):
            return super().build(obj, *args, **kwargs)
        before = {id(s) for b in self.blocks for s in b.synapses}
        built = super().build(obj, *args, **kwargs)
        for block in self.blocks:
            for synapse in block.synapses:
                if id(synapse) not in before and synapse not in self.synapse_conn:
                    self.synapse_conn[synapse] = obj
        return built

    def strategy_for(self, ens):
        """The strategy of ``ens``: the explicit dict, the network config, the default."""
        if ens in self.strategies:
            return self.strategies[ens]
        return self.config_strategies.get(ens, self.default_strategy)


class _HybridBuilder(LoihiBuilder):
    """nengo-loihi's builder with our network build (hybrid pass before split)."""

    builders = collections.ChainMap({}, LoihiBuilder.builders)


def _build_network(
    model, network, precompute=None, remove_passthrough=True, discretize=True
):
    # Copy of nengo_loihi.builder.network.build_network (1.1.0) with the hybrid
    # pass and the profile-aware split plan inserted before split_model, and a
    # discretisation pre-check.
    check_nengo_loihi_version()
    if model.toplevel is None:
        seed_network(network, seeds=model.seeds, seeded=model.seeded)
        model.split = Split(
            network, precompute=precompute, remove_passthrough=remove_passthrough
        )
        if isinstance(model, Model):
            model.config_strategies = config_strategies(network)

    nengo_build_network(model, network, progress=None)

    if network is model.toplevel:
        for conn in model.split.passthrough.to_add:
            model.seeds[conn] = None
            model.seeded[conn] = False
            model.build(conn)

        hybrid_pass(model)
        # a copy (float32, as nengo-loihi holds them) before any discretisation
        model.float_weights = {
            synapse: [np.array(w, dtype=np.float32) for w in synapse.weights]
            for block in model.blocks
            for synapse in block.synapses
        }
        model.pre_split = {block: summarize_block(block) for block in model.blocks}
        plan_splits(model)

        block_map = split_model(model)
        if getattr(model, "after_split", None) is not None:
            model.after_split(model)
        model.block_comp_map = {
            new_block: comp_idxs
            for old_block, new_blocks in block_map.items()
            for new_block, comp_idxs in new_blocks.items()
        }
        model.block_map = block_map

        if discretize:
            check_discretization(model)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    discretize_model(model)
                except AssertionError as err:  # pragma: no cover (pre-checked)
                    # safety net only: `check_discretization` finds the cases
                    # known to trip nengo-loihi's asserts, which vanish under -O
                    raise DiscretizationError(
                        network,
                        "nengo-loihi's discretisation failed an internal check "
                        f"({err!r})",
                    ) from err
            model.discretize_warnings = [str(w.message) for w in caught]
            for message in model.discretize_warnings:
                warnings.warn(message, stacklevel=2)

        if model.validation_level != ValidationLevel.NONE:
            validate_model(model)


_HybridBuilder.builders.maps[0][nengo.Network] = _build_network


def hybrid_pass(model):
    """Rescale spikes of hybrid blocks by ``1/p`` and expand multi-compartment ones."""
    # spikes sent from hybrid ensembles on the host (ChipReceiveNeurons)
    for obj, built in list(model.objs.items()):
        if isinstance(obj, ChipReceiveNeurons) and isinstance(
            obj.neuron_type, HybridSpiking
        ):
            scale = 1.0 / obj.neuron_type.precision
            for axon in getattr(built.get("out"), "axons", []):
                if isinstance(axon.target, Synapse):
                    axon.target.weights = [w * scale for w in axon.target.weights]
    for block, info in model.hybrid_blocks.items():
        scale = 1.0 / info.neuron_type.precision
        for axon in block.axons:
            synapse = axon.target
            if isinstance(synapse, Synapse):
                synapse.weights = [w * scale for w in synapse.weights]
        for probe in model.probes:
            for k, target in enumerate(probe.target):
                if target is block and probe.key == "spiked":
                    weights = probe.weights[k]
                    probe.weights[k] = scale if weights is None else weights * scale

        K = info.strategy.compartments
        if K > 1:
            expand_block(model, block, K, info.ensemble)
        if isinstance(info.strategy, Thermometer):
            configure_thermometer(block, K)


def configure_thermometer(block, K):
    """Thresholds ``0.5, 1.5, ..., K - 0.5`` quanta and no voltage memory.

    `configure_block` set every threshold to ``K`` quanta (``K`` compartments
    sharing one neuron's drive); here compartment ``k`` of each neuron gets
    ``(k + 0.5)`` quanta and receives the full drive (its synapses already
    carry it), and the voltage decays fully each step (``decay_v = 1``; after
    nengo-loihi's 12-bit discretisation at most 2**-12 of the voltage is
    kept), so the count of a step is its drive rounded (`thermometer_counts`).
    """
    comp = block.compartment
    quantum = comp.vth / K
    levels = np.tile(np.arange(K) + 0.5, block.n_neurons // K)
    comp.vth = (quantum * levels).astype(np.float32)
    comp.decay_v[:] = 1.0


def expand_block(model, block, K, ens):
    """Replace each compartment of ``block`` by ``K`` copies (Hermite expansion).

    Copies share the neuron's input synapses and output axons, so their spikes
    add up at every target. The threshold / time constants were already set
    for ``K`` copies by `configure_block`.
    """
    n = block.n_neurons
    comp = block.compartment
    for attr in ("decay_u", "decay_v", "refract_delay", "vth", "bias", "enable_noise"):
        setattr(comp, attr, np.repeat(getattr(comp, attr), K))
    comp.n_compartments = n * K
    block.n_neurons = n * K

    def expand_idx(idx):
        idx = np.asarray(idx)
        return (idx[..., None] * K + np.arange(K)).reshape(idx.shape[:-1] + (-1,))

    for synapse in block.synapses:
        if synapse.pop_type != 0 or synapse.axon_compartment_bases is not None:
            raise BuildError(
                f"{ens}: the Expand strategy does not support population "
                "(convolutional) connections into the ensemble; use OneBit or "
                "lower the precision"
            )
        weights = [np.repeat(w, K, axis=-1) for w in synapse.weights]
        indices = [expand_idx(i) for i in synapse.indices]
        synapse._set_weights_indices(weights, indices=indices, compression=3)

    for axon in block.axons:
        if axon.compartment_map is not None:
            axon.compartment_map = np.repeat(axon.compartment_map, K)
        if axon.compartment_atoms is not None:
            axon.compartment_atoms = np.repeat(axon.compartment_atoms, K)

    for probe in model.probes:
        for k, target in enumerate(probe.target):
            if target is not block:
                continue
            if probe.key != "spiked":
                raise BuildError(
                    f"{ens}: cannot probe {probe.key!r} of an ensemble expanded into "
                    f"{K} compartments per neuron; probe its spikes or decoded output"
                )
            sel = np.arange(n)[probe.slice[k]]
            probe.slice[k] = (
                slice(None)
                if np.array_equal(sel, np.arange(n))
                else list(expand_idx(sel[:, None]).ravel())
            )
            weights = probe.weights[k]
            if weights is None or np.ndim(weights) == 0:
                w = 1.0 if weights is None else float(weights)
                weights = np.repeat(np.eye(len(sel)) * w, K, axis=0)
            else:
                weights = np.repeat(weights, K, axis=0)
            probe.weights[k] = weights

    shape = model.block_shapes.get(block)
    if shape is not None and shape.ensemble_size != n * K:
        raise BuildError(
            f"{ens}: block_shape {shape.shape} was given for {n} neurons, but the "
            f"Expand(K={K}) strategy places {n * K} compartments; give a BlockShape "
            f"for ensemble shape ({n * K},)"
        )


def split_model(model):
    """nengo-loihi 1.1's ``split_model`` with a vectorised synapse split.

    A copy of ``nengo_loihi.builder.split_blocks.split_model``; only the
    synapse split differs (`split_synapse`), with the same result. nengo-loihi's
    loops over every (core, axon, target) in Python: a dense 2000x2000
    connection took 17 s to split, a 5000x5000 one did not finish in 15 min.
    """
    from collections import OrderedDict

    block_map = OrderedDict()
    synapse_map = {}
    for old_block in model.blocks:
        new_blocks = loihi_split.split_block(
            old_block, model.block_shapes, validate=model.validation_level
        )
        block_map[old_block] = new_blocks
        if len(new_blocks) == 1:
            assert next(iter(new_blocks)) is old_block
            for old_synapse in old_block.synapses:
                synapse_map[old_synapse] = None
        else:
            for old_synapse in old_block.synapses:
                synapse_map[old_synapse] = split_synapse(
                    old_block, old_synapse, new_blocks, validate=model.validation_level
                )
    for old_block in model.blocks:
        loihi_split.split_block_axons(old_block, block_map, synapse_map)
    for model_input in model.inputs:
        loihi_split.split_input_axons(model_input, block_map, synapse_map)
    for probe in model.probes:
        loihi_split.split_probe(
            probe, block_map, synapse_map, validate=model.validation_level
        )
    new_blocks = [block for group in block_map.values() for block in group]
    model.blocks = OrderedDict(zip(new_blocks, range(len(new_blocks))))
    for subobjs in model.objs.values():
        for attr, val in subobjs.items():
            if val in block_map:
                subobjs[attr] = list(block_map[val])
    return block_map


class DenseSynapse(Synapse):
    """One core's part of a dense synapse: every axon targets the same compartments.

    The same data as nengo-loihi's `~nengo_loihi.block.Synapse` (the emulator
    and the chip interface read it unchanged); the totals nengo-loihi computes
    axon by axon in Python (weight memory, largest weight, largest index) are
    computed at once when every axon shares its index array, as `split_synapse`
    makes them. A 10000x10000 connection has 17 million axon-core pairs.
    """

    def _shared(self):
        first = self.indices[0] if self.indices else None
        if first is None or any(i is not first for i in self.indices):
            return None
        return first

    def bits(self):
        first = self._shared()
        if first is None or any(w.size != first.size for w in self.weights):
            return super().bits()
        return len(self.weights) * self.synapse_cfg.bits_per_axon(first.size)

    def max_abs_weight(self):
        if not self.weights or any(w.size == 0 for w in self.weights):
            return super().max_abs_weight()
        return float(np.abs(np.concatenate(self.weights, axis=None)).max())

    def max_ind(self):
        first = self._shared()
        return super().max_ind() if first is None or not first.size else first.max()


def _uniform_targets(synapse):
    """The targets shared by every axon of ``synapse`` (one population), or None."""
    if (
        synapse.pop_type != 0
        or synapse.axon_to_weight_map is not None
        or synapse.axon_compartment_bases is not None
        or not synapse.indices
        or any(w.shape[0] != 1 for w in synapse.weights)
    ):
        return None
    first = synapse.indices[0]
    if any(idx.shape != first.shape for idx in synapse.indices):
        return None
    targets = first[0]
    for idx in synapse.indices:
        if idx is not first and not np.array_equal(idx[0], targets):
            return None
    return np.asarray(targets)


def split_synapse(old_block, old_synapse, new_blocks, validate=ValidationLevel.MINIMAL):
    """``nengo_loihi.builder.split_blocks.split_synapse``, vectorised when it can be.

    When every axon of the synapse targets the same compartments (dense
    weights: every ``Synapse.set_weights`` of a dense matrix, also after
    `expand_block`), each new core's weights are one slice of the weight matrix;
    weights and indices are deduplicated as nengo-loihi does (identical
    rows share weight memory). Anything else goes to nengo-loihi's own split.
    """
    targets = _uniform_targets(old_synapse)
    if targets is None:
        return loihi_split.split_synapse(
            old_block, old_synapse, new_blocks, validate=validate
        )
    from collections import OrderedDict

    weights = np.concatenate(old_synapse.weights, axis=0)  # (n_axons, n_targets)
    n_axons = old_synapse.n_axons
    dtype = old_synapse.weights[0].dtype
    compression = old_synapse.synapse_cfg.compression
    position = np.full(old_block.compartment.n_compartments, -1, dtype=np.int64)
    new_synapse_axons = OrderedDict()
    for k, (block, block_comp_ids) in enumerate(new_blocks.items()):
        ids = np.asarray(block_comp_ids.list, dtype=np.int64)
        position[:] = -1
        position[ids] = np.arange(ids.size)
        keep = position[targets] >= 0
        if not np.any(keep):
            continue  # pragma: no cover (as nengo-loihi)
        rows = np.ascontiguousarray(weights[:, keep])
        new_ii = position[targets[keep]][None, :]
        unique, weight_map = {}, np.empty(n_axons, dtype=np.int64)
        kept = []
        for a in range(n_axons):
            key = rows[a].tobytes()
            index = unique.get(key)
            if index is None:
                index = unique[key] = len(kept)
                kept.append(rows[a : a + 1])
            weight_map[a] = index
        new_synapse = DenseSynapse(n_axons)
        if old_synapse.label is not None:
            new_synapse.label = "%s[%d]" % (old_synapse.label, k)
        block.add_synapse(new_synapse)
        new_synapse_axons[new_synapse] = list(range(n_axons))
        new_synapse._set_weights_indices(
            kept,
            [new_ii.astype(np.int32)] * len(kept),  # one array, shared
            weight_dtype=dtype,
            compression=compression,
        )
        new_synapse.axon_to_weight_map = weight_map
        new_synapse.axon_compartment_bases = np.zeros(n_axons, dtype=np.int64)
        new_synapse.pop_type = old_synapse.pop_type
    return new_synapse_axons


def summarize_block(block):
    """Resources of an (unsplit) block: compartments, axons, synapse bits."""
    return {
        "compartments": block.compartment.n_compartments,
        "input_axons": sum(s.n_axons for s in block.synapses),
        "output_axons": sum(a.axon_slots() for a in block.axons),
        "synapse_bits": sum(s.bits() for s in block.synapses),
    }


def _bits_for_counts(cfg, counts):
    """Vectorized `SynapseConfig.bits_per_axon` (64-bit word rounding)."""
    bits_per_weight = cfg.real_weight_bits + cfg.delay_bits + cfg.tag_bits
    if cfg.compression == 0:
        bits_per_weight += cfg.real_idx_bits
    per_block = cfg.n_synapses + 1
    overhead = 4 + 6  # synapse_idx_bits + n_synapses_bits, as nengo-loihi
    counts = np.asarray(counts, dtype=np.int64)
    full, rem = counts // per_block, counts % per_block

    def words(n):
        return -64 * (-(n * bits_per_weight + overhead) // 64)

    return full * words(per_block) + (rem > 0) * words(rem)


def _pieces_synapse_bits(block, size, uniform=None):
    """Word-rounded synapse bits of each ``size``-compartment piece of ``block``.

    ``uniform``: ``{synapse: _uniform_targets(synapse)}``, if already known.
    """
    n = block.compartment.n_compartments
    n_pieces = -(-n // size)
    bits = np.zeros(n_pieces, dtype=np.int64)
    for synapse in block.synapses:
        cfg = synapse.synapse_cfg
        targets = uniform[synapse] if uniform is not None else _uniform_targets(synapse)
        if targets is not None:  # dense: one count for all axons
            counts = np.bincount(targets // size, minlength=n_pieces)
            bits += synapse.n_axons * _bits_for_counts(cfg, counts)
            continue
        for idx in synapse.indices:
            if idx.size == 0:
                continue
            counts = np.bincount(np.ravel(idx[0]) // size, minlength=n_pieces)
            bits += _bits_for_counts(cfg, counts)
    return bits


def _ceil_div(a, b):
    return -(-a // b)


def plan_splits(model):
    """Choose per-block core counts from the profile, counting word rounding.

    nengo-loihi's auto-split divides the block's total synapse bits by the core
    limit, but each axon's synapses are rounded up to whole 64-bit words *per
    core*, so pieces can still overflow. Here the number of pieces is increased
    until every piece fits (or one compartment per core is reached), then
    until each piece's output axons fit (`_plan_output_axons`). User
    ``BlockShape`` settings are kept as given (the check reports them).
    """
    limits = model.profile.limits
    shapes = {b for b in model.blocks if model.block_shapes.get(b) is not None}
    for block in model.blocks:
        if block in shapes:
            model.split_plan[block] = model.block_shapes[block].n_splits
            continue
        summary = model.pre_split[block]
        n = summary["compartments"]
        n_split = _ceil_div(n, limits["compartments_per_core"])
        if limits["output_axons_per_core"]:
            n_split = max(
                n_split,
                _ceil_div(summary["output_axons"], limits["output_axons_per_core"]),
            )
        max_bits = limits["synapse_bits_per_core"]
        n_split = max(n_split, _ceil_div(summary["synapse_bits"], max_bits))
        uniform = {syn: _uniform_targets(syn) for syn in block.synapses}
        while n_split < n:
            size = _ceil_div(n, n_split)
            if np.all(_pieces_synapse_bits(block, size, uniform) <= max_bits):
                break
            n_split += 1
        model.split_plan[block] = n_split
        if n_split > 1:
            model.block_shapes[block] = BlockShape((_ceil_div(n, n_split),), (n,))
    _plan_output_axons(model, user_shapes={b for b in model.blocks if b in shapes})


def _plan_output_axons(model, user_shapes, rounds=4):
    """Split blocks further until their output axons fit, once targets are split.

    A compartment sends one axon (slot) to *each core* of each target it
    feeds: after the plan above splits a target into ``k`` cores, every
    presynaptic compartment needs ``k`` output axons for it (a dense
    1000x1000 connection: 10 target cores, 10,000 output axons on the one
    presynaptic core). nengo-loihi's split counts the axons before splitting.
    The number of pieces of each presynaptic block is raised until every
    piece fits (one compartment per core at most); repeated, since splitting
    a block multiplies the axons of the blocks that feed it.
    """
    limit = model.profile.limits["output_axons_per_core"]
    if not limit:
        return
    target_block = {id(syn): b for b in model.blocks for syn in b.synapses}
    for _ in range(rounds):
        changed = False
        for block in model.blocks:
            if block in user_shapes:
                continue
            n = block.compartment.n_compartments
            per_comp = np.zeros(n)
            for axon in block.axons:
                pieces = model.split_plan.get(target_block.get(id(axon.target)), 1)
                used = (
                    np.ones(n)
                    if axon.compartment_map is None
                    else (np.asarray(axon.compartment_map) >= 0)
                )
                per_comp += used * axon.slots_per_axon * pieces
            n_split = model.split_plan.get(block, 1)
            while n_split < n:
                size = _ceil_div(n, n_split)
                if np.all(np.add.reduceat(per_comp, np.arange(0, n, size)) <= limit):
                    break
                n_split += 1
            if n_split > model.split_plan.get(block, 1):
                model.split_plan[block] = n_split
                model.block_shapes[block] = BlockShape((_ceil_div(n, n_split),), (n,))
                changed = True
        if not changed:
            break


DISCRETIZATION_FIX = (
    "scale the weights into the ensemble down relative to its firing threshold "
    "(one input spike crosses the threshold many times), lower the precision, or "
    "use Expand(K) to raise the thresholds"
)


class DiscretizationError(BuildError):
    """nengo-loihi cannot turn a block into Loihi's integer formats.

    Attributes
    ----------
    obj : object
        The ensemble (or block) concerned.
    reason : str
        What does not fit.
    fix : str
        A change that makes it fit.
    """

    def __init__(self, obj, reason, fix=DISCRETIZATION_FIX):
        self.obj = obj
        self.reason = reason
        self.fix = fix
        super().__init__(
            f"{obj}: cannot be discretized for Loihi: {reason}. Fix: {fix}"
        )


def discretization_problem(block):
    """Why nengo-loihi 1.1 cannot discretize ``block``, or ``None``.

    Mirrors the scale search of nengo-loihi's ``discretize_compartment``, whose
    range checks are bare ``assert`` statements: an ``AssertionError`` without
    a message, and under ``python -O`` no error at all (the threshold would
    silently become zero). Cases where nengo-loihi raises its own
    ``BuildError`` are left to it.
    """
    d = loihi_discretize
    comp = block.compartment
    w_max = max([s.max_abs_weight() for s in block.synapses], default=0)
    max_decay = 2**12 - 1
    decay_u = np.round(np.clip(comp.decay_u * max_decay - 1, 0, max_decay))
    decay_v = np.round(comp.decay_v * max_decay)
    ones = np.ones(comp.decay_u.shape)
    u_infactor = (
        1.0 / d.decay_magnitude(decay_u, x0=2097152, offset=1) if comp.scale_u else ones
    )
    v_infactor = 1.0 / d.decay_magnitude(decay_v, x0=2097152) if comp.scale_v else ones
    vth_max = d.VTH_MAX
    b_max = np.abs(comp.bias).max()
    if w_max > 1e-8:
        w_scale = 255.0 / w_max
        s_scale = 1.0 / (u_infactor * v_infactor)
        for w_exp in range(0, -8, -1):
            v_scale = s_scale * w_scale * SynapseConfig.get_scale(w_exp)
            vth = np.round(comp.vth * v_scale)
            bias = np.round(comp.bias * v_scale * v_infactor)
            if (vth <= vth_max).all() and (np.abs(bias) <= d.BIAS_MAX).all():
                break
        else:
            return None  # nengo-loihi raises a BuildError itself
    elif b_max > 1e-8:
        b_scale = d.BIAS_MAX / b_max
        while b_scale * b_max > 1:
            v_scale = b_scale / v_infactor
            vth = np.round(comp.vth * v_scale)
            bias = np.round(comp.bias * b_scale)
            if np.all(vth <= vth_max):
                break
            b_scale /= 2.0
        else:
            return None  # nengo-loihi raises a BuildError itself
    else:
        vth_max = min(vth_max, 2**d.Q_BITS - 1)
        v_scale = np.array([vth_max / (comp.vth.max() + 1)])
        vth = np.round(comp.vth * v_scale)
        bias = np.round(comp.bias * v_scale * v_infactor)

    vth_man = np.round(vth / 2**d.VTH_EXP)
    if np.any(vth_man <= 0):
        vth_min = float(comp.vth.min())
        what, value = ("input weight", w_max) if w_max > 1e-8 else ("bias", b_max)
        return (
            f"its firing threshold would round to 0: the largest {what} "
            f"({value:.4g}) is {value / vth_min:.3g} times the threshold "
            f"({vth_min:.4g}), and Loihi keeps weights, biases and thresholds on "
            f"one integer scale set by the largest {what}"
        )
    if np.any(vth_man > d.VTH_MAN_MAX):
        return "its firing threshold exceeds Loihi's 17-bit threshold mantissa"
    exp = np.ceil(np.log2(np.maximum(np.abs(bias) / d.BIAS_MAN_MAX, 1)))
    if np.any(exp > d.BIAS_EXP_MAX) or np.any(
        np.abs(np.round(bias / 2**exp)) > d.BIAS_MAN_MAX
    ):
        return "its bias exceeds Loihi's 13-bit mantissa and 3-bit exponent"
    if not np.all(np.ravel(v_scale) == np.ravel(v_scale)[0]):
        return "its compartments would need different voltage scales"
    return None


def block_owner(model):
    """``{block: nengo.Ensemble}`` of a built model (before splitting)."""
    owner = {}
    for obj, built in model.objs.items():
        if isinstance(obj, nengo.Ensemble):
            blocks = built.get("out")
            for block in blocks if isinstance(blocks, list) else [blocks]:
                owner[block] = obj
    return owner


def discretization_problems(model):
    """``(ensemble or block, reason)`` for each block nengo-loihi cannot discretize."""
    owner = block_owner(model)
    for old_block, new_blocks in getattr(model, "block_map", {}).items():
        for new_block in new_blocks:
            owner.setdefault(new_block, owner.get(old_block, old_block))
    for block in model.blocks:
        reason = discretization_problem(block)
        if reason is not None:
            yield owner.get(block, block.label), reason


def check_discretization(model):
    """Raise `DiscretizationError` for the first block nengo-loihi cannot discretize."""
    for obj, reason in discretization_problems(model):
        raise DiscretizationError(obj, reason)


def substeps(strategy):
    """Chip steps per model step for ``strategy`` (1 unless `.Substeps`)."""
    if isinstance(strategy, dict):
        return 1
    strategy = as_strategy(strategy)
    return strategy.K if isinstance(strategy, Substeps) else 1


def build_model(
    network, dt=0.001, strategy=None, profile="loihi1", validate=True, discretize=True
):
    """Build ``network`` into a nengo-loihi `Model` without running anything.

    ``dt`` is the model step; with `.Substeps` the model is built at ``dt / K``.

    With ``validate=False`` nengo-loihi's own validation is skipped, so that a
    network that does not fit still builds and `.check` can report on it.
    """
    strategy = coerce_strategy_argument(strategy)
    model = Model(dt=dt / substeps(strategy), strategy=strategy, profile=profile)
    if not validate:
        model.validation_level = ValidationLevel.NONE
    model.build(network, discretize=discretize)
    return model


def reference_initial_voltages(model, ens):
    """The initial voltages the Nengo reference simulator draws for ``ens``.

    Same seed derivation as nengo's neuron build (``seed + 1``).
    """
    seed = model.seeds[ens]
    rng = np.random.RandomState(None if seed is None else seed + 1)
    state = ens.neuron_type.make_state(ens.n_neurons, rng=rng)
    return np.asarray(state["voltage"], dtype=np.float64)


def set_emulator_voltages(sim, voltages=None):
    """Start hybrid compartments of an emulator from the reference voltages.

    Compartment ``k`` of neuron ``i`` starts at ``(v0[i] + k) / K`` of its
    threshold (Hermite staggering). Only possible on the emulator: Loihi 1
    starts every compartment at zero.

    Parameters
    ----------
    sim : nengo_loihi.Simulator
        Built with a nengo-hybrid `Model`, ``target="sim"``.
    voltages : dict of {Ensemble: (n,) array}, optional
        Initial voltages in ``[0, 1)``; defaults to `reference_initial_voltages`.
    """
    model = sim.model
    emu = sim.sims.get("emulator")
    if emu is None:
        raise BuildError("Initial voltages can only be set on the emulator")
    comp_state = emu.compartment
    for old_block, info in model.hybrid_blocks.items():
        ens = info.ensemble
        K = info.strategy.compartments
        if isinstance(info.strategy, Thermometer):
            continue  # memoryless: nothing to match
        v0 = (
            reference_initial_voltages(model, ens)
            if voltages is None or ens not in voltages
            else np.asarray(voltages[ens], dtype=np.float64)
        )
        per_comp = ((v0[:, None] + np.arange(K)) / K).ravel()
        for new_block, comp_idxs in model.block_map[old_block].items():
            sl = emu.block_info.slices[new_block]
            vth = comp_state.vth[sl]
            idxs = np.fromiter(comp_idxs, dtype=np.int64)
            comp_state.voltage[sl] = np.round(per_comp[idxs] * vth)


#: the emulators `Simulator.run_samples` can run
EMULATORS = ("batched", "nengo-loihi")


class EmulatorFallbackWarning(UserWarning):
    """The batched emulator does not cover a network: nengo-loihi's runs it."""


class Simulator(nengo_loihi.Simulator):
    """A `nengo_loihi.Simulator` for networks with `.HybridSpiking` neurons.

    Builds with this module's `Model` (hybrid scaling, multi-bit strategies,
    profile-aware core plan, discretization pre-check) and, on the emulator,
    starts hybrid compartments from the reference simulator's voltages. A Nengo
    backend: ``nengo -b nengo_hybrid.hardware model.py`` runs a model in Nengo
    GUI on it.

    Parameters
    ----------
    network : nengo.Network
    dt : float
        The model step. With `.Substeps` (K) the simulator runs at ``dt / K``:
        run ``K`` times as many steps (``sim.run(seconds)`` needs no change).
    strategy : Strategy or dict
        Multi-bit strategy for all hybrid ensembles, or ``{ensemble: strategy}``
        (see `.strategies`). Per-ensemble strategies can also be set in the
        network config (`.add_params`); an entry of this dict wins over them.
    profile : str or Profile
        The hardware profile the cores are planned for (``"loihi1"``,
        ``"loihi2"``, a JSON path or a `.Profile`). The emulators have Loihi 1
        semantics.
    target : {"sim", "loihi", None}
        ``None``: the chip when NxSDK is importable, otherwise the emulator.
        ``"loihi"`` without NxSDK raises an error saying so.
    emulator : {"batched", "nengo-loihi"}
        What `run_samples` runs on the emulator target: the project's batched
        emulator (`.samples.SampleRunner`, bit-exact with nengo-loihi's, many
        samples at once) or nengo-loihi's own, one sample per build. A network
        the batched emulator does not cover falls back to nengo-loihi's with a
        one-line `EmulatorFallbackWarning` saying why. ``run_steps`` (one
        continuing run, e.g. in Nengo GUI) always steps nengo-loihi's.
    seed : int, optional
    precompute : bool, optional
        See `nengo_loihi.Simulator`.
    match_initial_voltages : bool
        On the emulator, start hybrid compartments from the reference
        simulator's initial voltages (Loihi hardware always starts from zero).
    allow_violations : bool
        Build and run even if the hardware check finds violations (they are
        warned about and recorded in ``check_report``); on the emulator this
        also skips nengo-loihi's own hardware-limit validation. By default
        such a network is refused with `.HardwareCheckError`.
    counts : dict of {Ensemble: int or array_like}, optional
        Measured spike counts per step, as for `.check`.
    sample : int or dict of {nengo.Node: array_like}, optional
        Inputs to measure spike counts from where no bound is possible, as
        for `.check`.
    **kwargs
        Passed to `nengo_loihi.Simulator` (e.g. ``remove_passthrough``).

    Attributes
    ----------
    emulator : str or None
        The emulator `run_samples` uses: ``"batched"`` or ``"nengo-loihi"``
        (also after a fallback), or ``None`` on the chip.
    emulator_fallback : str or None
        Why the batched emulator was not used, after a fallback.
    profile : Profile
        The profile the cores were planned for.
    strategy : Strategy or dict
        The ``strategy`` argument, coerced.
    check_report : Report
        The hardware check of this network (`.check`'s checks, run before the
        build and between the core split and the discretisation);
        ``check_report.allow_violations`` says whether it ran despite
        violations.

    Raises
    ------
    HardwareCheckError
        (a `nengo.exceptions.BuildError`) If the network does not fit the
        profile: everything `.check` refuses (unsupported neuron types, input
        axons, cores, spike counts per step above the strategy's budget, ...),
        listed with their fixes. Not with ``allow_violations=True``.
    DiscretizationError
        (a `nengo.exceptions.BuildError`) For weights too large for the firing
        thresholds in Loihi's integer formats: nengo-loihi cannot build it,
        whatever ``allow_violations`` says.

    Examples
    --------
    Twenty neurons that need up to three spikes per step, run on nengo-loihi's
    emulator with three one-bit compartments each:

    >>> import nengo
    >>> import numpy as np
    >>> from nengo_hybrid.hardware import Expand, Simulator
    >>> from nengo_hybrid.neurons import HybridSpiking
    >>> with nengo.Network(seed=0) as net:
    ...     ens = nengo.Ensemble(
    ...         20,
    ...         1,
    ...         neuron_type=HybridSpiking(nengo.RectifiedLinear(), precision=2),
    ...         gain=np.ones(20),
    ...         bias=np.linspace(100, 1400, 20),
    ...     )
    ...     probe = nengo.Probe(ens.neurons)
    >>> with Simulator(net, strategy=Expand(3), target="sim") as sim:
    ...     sim.run_steps(100)
    >>> sim.emulator, len(sim.model.blocks)
    ('batched', 1)
    >>> counts = np.round(sim.data[probe] * 2 * sim.dt)  # spikes per step
    >>> int(counts.max())
    3
    """

    def __init__(
        self,
        network,
        dt=0.001,
        strategy=None,
        profile="loihi1",
        target=None,
        seed=None,
        precompute=None,
        match_initial_voltages=True,
        allow_violations=False,
        counts=None,
        sample=None,
        emulator="batched",
        **kwargs,
    ):
        self.closed = True  # as nengo_loihi.Simulator: __del__ may run early
        if emulator not in EMULATORS:
            raise ValidationError(
                f"emulator must be one of {EMULATORS}, got {emulator!r}",
                attr="emulator",
            )
        if target is None:
            target = "loihi" if HAS_NXSDK else "sim"
        if target == "loihi" and not HAS_NXSDK:
            raise BuildError(
                "target='loihi' needs Intel's NxSDK, which is not importable here; "
                "run on the emulator with target='sim' (or install NxSDK on a "
                "machine with a Loihi board)"
            )
        from nengo_hybrid.hardware.findings import HardwareCheckError, Report

        # (the package attribute `check` is the function; this is its module)
        checks = importlib.import_module("nengo_hybrid.hardware.check")

        self.strategy = coerce_strategy_argument(strategy)
        self.profile = load_profile(profile)
        self.emulator = emulator if target in ("sim", "simreal") else None
        self.emulator_fallback = None
        self._sample_runner = None
        self._rebuild = dict(
            network=network, dt=dt, strategy=strategy, profile=self.profile,
            target=target, seed=seed, precompute=precompute,
            match_initial_voltages=match_initial_voltages,
            allow_violations=allow_violations, counts=counts, sample=sample,
            **kwargs,
        )  # fmt: skip
        self.allow_violations = bool(allow_violations)
        dt_chip = dt / substeps(self.strategy)
        model = Model(dt=dt_chip, strategy=self.strategy, profile=self.profile)
        report = Report(self.profile, self.strategy)
        report.allow_violations = self.allow_violations
        self.check_report = report

        def refuse_unless_allowed():
            if not report.ok and not self.allow_violations:
                raise HardwareCheckError(report, what=str(network))

        if not checks.pre_build(network, report):
            refuse_unless_allowed()

        def after_split(built):
            if target != "simreal":  # nengo-loihi cannot discretize it at all
                check_discretization(built)
            checks.analyze(built, network, report, counts=counts, sample=sample, dt=dt)
            refuse_unless_allowed()

        model.after_split = after_split
        if self.allow_violations and target in ("sim", "simreal"):
            # the emulators run what no chip could hold (e.g. too many input axons)
            model.validation_level = ValidationLevel.NONE
        super().__init__(
            network,
            dt=dt_chip,
            model=model,
            target=target,
            seed=seed,
            precompute=precompute,
            **kwargs,
        )
        if not report.ok:
            report.notes.append(
                "allow_violations=True: built and run despite the violations above"
            )
            warnings.warn(
                f"{network}: running despite {len(report.violations)} hardware check "
                "violation(s) (allow_violations=True): "
                + "; ".join(v.message for v in report.violations),
                stacklevel=2,
            )
        if self.emulator is not None and match_initial_voltages:
            if model.hybrid_blocks:
                set_emulator_voltages(self)
        elif model.hybrid_blocks and match_initial_voltages:  # pragma: no cover (chip)
            warnings.warn(
                "On Loihi hardware all compartments start at zero voltage: "
                "HybridSpiking initial voltages (and the Expand staggering) are "
                "not applied",
                stacklevel=2,
            )
        if self.emulator == "batched":
            self._prepare_batched(network)

    def _prepare_batched(self, network):
        from nengo_hybrid.hardware.emulator import UnsupportedModel
        from nengo_hybrid.hardware.samples import SampleRunner

        try:  # copies the emulator's initial state: before anything runs
            self._sample_runner = SampleRunner(self, network)
        except UnsupportedModel as error:
            self.emulator, self.emulator_fallback = "nengo-loihi", str(error)
            warnings.warn(
                f"{network}: {error}; running nengo-loihi's emulator instead "
                "(one sample per build)",
                EmulatorFallbackWarning,
                stacklevel=3,
            )

    def run_samples(self, inputs, n_steps, probes=None, batch_size=64, progress=None):
        """Run independent samples, each from the initial state.

        Parameters
        ----------
        inputs : dict of {nengo.Node: array_like}
            ``(B, T, size_out)`` values of the network's input nodes: sample
            ``i`` gives the node ``values[i][t - 1]`` on step ``t`` (zeros after
            ``T``), as ``PresentInput(values[i], dt)`` would.
        n_steps : int
            Steps per sample (host latencies make outputs lag; see
            `nengo_hybrid.pipeline.deploy`).
        probes : list of nengo.Probe, optional
            Default: every probe.
        batch_size : int
            Samples the batched emulator runs together.
        progress : tqdm-like, optional
            ``progress.update(k)`` after every ``k`` samples.

        Returns
        -------
        dict of {nengo.Probe: ndarray}
            ``(B, n_steps, size)``: per sample, what ``sim.data[probe]`` holds
            after ``run_steps(n_steps)`` on a fresh simulator fed that sample.
            The engine is ``self.emulator`` (on the chip: one sample per build).
        """
        if probes is None:
            probes = self._rebuild["network"].all_probes
        probes = list(probes)
        if self._sample_runner is not None:
            return self._batched_samples(inputs, n_steps, probes, batch_size, progress)
        return self._one_sample_per_build(inputs, n_steps, probes, progress)

    def _batched_samples(self, inputs, n_steps, probes, batch_size, progress):
        runner = self._sample_runner
        arrays, n_samples = runner.validate(inputs)
        parts = []
        for b0 in range(0, n_samples, batch_size):
            chunk = {node: x[b0 : b0 + batch_size] for node, x in arrays.items()}
            parts.append(runner.run(chunk, n_steps, probes, batch_size=batch_size))
            if progress is not None:
                progress.update(len(next(iter(chunk.values()))))
        return {p: np.concatenate([part[p] for part in parts]) for p in probes}

    def _one_sample_per_build(self, inputs, n_steps, probes, progress):
        """One fresh nengo-loihi simulator per sample (it has no reset)."""
        from nengo_hybrid.hardware.samples import fit_steps

        args = dict(self._rebuild, emulator="nengo-loihi")
        network = args.pop("network")
        arrays = {node: np.asarray(x, dtype=np.float64) for node, x in inputs.items()}
        n_samples = len(next(iter(arrays.values())))
        saved = {node: (node.output, node.size_out) for node in arrays}
        outputs = {p: [] for p in probes}
        try:
            for i in range(n_samples):
                for node, x in arrays.items():
                    padded = fit_steps(x[i : i + 1], n_steps)[0]
                    node.output = nengo.processes.PresentInput(padded, self.dt)
                    node.size_out = x.shape[2]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # warned when this one was built
                    sim = type(self)(network, **args)
                with sim:
                    sim.run_steps(n_steps)
                    for p in probes:
                        outputs[p].append(np.asarray(sim.data[p]))
                if progress is not None:
                    progress.update(1)
        finally:
            for node, (output, size_out) in saved.items():
                node.output, node.size_out = output, size_out
        return {p: np.stack(data) for p, data in outputs.items()}
