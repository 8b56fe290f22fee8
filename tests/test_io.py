"""Atomic writes: permissions as open() gives them, and no half-written files."""

import json
import os
import stat

import pytest

from nengo_hybrid import io


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(
    "mask, expected", [(0o022, 0o644), (0o077, 0o600)], ids=["022", "077"]
)
def test_new_file_mode_follows_umask(tmp_path, umask, mask, expected):
    umask(mask)
    written = io.atomic_write_text(tmp_path / "result.json", "{}\n")
    with open(tmp_path / "by_open.json", "w") as fh:  # control: what open() does
        fh.write("{}\n")
    assert mode(written) == mode(tmp_path / "by_open.json") == expected


def test_existing_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "kept.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    io.atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert mode(path) == 0o640  # as open(path, "w") would leave it


def _fail_in(monkeypatch, name, exc, seen):
    """Make ``os.<name>`` raise once the temporary file holds the new data."""

    def fail(*args, **kwargs):
        temps = [p for p in seen["dir"].iterdir() if p.name.endswith(".tmp")]
        assert len(temps) == 1  # the temporary file was opened ...
        seen["temp"] = temps[0]
        raise exc

    monkeypatch.setattr(io.os, name, fail)


@pytest.mark.parametrize("name", ["fsync", "replace"])
@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_failure_after_temp_file_opened_keeps_old_file(
    tmp_path, monkeypatch, name, exc
):
    path = tmp_path / "f.json"
    io.atomic_write_json(path, {"a": 1})
    seen = {"dir": tmp_path}
    _fail_in(monkeypatch, name, exc, seen)
    with pytest.raises(type(exc)):
        io.atomic_write_json(path, {"a": 2, "padding": "x" * 10000})
    monkeypatch.undo()
    assert "temp" in seen  # ... before the failure (not a failure in json.dumps)
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temp file left


def test_failure_writing_new_file_leaves_nothing(tmp_path, monkeypatch):
    seen = {"dir": tmp_path}
    _fail_in(monkeypatch, "replace", OSError("no"), seen)
    with pytest.raises(OSError):
        io.atomic_write_bytes(tmp_path / "new.bin", b"data")
    assert "temp" in seen
    assert list(tmp_path.iterdir()) == []


def test_write_creates_parent_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "c.txt"
    io.atomic_write_text(path, "one")
    io.atomic_write_text(path, "two")
    assert path.read_text() == "two"
    assert [p.name for p in path.parent.iterdir()] == ["c.txt"]
