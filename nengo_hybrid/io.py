"""Atomic file writes and run provenance.

Everything the toolkit writes (checkpoints, reports, benchmark results) goes
through these helpers, so an interrupted run never leaves a half-written file.
"""

import json
import math
import os
import platform
import secrets
import stat
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


def _create_temp(directory, name):
    """Create and open a new, unique temporary file next to the target.

    ``os.open`` with mode ``0o666`` lets the kernel apply the user's umask, as
    ``open()`` does (``tempfile.mkstemp`` would always give ``0o600``).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = directory / f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(
        f"could not create a temporary file for {name} in {directory}"
    )


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``.

    Either the whole new content is in place or the old file is untouched, and
    no temporary file is left behind. The file gets the permissions ``open()``
    would give it: those of the file it replaces, or ``0o666`` minus the umask
    for a new file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            try:
                os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
            except FileNotFoundError:
                pass  # a new file: the umask applied when it was created
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
