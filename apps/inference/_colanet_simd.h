/* The two loops of _colanet.layers, as portable C and, on x86-64 CPUs with AVX2 (checked at run time),
 * with 8-lane AVX2 intrinsics. Both versions do the same float32 operations in the same order (no FMA:
 * every product and sum rounded on its own), so they give the same bits. */
#include <stddef.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define COLANET_X86 1
#endif

/* thr[k] = tmb[k] - sum over j with u[j] != 0 of u[j] * wu[j * H + k], summed in j order in float32 */
static void colanet_thresholds_c(const float* u, Py_ssize_t U, const float* wu, Py_ssize_t H,
                                 const float* tmb, float* thr) {
    float acc[256];
    Py_ssize_t j, k;
    for (k = 0; k < H; k++) acc[k] = 0.0f;
    for (j = 0; j < U; j++) {
        float x = u[j];
        if (x != 0.0f) {
            const float* row = wu + j * H;
            for (k = 0; k < H; k++) acc[k] = acc[k] + x * row[k];
        }
    }
    for (k = 0; k < H; k++) thr[k] = tmb[k] - acc[k];
}

/* out = the sums of v0[k], v1[k] over the units k that fire (trow[k] + p * w[k] > thr[k]), in 8 lanes
 * (lane k % 8), the lanes then added in float64 in lane order; H a multiple of 8 */
static void colanet_layer2_c(const float* trow, float p, const float* w, const float* thr,
                             const float* v0, const float* v1, Py_ssize_t H, double* d0, double* d1) {
    float a0[8] = {0}, a1[8] = {0};
    Py_ssize_t k;
    int j;
    for (k = 0; k < H; k += 8) {
        for (j = 0; j < 8; j++) {
            float pre = trow[k + j] + p * w[k + j];
            int fired = pre > thr[k + j];
            a0[j] = a0[j] + (fired ? v0[k + j] : 0.0f);
            a1[j] = a1[j] + (fired ? v1[k + j] : 0.0f);
        }
    }
    double s0 = 0.0, s1 = 0.0;
    for (j = 0; j < 8; j++) { s0 += a0[j]; s1 += a1[j]; }
    *d0 = s0; *d1 = s1;
}

#ifdef COLANET_X86
__attribute__((target("avx2")))
static void colanet_thresholds_avx2(const float* u, Py_ssize_t U, const float* wu, Py_ssize_t H,
                                    const float* tmb, float* thr) {
    Py_ssize_t j, k = 0;
    /* 64 units at a time in eight registers (an array of accumulators would live in memory) */
    for (; k + 64 <= H; k += 64) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (j = 0; j < U; j++) {
            float x = u[j];
            if (x != 0.0f) {
                const float* row = wu + j * H + k;
                __m256 vx = _mm256_set1_ps(x);
                a0 = _mm256_add_ps(a0, _mm256_mul_ps(vx, _mm256_loadu_ps(row)));
                a1 = _mm256_add_ps(a1, _mm256_mul_ps(vx, _mm256_loadu_ps(row + 8)));
                a2 = _mm256_add_ps(a2, _mm256_mul_ps(vx, _mm256_loadu_ps(row + 16)));
                a3 = _mm256_add_ps(a3, _mm256_mul_ps(vx, _mm256_loadu_ps(row + 24)));
                a4 = _mm256_add_ps(a4, _mm256_mul_ps(vx, _mm256_loadu_ps(row + 32)));
                a5 = _mm256_add_ps(a5, _mm256_mul_ps(vx, _mm256_loadu_ps(row + 40)));
                a6 = _mm256_add_ps(a6, _mm256_mul_ps(vx, _mm256_loadu_ps(row + 48)));
                a7 = _mm256_add_ps(a7, _mm256_mul_ps(vx, _mm256_loadu_ps(row + 56)));
            }
        }
        const float* t = tmb + k;
        float* o = thr + k;
        _mm256_storeu_ps(o, _mm256_sub_ps(_mm256_loadu_ps(t), a0));
        _mm256_storeu_ps(o + 8, _mm256_sub_ps(_mm256_loadu_ps(t + 8), a1));
        _mm256_storeu_ps(o + 16, _mm256_sub_ps(_mm256_loadu_ps(t + 16), a2));
        _mm256_storeu_ps(o + 24, _mm256_sub_ps(_mm256_loadu_ps(t + 24), a3));
        _mm256_storeu_ps(o + 32, _mm256_sub_ps(_mm256_loadu_ps(t + 32), a4));
        _mm256_storeu_ps(o + 40, _mm256_sub_ps(_mm256_loadu_ps(t + 40), a5));
        _mm256_storeu_ps(o + 48, _mm256_sub_ps(_mm256_loadu_ps(t + 48), a6));
        _mm256_storeu_ps(o + 56, _mm256_sub_ps(_mm256_loadu_ps(t + 56), a7));
    }
    for (; k < H; k += 8) {
        __m256 a = _mm256_setzero_ps();
        for (j = 0; j < U; j++) {
            float x = u[j];
            if (x != 0.0f) a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_set1_ps(x), _mm256_loadu_ps(wu + j * H + k)));
        }
        _mm256_storeu_ps(thr + k, _mm256_sub_ps(_mm256_loadu_ps(tmb + k), a));
    }
}

__attribute__((target("avx2")))
static void colanet_layer2_avx2(const float* trow, float p, const float* w, const float* thr,
                                const float* v0, const float* v1, Py_ssize_t H, double* d0, double* d1) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), vp = _mm256_set1_ps(p);
    float a0[8], a1[8];
    Py_ssize_t k;
    int j;
    for (k = 0; k < H; k += 8) {
        __m256 pre = _mm256_add_ps(_mm256_loadu_ps(trow + k), _mm256_mul_ps(vp, _mm256_loadu_ps(w + k)));
        __m256 m = _mm256_cmp_ps(pre, _mm256_loadu_ps(thr + k), _CMP_GT_OQ);
        s0 = _mm256_add_ps(s0, _mm256_and_ps(m, _mm256_loadu_ps(v0 + k)));
        s1 = _mm256_add_ps(s1, _mm256_and_ps(m, _mm256_loadu_ps(v1 + k)));
    }
    _mm256_storeu_ps(a0, s0);
    _mm256_storeu_ps(a1, s1);
    double r0 = 0.0, r1 = 0.0;
    for (j = 0; j < 8; j++) { r0 += a0[j]; r1 += a1[j]; }
    *d0 = r0; *d1 = r1;
}

static int colanet_have_avx2(void) { return __builtin_cpu_supports("avx2"); }
#else
static void colanet_thresholds_avx2(const float* u, Py_ssize_t U, const float* wu, Py_ssize_t H,
                                    const float* tmb, float* thr) { colanet_thresholds_c(u, U, wu, H, tmb, thr); }
static void colanet_layer2_avx2(const float* trow, float p, const float* w, const float* thr,
                                const float* v0, const float* v1, Py_ssize_t H, double* d0, double* d1) {
    colanet_layer2_c(trow, p, w, thr, v0, v1, H, d0, d1);
}
static int colanet_have_avx2(void) { return 0; }
#endif
