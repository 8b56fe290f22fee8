"""Deploy hybrid-spiking networks onto Loihi-style neuron cores.

* `check` -- hardware-constraint checks against a `.Profile`, before anything runs.
* `Simulator` -- a nengo-loihi simulator (emulator, or chip when NxSDK is
  importable) for networks with `.HybridSpiking` neurons.
* strategies for multi-bit neurons: `OneBit`, `Expand`, `Substeps`, `Thermometer`.
* `encode_node_inputs` -- send per-step host signals to on-chip neurons as exact
  spike counts of host encoder neurons (not nengo-loihi's filtered encoder).
* `compare` -- run a network in the reference simulator and on the emulator and
  report accuracy, output error and spike-count agreement per layer.
* `load_recipe` / `apply_recipe` -- deployment recipes (``deploy/*.json``).

Importing this package registers the nengo-loihi builder for `.HybridSpiking`
(in `nengo_hybrid.hardware.loihi`, the only module that touches nengo-loihi
internals).
"""

from nengo_hybrid.hardware.check import Report, Violation, check
from nengo_hybrid.hardware.inputs import encode_node_inputs
from nengo_hybrid.hardware.loihi import HAS_NXSDK, Model, Simulator, build_model
from nengo_hybrid.hardware.profiles import Profile, available_profiles, load_profile
from nengo_hybrid.hardware.recipes import apply_recipe, load_recipe
from nengo_hybrid.hardware.run import compare
from nengo_hybrid.hardware.strategies import (
    Expand,
    OneBit,
    Strategy,
    Substeps,
    Thermometer,
    expanded_counts,
    hybrid_counts,
    thermometer_counts,
)

__all__ = [
    "HAS_NXSDK",
    "Expand",
    "Model",
    "OneBit",
    "Profile",
    "Report",
    "Simulator",
    "Strategy",
    "Substeps",
    "Thermometer",
    "Violation",
    "apply_recipe",
    "available_profiles",
    "build_model",
    "check",
    "compare",
    "encode_node_inputs",
    "expanded_counts",
    "hybrid_counts",
    "load_profile",
    "load_recipe",
    "thermometer_counts",
]
