"""The Nengo builders for `.HybridSpiking` and `.SigmaDelta`: where integrations hook in.

Nengo's reference simulator builds `.HybridSpiking` and `.SigmaDelta` like any
`~nengo.neurons.RatesToSpikesNeuronType` (a rate operator feeding the
quantizer). NengoDL builds networks through Nengo's builder registry too, so the
build function registered here is the first code of ours that runs when a
`nengo_dl.Simulator` meets such an ensemble: it loads `nengo_hybrid.dl`, which
registers the TensorFlow builders, before NengoDL looks
the operator up. That keeps ``import nengo_hybrid`` free of TensorFlow.
"""

import importlib

from nengo.builder import Builder
from nengo.builder.neurons import build_rates_to_spikes

from nengo_hybrid.neurons import HybridSpiking, SigmaDelta

#: integrations to load when a model of that simulator package builds HybridSpiking
INTEGRATIONS = {"nengo_dl": "nengo_hybrid.dl"}


def load_integration(model):
    """Import the integration for the simulator package that owns ``model``."""
    package = type(model).__module__.partition(".")[0]
    module = INTEGRATIONS.get(package)
    if module is not None:
        importlib.import_module(module)


@Builder.register(HybridSpiking)
@Builder.register(SigmaDelta)
def build_hybrid_spiking(model, neuron_type, neurons):
    """Build our neuron types as Nengo does, after loading any needed integration."""
    load_integration(model)
    return build_rates_to_spikes(model, neuron_type, neurons)
