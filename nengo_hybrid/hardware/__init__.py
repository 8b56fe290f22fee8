"""Deploy hybrid-spiking networks onto Loihi-style neuron cores.

* `check` -- hardware-constraint checks against a `.Profile`, before anything
  runs; the result is a `Report` (its findings are `Violation` objects). Spike
  counts per step are bounded from every input (`.bounds`).
* `Simulator` -- a ``nengo_loihi.Simulator`` (emulator, or chip when NxSDK is
  importable) for networks with `.HybridSpiking` neurons; also the Nengo
  backend ``nengo_hybrid`` (``nengo -b nengo_hybrid.hardware``). It runs the
  same checks and refuses what `check` refuses (`HardwareCheckError`) unless
  ``allow_violations=True``.
* strategies for multi-bit neurons: `OneBit`, `Expand`, `Substeps`,
  `Thermometer` (binary spikes, Loihi 1) and `Graded` (graded spikes, Loihi 2);
  per ensemble through the network config with `add_params`.
* `encode_node_inputs` -- send per-step host signals to on-chip neurons as exact
  spike counts of host encoder neurons (not nengo-loihi's filtered encoder).
* `compare_samples` -- classify independent samples on the emulator (batched
  by default) and compare with the reference simulator: accuracy with its 95%
  interval, prediction, output and spike-count agreement. `compare` does the
  same for samples played back to back in one run.
* `load_recipe` / `apply_recipe` -- deployment recipes (``deploy/*.json``).

Importing this package is light: profiles, strategies, the config options and
the report data model need neither nengo-loihi nor TensorFlow. The names that
need nengo-loihi (`check`, `Simulator`, `Model`, `build_model`, `compare`,
`encode_node_inputs`, ``HAS_NXSDK``) import their module on first access
(PEP 562); that module, `nengo_hybrid.hardware.loihi` -- the only one that
touches nengo-loihi internals -- registers the nengo-loihi builder for
`.HybridSpiking` and imports nengo-loihi without TensorFlow.
"""

import importlib as _importlib
import sys as _sys
import types as _types

from nengo_hybrid.hardware.config import add_params
from nengo_hybrid.hardware.findings import HardwareCheckError, Report, Violation
from nengo_hybrid.hardware.profiles import Profile, available_profiles, load_profile
from nengo_hybrid.hardware.recipes import apply_recipe, load_recipe
from nengo_hybrid.hardware.strategies import (
    Expand,
    Graded,
    OneBit,
    Strategy,
    Substeps,
    Thermometer,
    expanded_counts,
    hybrid_counts,
    thermometer_counts,
)

#: names imported from a submodule on first access (they need nengo-loihi)
_LAZY = {
    "EmulatorFallbackWarning": "loihi",
    "HAS_NXSDK": "loihi",
    "Model": "loihi",
    "Simulator": "loihi",
    "build_model": "loihi",
    "check": "check",
    "compare": "run",
    "compare_samples": "run",
    "encode_node_inputs": "inputs",
}

__all__ = [
    "EmulatorFallbackWarning",
    "HAS_NXSDK",
    "Expand",
    "Graded",
    "HardwareCheckError",
    "Model",
    "OneBit",
    "Profile",
    "Report",
    "Simulator",
    "Strategy",
    "Substeps",
    "Thermometer",
    "Violation",
    "add_params",
    "apply_recipe",
    "available_profiles",
    "build_model",
    "check",
    "compare",
    "compare_samples",
    "encode_node_inputs",
    "expanded_counts",
    "hybrid_counts",
    "load_profile",
    "load_recipe",
    "thermometer_counts",
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _importlib.import_module(f"{__name__}.{_LAZY[name]}")
    value = getattr(module, name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    public = {name for name in globals() if not name.startswith("_")}
    return sorted(public | set(__all__))


class _Package(_types.ModuleType):
    """Keeps the function `check` when the submodule of the same name loads.

    Importing ``nengo_hybrid.hardware.check`` sets the package attribute
    ``check`` to the submodule; ``nengo_hybrid.hardware.check(net)`` must stay
    the function, whichever is imported first.
    """

    def __setattr__(self, name, value):
        if name == "check" and isinstance(value, _types.ModuleType):
            value = value.check
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
