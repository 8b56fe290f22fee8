"""nengo-hybrid: hybrid-spiking neural networks for the Nengo ecosystem.

``HybridSpiking`` quantizes any Nengo rate neuron type into multi-bit spikes
with temporally diffused error; the NengoDL builder registers itself when this
package is imported.
"""

import os

# TensorFlow's C++ start-up chatter buries our output; users can still override
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from nengo_hybrid import (
    dl,  # noqa: E402,F401  (registers the NengoDL builder)
    hardware,  # noqa: E402,F401  (registers the nengo-loihi builder)
)
from nengo_hybrid.neurons import HybridSpiking  # noqa: E402
from nengo_hybrid.version import version as __version__  # noqa: E402

__all__ = ["HybridSpiking", "__version__"]
