"""nengo-hybrid: hybrid-spiking neural networks for the Nengo ecosystem."""

from nengo_hybrid.neurons import HybridSpiking
from nengo_hybrid.version import version as __version__

try:  # the NengoDL builder registers itself on import
    from nengo_hybrid import dl
except ImportError:  # pragma: no cover (NengoDL is a hard dependency in setup.py)
    dl = None

__all__ = ["HybridSpiking", "__version__"]
