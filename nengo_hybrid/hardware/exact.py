"""Exact integer matrix products in floating point (shared by the emulators).

A binary floating-point format with a ``p``-bit significand represents every
integer of magnitude up to ``2**p`` exactly. For integer ``x`` and an integer
matrix ``w``, every product ``x_i * w[i, c]`` and every partial sum of any
subset of them, in any order, is bounded by ``bound_c = sum_i |w[i, c]| *
max|x_i|``. When ``bound_c <= 2**24`` (float32) or ``<= 2**53`` (float64) no
product and no addition rounds: the BLAS result is the exact integer sum,
whatever its blocking, threading, summation order or FMA use. Where that would
fail (a larger bound) the product is taken in int64 instead. A BLAS computing
in reduced precision (bf16/TF32 "fast" modes, not used by NumPy's float32 /
float64 ``matmul``) would break the argument.
"""

import numpy as np
import scipy.sparse

FLOAT32_EXACT = 2**24  # every integer of magnitude <= 2**24 is a float32
FLOAT64_EXACT = 2**53
# below this fraction of nonzero weights, a sparse product is faster than BLAS
SPARSE_DENSITY = 0.1


def exact_dtype(bound):
    """The cheapest dtype whose products are exact below ``bound`` (a float)."""
    worst = float(bound) * (1 + 1e-9)  # the bound itself is a float64 sum
    if worst < FLOAT32_EXACT:
        return np.float32
    if worst < FLOAT64_EXACT:
        return np.float64
    return np.int64


class ExactProduct:
    """``x @ w`` for integer ``x`` and a fixed integer matrix ``w``, exact, as int64.

    The dtype is chosen per call from the largest ``|x|`` (`exact_dtype`); a
    scipy CSR product (exact under the same bound) when under
    ``SPARSE_DENSITY`` of ``w`` is nonzero.

    Parameters
    ----------
    w : array_like of int, shape (n_in, n_out)
    """

    def __init__(self, w):
        self.w = np.asarray(w, dtype=np.int64)
        self.column_bound = np.abs(self.w).sum(axis=0).astype(np.float64)
        self.sparse = np.count_nonzero(self.w) < SPARSE_DENSITY * self.w.size
        self._cast = {}

    def __call__(self, x):
        x = np.asarray(x)
        x_max = float(np.abs(x).max(initial=0))
        dtype = exact_dtype(x_max * self.column_bound.max(initial=0.0))
        if dtype not in self._cast:
            w = self.w.astype(dtype)
            self._cast[dtype] = scipy.sparse.csc_matrix(w) if self.sparse else w
        w = self._cast[dtype]
        if self.sparse:  # (w.T @ x.T).T: a CSR product with a dense operand
            return np.asarray((w.T @ x.astype(dtype).T).T).astype(np.int64)
        return (x.astype(dtype) @ w).astype(np.int64)
