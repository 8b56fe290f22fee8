"""Ctrl-C that is never lost.

Python raises `KeyboardInterrupt` wherever the main thread happens to be. If
that is inside a finalizer or a weakref callback (TensorFlow runs many during
training), Python prints "Exception ignored in ..." and goes on: one Ctrl-C
then does not stop a training run. `install` (the command line calls it)
records each SIGINT before raising, and `raise_if_interrupted`, called between
training batches, raises again from ordinary code, where it propagates.
"""

import signal

_pending = False


def _handler(signum, frame):
    global _pending
    _pending = True
    raise KeyboardInterrupt


def install():
    """Record every SIGINT (then raise `KeyboardInterrupt`, as Python's default)."""
    global _pending
    _pending = False
    signal.signal(signal.SIGINT, _handler)


def raise_if_interrupted():
    """Raise `KeyboardInterrupt` if a SIGINT arrived since `install`.

    A no-op without `install` (a library user's own SIGINT handling is untouched).
    """
    if _pending:
        raise KeyboardInterrupt
