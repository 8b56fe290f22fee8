"""Atomic file writes and run provenance.

Everything the toolkit writes (checkpoints, reports, benchmark results) goes
through these helpers, so an interrupted run never leaves a half-written file.
"""

import json
import math
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path, PurePath

import numpy as np

STACK = (
    "nengo-hybrid",
    "nengo",
    "nengo-dl",
    "nengo-loihi",
    "tensorflow",
    "numpy",
    "scipy",
    "mlxtend",
    "keras-lmu",
)


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path, text):
    """Write text (UTF-8) atomically; see `atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj):
    """Convert numpy scalars/arrays, paths and non-finite floats for JSON.

    Non-finite floats become ``None`` (JSON has no NaN or infinity).
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, PurePath):
        return str(obj)
    return obj


def atomic_write_json(path, obj, sort_keys=False):
    """Write ``obj`` (sanitised by `to_jsonable`) as indented JSON atomically."""
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=sort_keys, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def environment_info():
    """The machine and package versions a result was measured with."""
    versions = {}
    for name in STACK:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": versions,
    }


def markdown_table(rows, columns):
    """Render ``rows`` (list of dicts) as a markdown table with ``columns``.

    ``columns`` is a list of ``(key, header, format)``; format is a format spec
    such as ``".3f"`` or ``""``.
    """
    lines = [
        "| " + " | ".join(header for _, header, _ in columns) + " |",
        "|" + "|".join(" --- " for _ in columns) + "|",
    ]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            cells.append("n/a" if value is None else format(value, fmt))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
