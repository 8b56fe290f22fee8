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


class UserError(ValueError):
    """Bad input the user can fix: the message says what, ``hint`` what to do.

    Parameters
    ----------
    message : str
        What is wrong (names the file or object).
    hint : str, optional
        What to do about it.
    """

    def __init__(self, message, hint=None):
        super().__init__(message)
        self.hint = hint


def search_path(folder, env, package):
    """Folders to search for user files: ``./FOLDER``, ``$ENV``, then ``package``.

    ``env`` holds ``os.pathsep``-separated folders; ``package`` is the installed
    package that ships the built-in files.
    """
    from importlib import resources

    folders = [Path.cwd() / folder]
    extra = os.environ.get(env, "")
    folders += [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    folders.append(Path(str(resources.files(package))))
    return folders


def write_npz(path, arrays, meta):
    """Write ``arrays`` and a JSON ``meta`` dict as one ``.npz`` file, atomically."""
    import io

    arrays = dict(arrays)
    text = json.dumps(to_jsonable(meta))
    arrays["meta"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def read_npz(path):
    """``(meta, arrays)`` of a file written by `write_npz`.

    Raises whatever reading raises (missing, truncated, not a ``.npz``, no
    metadata); callers turn that into their own error with a fix.
    """
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    return meta, arrays


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
