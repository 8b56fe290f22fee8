"""Stage ``export``: a run's frozen network as another toolchain's file.

``netx``: lava-dl's HDF5 network file for Loihi 2 (`nengo_hybrid.hardware.netx`),
for networks of `.SigmaDelta` layers. Writes the file (atomically) and
``export.json`` (the layers and their fixed-point scales) in the run folder. No
TensorFlow.
"""

import pathlib

from nengo_hybrid import report as reporting
from nengo_hybrid.pipeline.runs import read_frozen

#: formats `export` writes
FORMATS = ("netx",)
#: what `export` wrote, in the run folder
EXPORT = "export.json"


def export(run, path, format="netx"):
    """Write the run's frozen network to ``path`` in ``format``.

    Parameters
    ----------
    run : str or pathlib.Path
        Run folder with a frozen network (``frozen.npz``).
    path : str or pathlib.Path
        The file to write.
    format : {"netx"}

    Returns
    -------
    dict
        The content of ``export.json``.
    """
    from nengo_hybrid.hardware import netx

    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; use one of {FORMATS}")
    run = pathlib.Path(run)
    network = read_frozen(run).build()
    result = netx.export(network, path).to_dict()
    # not a stage of the report (report.STAGES): a file of its own
    reporting.write_json(run / EXPORT, result)
    return result
