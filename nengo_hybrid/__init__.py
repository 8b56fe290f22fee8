"""nengo-hybrid: hybrid-spiking neural networks for the Nengo ecosystem.

``HybridSpiking`` quantizes any Nengo rate neuron type into multi-bit spikes
with temporally diffused error; ``SigmaDelta`` is Lava's sigma-delta neuron
(the stock Loihi 2 neuron for rate-like networks) as a Nengo neuron type.

Importing this package loads Nengo only. The integrations register themselves
when they are first used:

* NengoDL: the TensorFlow builders for `HybridSpiking` and `SigmaDelta`
  (`nengo_hybrid.dl`) are registered the first time a `nengo_dl.Simulator`
  builds a network that has such neurons (or when ``nengo_hybrid.dl`` is
  imported).
* nengo-loihi: the Loihi builder (`nengo_hybrid.hardware.loihi`) is registered
  when `nengo_hybrid.hardware.Simulator`, `nengo_hybrid.hardware.check` or
  anything else in `nengo_hybrid.hardware` that needs nengo-loihi is first
  used (or when ``nengo_hybrid.hardware.loihi`` is imported). A plain
  ``nengo_loihi.Simulator`` needs that import first; without it nengo-loihi
  refuses `HybridSpiking` ("cannot be simulated on Loihi").

``nengo_hybrid.Simulator`` is `nengo_hybrid.hardware.Simulator`, so that
``nengo -b nengo_hybrid model.py`` (Nengo GUI) runs a model on the emulator.
"""

from nengo_hybrid import builder as _builder  # noqa: F401 (registers the Nengo builder)
from nengo_hybrid.neurons import HybridSpiking, SigmaDelta
from nengo_hybrid.version import version as __version__

__all__ = ["HybridSpiking", "SigmaDelta", "Simulator", "__version__"]


def __getattr__(name):
    # `nengo -b nengo_hybrid model.py` (Nengo GUI) imports this module and uses
    # its `Simulator`: nengo_hybrid.hardware.Simulator, loaded on first use
    if name == "Simulator":
        from nengo_hybrid.hardware import Simulator

        return Simulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
