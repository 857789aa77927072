# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""The per-request part of ``CpuProvider.score_indexed`` compiled (built by scripts/build_ext.py).

The numpy path costs ~15 array calls per request (the thresholds' BLAS matrix-vector product, gather,
position term, spike, the n x H x 2 GEMM, the bias, the clipping, the argsort), each a few thousand
instructions of dispatch around a few hundred of arithmetic. Here it is one call, ``rank``
(``layers``, numpy's float32 tanh loop, ``ranked``):

* the thresholds ``theta - b1 - user x W1[:139]``: the rows of the user's non-zero features summed in
  feature order in float32 (as a BLAS matrix-vector product, in its own order), then the subtraction;
* layer 1: ``table[index] + positions x w1_position`` in float32 — one rounding for the product and
  one for the sum, as numpy's outer product and in-place add do (compiled with -ffp-contract=off, so
  the C compiler fuses nothing into an FMA), and the spike ``pre > thresholds``;
* layer 2: the fired units' ``W2`` rows summed (eight float32 partial sums per head, added in
  float64), then ``+ b2`` in float32. The two loops are C in _colanet_simd.h, with AVX2 intrinsics on
  CPUs that have it (checked at import; the same operations in the same order, so the same bits);
* ``tanh`` stays numpy's (see ``layers``): its own float32 inner loop, the one ``np.tanh`` dispatches
  to, called on the n x 2 buffer without the ufunc machinery (same bits); then ``heads`` and a stable
  descending sort of the scores as ``np.argsort(-score, kind="stable")``.

BLAS's summation order is its own and differs between its CPU kernels (OpenBLAS's SkylakeX and Zen
sgemm do not give the same bits), so no code matches every BLAS bit for bit; this one is within a few
float32 ulps of the numpy path, well inside the replay corpus's tolerance (tests/inference/
test_colanet_kernel.py checks both, and that a unit at its exact threshold does not fire).
"""

cimport numpy as cnp
import numpy as np

from apps.inference import model as _model

cnp.import_array()
cnp.import_ufunc()

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


def ranked(cnp.ndarray out, Py_ssize_t n):
    """``heads`` of the tanh output, as Python floats, and the candidates best score first (stable):
    ``(order, scores, ctrs)``."""
    return _ranked(_f32(out, 2, n, 2, "out"), n)


cdef object _ranked(float* o, Py_ssize_t n):
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


cdef extern from "_colanet_simd.h":
    void colanet_thresholds_c(const float* u, Py_ssize_t U, const float* wu, Py_ssize_t H, const float* tmb,
                              float* thr) nogil
    void colanet_thresholds_avx2(const float* u, Py_ssize_t U, const float* wu, Py_ssize_t H, const float* tmb,
                                 float* thr) nogil
    void colanet_layer2_c(const float* trow, float p, const float* w, const float* thr, const float* v0,
                          const float* v1, Py_ssize_t H, double* d0, double* d1) nogil
    void colanet_layer2_avx2(const float* trow, float p, const float* w, const float* thr, const float* v0,
                             const float* v1, Py_ssize_t H, double* d0, double* d1) nogil
    int colanet_have_avx2() nogil

# AVX2 when this CPU has it (the two versions give the same bits); ``use_avx2(False)`` for the tests
cdef bint _avx2 = colanet_have_avx2()


def use_avx2(bint on):
    """Use the AVX2 loops (only if the CPU has them); returns whether they are in use."""
    global _avx2
    _avx2 = on and colanet_have_avx2()
    return _avx2


def layers(cnp.ndarray table, list candidates, cnp.ndarray positions, cnp.ndarray w1_position,
           cnp.ndarray user_row, cnp.ndarray w1_user, cnp.ndarray theta_minus_b1, cnp.ndarray w2t,
           cnp.ndarray b2, cnp.ndarray out):
    """The per-request forward up to ``tanh`` in one call, no BLAS: ``out`` (n x 2) = layer 2 + ``b2``.

    * thresholds ``theta - b1 - user_row[:U] @ W1[:U]`` (``w1_user`` U x H): the user's non-zero
      features' rows summed in feature order in float32, then the float32 subtraction;
    * per candidate the spike ``table[idx] + p * w1_position > threshold`` (float32, as numpy rounds it),
      and layer 2 as sums of the fired units' ``W2`` rows (``w2t``: 2 x Hp, float32, zero-padded to a
      multiple of 8), eight float32 partial sums per head added in float64;
    * ``+ b2`` in float32. ``tanh`` stays numpy's (its float32 SIMD kernel is within 1 ulp of the true
      value, not correctly rounded: near a CTR of 0.1 % one ulp of tanh is 3e-5 of the CTR, so another
      tanh would move the CTR by more than the replay corpus allows); then ``ranked``."""
    _layers(table, candidates, positions, w1_position, user_row, w1_user, theta_minus_b1, w2t, b2, out)


cdef int _layers(cnp.ndarray table, list candidates, cnp.ndarray positions, cnp.ndarray w1_position,
                 cnp.ndarray user_row, cnp.ndarray w1_user, cnp.ndarray theta_minus_b1, cnp.ndarray w2t,
                 cnp.ndarray b2, cnp.ndarray out) except -1:
    cdef Py_ssize_t n = len(candidates)
    cdef Py_ssize_t H = cnp.PyArray_DIM(table, 1) if cnp.PyArray_NDIM(table) == 2 else -1
    cdef Py_ssize_t rows = cnp.PyArray_DIM(table, 0)
    cdef Py_ssize_t U = cnp.PyArray_DIM(w1_user, 0) if cnp.PyArray_NDIM(w1_user) == 2 else -1
    cdef Py_ssize_t Hp = (H + 7) & ~7
    if H <= 0 or H > 256:
        raise ValueError("layers: 1 to 256 hidden units")
    cdef float* t = _f32(table, 2, -1, H, "table")
    cdef float* pos = _f32(positions, 1, n, 0, "positions")
    cdef float* w = _f32(w1_position, 1, H, 0, "w1_position")
    cdef float* wu = _f32(w1_user, 2, -1, H, "w1_user")
    cdef float* u = _f32(user_row, 1, -1, 0, "user_row")
    cdef float* tmb = _f32(theta_minus_b1, 1, H, 0, "theta_minus_b1")
    cdef float* v = _f32(w2t, 2, 2, Hp, "w2t")
    cdef float* b = _f32(b2, 1, 2, 0, "b2")
    cdef float* o = _f32(out, 2, n, 2, "out")
    if cnp.PyArray_DIM(user_row, 0) < U:
        raise ValueError("user_row: shorter than w1_user")
    cdef float thr[256]
    cdef float tpad[256]
    cdef float wpad[256]
    cdef Py_ssize_t i, k, idx
    cdef double d0, d1
    cdef float* trow
    cdef bint fast = _avx2 and H == Hp
    if fast:
        colanet_thresholds_avx2(u, U, wu, H, tmb, thr)
    else:
        colanet_thresholds_c(u, U, wu, H, tmb, thr)
        for k in range(H, Hp):  # padding units never fire
            thr[k] = float("inf")
            tpad[k] = 0
            wpad[k] = 0
        for k in range(H):
            wpad[k] = w[k]
    for i in range(n):
        idx = candidates[i]
        if idx < 0 or idx >= rows:
            raise IndexError(f"index {idx} is out of bounds for a table of {rows} offers")
        trow = t + idx * H
        if fast:
            colanet_layer2_avx2(trow, pos[i], w, thr, v, v + Hp, Hp, &d0, &d1)
        else:
            if H != Hp:
                for k in range(H):
                    tpad[k] = trow[k]
                trow = tpad
            colanet_layer2_c(trow, pos[i], wpad, thr, v, v + Hp, Hp, &d0, &d1)
        o[2 * i] = <float>d0 + b[0]
        o[2 * i + 1] = <float>d1 + b[1]
    return 0


# numpy's own float32 tanh inner loop (the SIMD one np.tanh dispatches to on this CPU: the first
# 'f->f' loop of the ufunc, the one its type resolution picks), called on the kernel's buffer directly
cdef cnp.PyUFuncGenericFunction _tanh_loop = NULL
cdef void* _tanh_data = NULL


cdef int _find_tanh() except -1:
    global _tanh_loop, _tanh_data
    cdef cnp.ufunc uf = np.tanh
    cdef int i
    for i in range(uf.ntypes):
        if uf.types[2 * i] == cnp.NPY_FLOAT32 and uf.types[2 * i + 1] == cnp.NPY_FLOAT32:
            _tanh_loop = uf.functions[i]
            _tanh_data = uf.data[i]
            return 0
    raise ImportError("numpy.tanh has no float32 loop")


_find_tanh()


cdef inline void _tanh32(float* x, Py_ssize_t m) noexcept:
    cdef char* args[2]
    cdef cnp.npy_intp dims[1]
    cdef cnp.npy_intp steps[2]
    args[0] = <char*>x
    args[1] = <char*>x
    dims[0] = m
    steps[0] = sizeof(float)
    steps[1] = sizeof(float)
    _tanh_loop(args, dims, steps, _tanh_data)


def tanh32(cnp.ndarray x):
    """``np.tanh(x, out=x)`` for a C-contiguous float32 vector through the loop ``rank`` calls (tests)."""
    _tanh32(_f32(x, 1, -1, 0, "x"), cnp.PyArray_DIM(x, 0))


def rank(cnp.ndarray table, list candidates, cnp.ndarray positions, cnp.ndarray w1_position,
         cnp.ndarray user_row, cnp.ndarray w1_user, cnp.ndarray theta_minus_b1, cnp.ndarray w2t,
         cnp.ndarray b2):
    """``layers`` into a buffer of its own, numpy's float32 tanh loop on it and ``ranked``, in one
    call: ``(order, scores, ctrs)`` (no output array, no ufunc dispatch)."""
    cdef Py_ssize_t n = len(candidates)
    if n < 1 or n > 256:
        raise ValueError("rank: 1 to 256 candidates")
    cdef cnp.npy_intp dims[2]
    dims[0] = n
    dims[1] = 2
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT32, 0)
    _layers(table, candidates, positions, w1_position, user_row, w1_user, theta_minus_b1, w2t, b2, out)
    cdef float* o = <float*>cnp.PyArray_DATA(out)
    _tanh32(o, 2 * n)
    return _ranked(o, n)
