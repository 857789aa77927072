# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The per-request part of ``CpuProvider.score_indexed`` compiled (built by scripts/build_ext.py).

The numpy path costs ~15 array calls per request (gather, position term, spike, the n x H x 2 GEMM,
the bias, the clipping, the argsort), each a few thousand instructions of dispatch around a few
hundred of arithmetic. Here they are three calls around the two BLAS products. The result is
bit for bit the numpy path's (tests/inference/test_colanet_kernel.py compares them):

* layer 1: ``table[index] + positions x w1_position`` in float32 — one rounding for the product and
  one for the sum, as numpy's outer product and in-place add do (compiled with -ffp-contract=off, so
  the C compiler fuses nothing into an FMA);
* the spike: ``pre > thresholds`` (thresholds still come from numpy: the user part of layer 1 is a
  BLAS matrix-vector product whose summation order is the BLAS kernel's);
* layer 2 stays numpy's ``hidden @ W2`` (a BLAS GEMM: its summation order differs between BLAS kernels,
  e.g. OpenBLAS's SkylakeX and Zen ones, so only the BLAS call itself gives the same bits), then ``+ b2``;
* ``tanh`` stays numpy's (``np.tanh`` on the n x 2 block, its own SIMD kernel), then ``heads`` and a
  stable descending sort of the scores as ``np.argsort(-score, kind="stable")``.
"""

cimport numpy as cnp

from apps.inference import model as _model

cnp.import_array()

# the clipping bounds of apps.inference.model.heads, as the float32 values numpy compares with
cdef float SCORE_MAX = float(_model.SCORE_MAX)
cdef float CTR_EPS = float(_model.CTR_EPS)
cdef float CTR_MAX = float(_model.CTR_MAX)


cdef inline float* _f32(cnp.ndarray a, int ndim, Py_ssize_t d0, Py_ssize_t d1, str name) except NULL:
    """The data of a C-contiguous float32 array of this shape (``d0`` < 0: any length), or ValueError.
    Raw pointers rather than typed memoryviews: acquiring a memoryview costs ~5,000 instructions."""
    if (cnp.PyArray_TYPE(a) != cnp.NPY_FLOAT32 or cnp.PyArray_NDIM(a) != ndim
            or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or (d0 >= 0 and cnp.PyArray_DIM(a, 0) != d0) or (ndim == 2 and cnp.PyArray_DIM(a, 1) != d1)):
        raise ValueError(f"{name}: a C-contiguous float32 array of the expected shape is needed")
    return <float*>cnp.PyArray_DATA(a)


def spikes(cnp.ndarray table, list candidates, cnp.ndarray positions, cnp.ndarray w1_position,
           cnp.ndarray thresholds, cnp.ndarray hidden):
    """``hidden[i] = table[candidates[i]] + positions[i] * w1_position > thresholds`` as 1.0 / 0.0."""
    cdef Py_ssize_t n = len(candidates)
    cdef Py_ssize_t H = cnp.PyArray_DIM(table, 1) if cnp.PyArray_NDIM(table) == 2 else -1
    cdef Py_ssize_t rows = cnp.PyArray_DIM(table, 0)
    cdef float* t = _f32(table, 2, -1, H, "table")
    cdef float* pos = _f32(positions, 1, n, 0, "positions")
    cdef float* w = _f32(w1_position, 1, H, 0, "w1_position")
    cdef float* thr = _f32(thresholds, 1, H, 0, "thresholds")
    cdef float* out = _f32(hidden, 2, n, H, "hidden")
    cdef Py_ssize_t i, k, idx
    cdef float p
    cdef float* trow
    cdef float* orow
    for i in range(n):
        idx = candidates[i]
        if idx < 0 or idx >= rows:
            raise IndexError(f"index {idx} is out of bounds for a table of {rows} offers")
        p = pos[i]
        trow = t + idx * H
        orow = out + i * H
        for k in range(H):  # branch-free, so the C compiler vectorises it
            orow[k] = <float>(trow[k] + p * w[k] > thr[k])


def add_bias(cnp.ndarray out, cnp.ndarray b2):
    """``out += b2`` (n x 2), in float32 as numpy adds."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(out, 0)
    cdef float* o = _f32(out, 2, -1, 2, "out")
    cdef float* b = _f32(b2, 1, 2, 0, "b2")
    cdef Py_ssize_t i
    for i in range(n):
        o[2 * i] = o[2 * i] + b[0]
        o[2 * i + 1] = o[2 * i + 1] + b[1]


def ranked(cnp.ndarray out, Py_ssize_t n):
    """``heads`` of the tanh output, as Python floats, and the candidates best score first (stable):
    ``(order, scores, ctrs)``."""
    cdef float* o = _f32(out, 2, n, 2, "out")
    cdef float s, c
    cdef float sc[256]
    cdef int order[256]
    cdef Py_ssize_t i, j
    if n > 256:
        raise ValueError("ranked: at most 256 rows")
    scores = []
    ctrs = []
    for i in range(n):
        s = o[2 * i]
        if s < -SCORE_MAX:  # np.maximum(score, -SCORE_MAX) then np.minimum(score, SCORE_MAX)
            s = -SCORE_MAX
        if s > SCORE_MAX:
            s = SCORE_MAX
        c = o[2 * i + 1] + <float>1.0
        c = c * <float>0.5
        if c < CTR_EPS:
            c = CTR_EPS
        if c > CTR_MAX:
            c = CTR_MAX
        sc[i] = s
        scores.append(<double>s)
        ctrs.append(<double>c)
        # insertion sort, descending, ties in index order (a stable sort of -score)
        j = i
        while j > 0 and sc[order[j - 1]] < s:
            order[j] = order[j - 1]
            j -= 1
        order[j] = <int>i
    ranks = [order[i] for i in range(n)]
    return ranks, scores, ctrs
