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
"""

import collections
import warnings

import nengo
import numpy as np
from nengo.builder.network import build_network as nengo_build_network
from nengo.builder.network import seed_network
from nengo.exceptions import BuildError
from nengo_loihi.block import Synapse
from nengo_loihi.builder import Builder as LoihiBuilder
from nengo_loihi.builder import Model as LoihiModel
from nengo_loihi.builder.builder import ValidationLevel
from nengo_loihi.builder.discretize import discretize_model
from nengo_loihi.builder.inputs import ChipReceiveNeurons
from nengo_loihi.builder.split_blocks import split_model
from nengo_loihi.builder.validate import validate_model
from nengo_loihi.config import BlockShape
from nengo_loihi.splitter import Split

from nengo_hybrid.hardware.profiles import load_profile
from nengo_hybrid.hardware.strategies import OneBit, Substeps, Thermometer, as_strategy
from nengo_hybrid.neurons import HybridSpiking

try:  # pragma: no cover (no NxSDK in CI)
    import nxsdk  # noqa: F401

    HAS_NXSDK = True
except ImportError:
    HAS_NXSDK = False

SUPPORTED_BASES = (nengo.RectifiedLinear, nengo.LIFRate)

HybridBlock = collections.namedtuple(
    "HybridBlock", ["ensemble", "neuron_type", "strategy"]
)


def check_supported(ens):
    """Raise a `~nengo.exceptions.BuildError` if ``ens`` cannot run on Loihi."""
    neuron_type = ens.neuron_type
    base = neuron_type.base_type
    if type(base) not in SUPPORTED_BASES:
        raise BuildError(
            f"{ens}: HybridSpiking with base type {type(base).__name__} cannot run "
            "on Loihi compartments (supported bases: "
            f"{', '.join(b.__name__ for b in SUPPORTED_BASES)}). Use one of those, "
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
    p_eff = neuron_type.precision / K
    if type(base) is nengo.RectifiedLinear:
        block.compartment.configure_relu(vth=1.0 / (p_eff * dt * base.amplitude), dt=dt)
    else:
        block.compartment.configure_lif(
            tau_rc=base.tau_rc / p_eff, tau_ref=base.tau_ref / p_eff, dt=dt
        )


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
    strategy : Strategy, str, int or dict
        Multi-bit strategy for all hybrid ensembles, or ``{ensemble: strategy}``
        (ensembles not in the dict use `.OneBit`). See `.strategies`.
    profile : str or Profile
        Hardware profile used to plan how ensembles are split over cores (the
        plan accounts for the 64-bit word rounding of synapse memory).
    label : str, optional
    """

    def __init__(self, dt=0.001, strategy=None, profile="loihi1", label=None):
        super().__init__(dt=dt, label=label, builder=_HybridBuilder())
        if isinstance(strategy, dict):
            self.strategies = {ens: as_strategy(s) for ens, s in strategy.items()}
            self.default_strategy = OneBit()
            if any(isinstance(s, Substeps) for s in self.strategies.values()):
                raise BuildError(
                    "Substeps(K) changes the simulation step of the whole network; "
                    "pass it as the strategy for all ensembles, not per ensemble"
                )
        else:
            self.strategies = {}
            self.default_strategy = as_strategy(strategy)
        self.profile = load_profile(profile)
        self.hybrid_blocks = collections.OrderedDict()
        self.pre_split = None  # filled by the build: per-block summary before split
        self.split_plan = {}  # block -> number of cores planned
        self.discretize_warnings = []
        self.synapse_conn = {}  # Synapse -> nengo.Connection that created it
        self.float_weights = {}  # Synapse -> float weights before discretization

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
        return self.strategies.get(ens, self.default_strategy)


class _HybridBuilder(LoihiBuilder):
    """nengo-loihi's builder with our network build (hybrid pass before split)."""

    builders = collections.ChainMap({}, LoihiBuilder.builders)


def _build_network(
    model, network, precompute=None, remove_passthrough=True, discretize=True
):
    # Copy of nengo_loihi.builder.network.build_network (1.1.0) with the hybrid
    # pass and the profile-aware split plan inserted before split_model.
    if model.toplevel is None:
        seed_network(network, seeds=model.seeds, seeded=model.seeded)
        model.split = Split(
            network, precompute=precompute, remove_passthrough=remove_passthrough
        )

    nengo_build_network(model, network, progress=None)

    if network is model.toplevel:
        for conn in model.split.passthrough.to_add:
            model.seeds[conn] = None
            model.seeded[conn] = False
            model.build(conn)

        hybrid_pass(model)
        model.float_weights = {
            synapse: [np.array(w, dtype=np.float64) for w in synapse.weights]
            for block in model.blocks
            for synapse in block.synapses
        }
        model.pre_split = {block: summarize_block(block) for block in model.blocks}
        plan_splits(model)

        block_map = split_model(model)
        model.block_comp_map = {
            new_block: comp_idxs
            for old_block, new_blocks in block_map.items()
            for new_block, comp_idxs in new_blocks.items()
        }
        model.block_map = block_map

        if discretize:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                discretize_model(model)
            model.discretize_warnings = [str(w.message) for w in caught]
            for message in model.discretize_warnings:
                warnings.warn(message, stacklevel=2)

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


def _pieces_synapse_bits(block, size):
    """Word-rounded synapse bits of each ``size``-compartment piece of ``block``."""
    n = block.compartment.n_compartments
    n_pieces = -(-n // size)
    bits = np.zeros(n_pieces, dtype=np.int64)
    for synapse in block.synapses:
        cfg = synapse.synapse_cfg
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
    until every piece fits (or one compartment per core is reached). User
    ``BlockShape`` settings are kept as given (the check reports them).
    """
    limits = model.profile.limits
    for block in model.blocks:
        if model.block_shapes.get(block) is not None:
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
        while n_split < n:
            size = _ceil_div(n, n_split)
            if np.all(_pieces_synapse_bits(block, size) <= max_bits):
                break
            n_split += 1
        model.split_plan[block] = n_split
        if n_split > 1:
            model.block_shapes[block] = BlockShape((_ceil_div(n, n_split),), (n,))


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


def Simulator(
    network,
    dt=0.001,
    strategy=None,
    profile="loihi1",
    target=None,
    seed=None,
    precompute=None,
    match_initial_voltages=True,
    **kwargs,
):
    """A ``nengo_loihi.Simulator`` for networks with `.HybridSpiking` neurons.

    Parameters
    ----------
    network : nengo.Network
    dt : float
        The model step. With `.Substeps` (K) the simulator runs at ``dt / K``:
        run ``K`` times as many steps (``sim.run(seconds)`` needs no change).
    strategy : Strategy, str, int or dict
        Multi-bit strategy (see `.strategies`).
    profile : str or Profile
        Profile for the split plan; the emulator itself is always Loihi 1.
    target : {"sim", "loihi", None}
        ``None``: the chip when NxSDK is importable, otherwise the emulator.
        ``"loihi"`` without NxSDK raises an error saying so.
    match_initial_voltages : bool
        On the emulator, start hybrid compartments from the reference
        simulator's initial voltages (Loihi hardware always starts from zero).
    **kwargs
        Passed to ``nengo_loihi.Simulator``.
    """
    import nengo_loihi

    if target is None:
        target = "loihi" if HAS_NXSDK else "sim"
    if target == "loihi" and not HAS_NXSDK:
        raise BuildError(
            "target='loihi' needs Intel's NxSDK, which is not importable here; "
            "run on the emulator with target='sim' (or install NxSDK on a machine "
            "with a Loihi board)"
        )
    dt_chip = dt / substeps(strategy)
    model = Model(dt=dt_chip, strategy=strategy, profile=profile)
    sim = nengo_loihi.Simulator(
        network,
        dt=dt_chip,
        model=model,
        target=target,
        seed=seed,
        precompute=precompute,
        **kwargs,
    )
    if target == "sim" and match_initial_voltages and model.hybrid_blocks:
        set_emulator_voltages(sim)
    elif model.hybrid_blocks and match_initial_voltages:  # pragma: no cover (chip)
        warnings.warn(
            "On Loihi hardware all compartments start at zero voltage: HybridSpiking "
            "initial voltages (and the Expand staggering) are not applied",
            stacklevel=2,
        )
    return sim
