/*
 * kernels: chunk arithmetic (see kernels.h), on one of two paths.
 *
 * Fused (D <= 8, tanh or ReLU, AVX-512 builds; the shapes of width and
 * depth studies). Per block of up to 128 samples and a chunk of cm
 * particles, in registers:
 *   forward   a = w_m . x_j + b_m, s = sigma(a), drift_j += s u_m
 *   backward  a again, s, q = sigma'(a) (u_m . p_j); gu_m += s p_j,
 *             gw_m += q x_j, gb_m += q; then dP_j += sum_m q w_m
 * that is 7D multiply-adds and two activations per sample and particle
 * (12 D nominal flops). At small D the activations are the cost: tanh
 * takes 25 vector operations for 8 values. On a core with one 512-bit
 * multiply-add a cycle, where multiplies, the table permutes and a share
 * of the division take that pipe too, that is about 17 of its slots, so
 * D = 4 needs at least 64 slots per 8 pairs, 2.2 ns a pair at 3.6 GHz;
 * the kernels take about 3.1 ns (src/README.md, Performance). In single
 * precision a vector holds 16 samples and tanh needs no table: 1.6 ns.
 *
 * DGEMM, or SGEMM in single precision (any other D or activation). Per block of r <= kernels_row_block(D)
 * samples:
 *   forward   A = X W^T + b, S = sigma(A), drift += S U            4 r cm D flops
 *   backward  A = X W^T + b (recomputed), Q = P U^T                 4 r cm D
 *             per row: S = sigma(A), Q .*= sigma'(A), gb += Q       (one pass)
 *             dP += Q W, gu += S^T P, gw += Q^T X                   6 r cm D
 * The r x cm blocks A/S and Q and one row of sigma' are the workspace.
 *
 * This file is compiled with FMA contraction (-ffp-contract=fast): the
 * activations' polynomials are chains of FMAs.
 */
#include "kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "blas.h"
#include "config.h"
#include "particles.h"

/* Compiled once per kernel path (kernels.h), and each time twice: in double
 * precision and, with MF_REAL_FLOAT, in single (the mixed-precision
 * kernels, kernels_*_f32). `real` is the precision of the build. The
 * generic double build defines MF_KERNEL_COMMON and names itself here. */
#ifndef MF_KERNEL_PATH
#define MF_KERNEL_PATH generic
#ifndef MF_REAL_FLOAT
#define MF_KERNEL_COMMON
#endif
#endif
#define STRING_(x) #x
#define STRING(x) STRING_(x)

#ifdef MF_REAL_FLOAT
typedef float real;
typedef int32_t ireal; /* an integer as wide as real */
typedef uint32_t ureal;
#define GEMM cblas_sgemm
#else
typedef double real;
typedef int64_t ireal;
typedef uint64_t ureal;
#define GEMM cblas_dgemm
#endif

#ifdef MF_KERNEL_COMMON
/* Measured (README, Performance): at D = 64 a 128-row block is 5% over the
 * limit, and 120 rows made the kernels 15% faster on AVX-512 cores (64 to
 * 73% of the DGEMM peak); AVX2 cores, without such kernels, ran as before. */
int64_t kernels_row_block(int dim)
{
    const int64_t fit = 1000000 / ((int64_t)MF_CHUNK * dim) / 8 * 8;
    return fit < MF_ROW_BLOCK && fit >= 64 ? fit : MF_ROW_BLOCK;
}
#endif

/*
 * Activations are evaluated in branch-free loops that GCC vectorizes: tanh
 * (the default, and the cost that matters at small D: two evaluations per
 * sample, particle and layer) by tanh_fast below; exp and log1p through
 * glibc's vector math library (libmvec). math.h declares the libmvec
 * variants only under -ffast-math, which mfres avoids (it breaks isfinite
 * and reorders sums), so they are declared here (GCC on x86-64; other
 * compilers call libm). This file is compiled with
 * -fno-trapping-math so that GCC may evaluate both sides of a select.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
__attribute__((simd("notinbranch"))) double exp(double);
__attribute__((simd("notinbranch"))) double log1p(double);
#endif

/* Vectors of LANES reals, GCC's vector extensions: the width of the
 * build's registers (AVX-512, AVX or SSE), since GCC splits wider vectors
 * poorly. */
#if defined(__AVX512F__)
#define VECTOR_BYTES 64
#elif defined(__AVX__)
#define VECTOR_BYTES 32
#else
#define VECTOR_BYTES 16
#endif
#ifdef MF_REAL_FLOAT
#define LANES (VECTOR_BYTES / 4)
#else
#define LANES (VECTOR_BYTES / 8)
#endif
typedef real vr __attribute__((vector_size(VECTOR_BYTES)));
typedef ireal vi __attribute__((vector_size(VECTOR_BYTES)));
typedef ureal vu __attribute__((vector_size(VECTOR_BYTES)));

static inline vr load(const real *p)
{
    vr v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store(real *p, vr v) { memcpy(p, &v, sizeof v); }

static inline vr splat(real x) { return (vr){0} + x; }

/* The lanes' sum, pairwise in a fixed order (for 16 floats the halves'
 * sums, then theirs: the intrinsic's fixed tree, which GCC compiles to 8
 * vector operations where the loop took 30). */
static inline real lanes_sum(vr v)
{
#if defined(MF_REAL_FLOAT) && VECTOR_BYTES == 64
    return _mm512_reduce_add_ps((__m512)v);
#endif
    for (int w = LANES / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++)
            v[i] = v[2 * i] + v[2 * i + 1];
    return v[0];
}

/* The x86 min and max of the build's vectors: they return their second
 * operand if either is NaN. */
#if defined(MF_REAL_FLOAT) && VECTOR_BYTES == 64
#define VEC_MIN(a, b) (vr) _mm512_min_ps((__m512)(a), (__m512)(b))
#define VEC_MAX(a, b) (vr) _mm512_max_ps((__m512)(a), (__m512)(b))
#elif defined(MF_REAL_FLOAT) && VECTOR_BYTES == 32
#define VEC_MIN(a, b) (vr) _mm256_min_ps((__m256)(a), (__m256)(b))
#define VEC_MAX(a, b) (vr) _mm256_max_ps((__m256)(a), (__m256)(b))
#elif defined(MF_REAL_FLOAT) && defined(__SSE2__)
#define VEC_MIN(a, b) (vr) _mm_min_ps((__m128)(a), (__m128)(b))
#define VEC_MAX(a, b) (vr) _mm_max_ps((__m128)(a), (__m128)(b))
#elif VECTOR_BYTES == 64
#define VEC_MIN(a, b) (vr) _mm512_min_pd((__m512d)(a), (__m512d)(b))
#define VEC_MAX(a, b) (vr) _mm512_max_pd((__m512d)(a), (__m512d)(b))
#elif VECTOR_BYTES == 32
#define VEC_MIN(a, b) (vr) _mm256_min_pd((__m256d)(a), (__m256d)(b))
#define VEC_MAX(a, b) (vr) _mm256_max_pd((__m256d)(a), (__m256d)(b))
#elif defined(__SSE2__)
#define VEC_MIN(a, b) (vr) _mm_min_pd((__m128d)(a), (__m128d)(b))
#define VEC_MAX(a, b) (vr) _mm_max_pd((__m128d)(a), (__m128d)(b))
#endif

/* min(max(x, -c), c), NaN staying NaN. */
static inline vr clamp(vr x, real c)
{
#ifdef VEC_MIN
    return VEC_MAX(splat(-c), VEC_MIN(splat(c), x));
#else
    const vi lo = x < -c, hi = x > c;
    return (vr)(((vi)x & ~(lo | hi)) | ((vi)splat(-c) & lo) | ((vi)splat(c) & hi));
#endif
}

/* tanh, within 8e-16 relative of libm's (tested), as E / (E + 2) with
 * E = e^(2z) - 1 and z = x clamped to [-20, 20] (tanh = +-1 in doubles
 * beyond), which at most doubles E's relative error. E without
 * cancellation: 2z = k ln2 / S + r with k = round(2 S z / ln2) = S h + j,
 * j in [-S/2, S/2), |r| <= ln2 / (2 S), and
 *   E = 2^h (T (e^r - 1) + (T - 1)) + (2^h - 1),  T = 2^(j/S),
 * 2^h built in the exponent bits. k ln2/S takes one rounding: ln2 as a
 * double is off by 2.3e-17, times |k| / S <= 58. NaN stays NaN; tanh(-0)
 * is +0.
 *   - AVX-512 (S = 16): T and T - 1 from 16-entry tables, one register
 *     permute each; e^r - 1 its Taylor polynomial to degree 7 (truncation
 *     below 6e-17 relative) in Estrin's scheme. 25 vector operations for 8
 *     values, 12 of them multiply-adds, and a division.
 *   - Narrower vectors, which have no such permute (S = 1): T = 1 and
 *     e^r - 1 = r + r^2/2 + r^3 C(r), C the degree-8 Chebyshev fit of
 *     (e^r - 1 - r - r^2/2) / r^3 on |r| <= ln2/2 (mpmath.chebyfit,
 *     50 digits; relative error of e^r - 1 below 1e-16). */
/* In single precision (S = 1), z = x clamped to [-10, 10] (tanh = +-1 in
 * floats beyond), r = 2z - k ln2 in two multiply-adds with ln2 split in
 * two (Cody and Waite), e^r - 1 its Taylor polynomial to degree 7
 * (truncation below 1.3e-8 relative) and 2^k in the exponent bits: within
 * 4e-7 relative of libm's tanh (tested), 16 values in about the time the
 * double code takes for 6 (mfres bench's probe: 0.26 against 0.65 ns a
 * value). */
#ifdef MF_REAL_FLOAT
#define TANH_CLAMP 10.0f
#define MANTISSA_BITS 23
#define ONE_BITS 0x3f800000u
#define SHIFTER 0x1.8p23f
#else
#define TANH_CLAMP 20.0
#define MANTISSA_BITS 52
#define ONE_BITS 0x3ff0000000000000u
#define SHIFTER 0x1.8p52
#endif

#if defined(MF_REAL_FLOAT)
#define TANH_TABLE 1

/* e^r - 1 for |r| <= ln2/2 */
static inline vr expm1_small(vr r)
{
    const vr r2 = r * r, r4 = r2 * r2;
    const vr p23 = 0.5f + r * 0.16666667f;
    const vr p45 = 0.041666668f + r * 0.008333334f;
    const vr p67 = 0.0013888889f + r * 0.0001984127f;
    return r2 * ((p23 + r2 * p45) + r4 * p67) + r;
}
#elif VECTOR_BYTES == 64
#define TANH_TABLE 16

/* 2^(j/16) and 2^(j/16) - 1 for j = -8 .. 7, each correctly rounded (Python's
 * decimal at 60 digits). */
static const double exp2_16[16] = {
    0x1.6a09e667f3bcdp-1, 0x1.7a11473eb0187p-1, 0x1.8ace5422aa0dbp-1, 0x1.9c49182a3f090p-1,
    0x1.ae89f995ad3adp-1, 0x1.c199bdd85529cp-1, 0x1.d5818dcfba487p-1, 0x1.ea4afa2a490dap-1,
    0x1.0000000000000p+0, 0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0, 0x1.2387a6e756238p+0,
    0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0, 0x1.4bfdad5362a27p+0, 0x1.5ab07dd485429p+0};
static const double exp2_16m1[16] = {
    -0x1.2bec333018867p-2, -0x1.0bdd71829fcf2p-2, -0x1.d4c6af7557c93p-3, -0x1.8edb9f5703dc0p-3,
    -0x1.45d819a94b14bp-3, -0x1.f332113d56b1fp-4, -0x1.53f391822dbc7p-4, -0x1.5b505d5b6f268p-5,
    0.0,                   0x1.6ab0d9f3121ecp-5,  0x1.72b83c7d517aep-4,  0x1.1c3d373ab11c3p-3,
    0x1.837f0518db8a9p-3,  0x1.ef5326091a112p-3,  0x1.2ff6b54d8a89cp-2,  0x1.6ac1f752150a5p-2};

/* e^r - 1 for |r| <= ln2/32 */
static inline vr expm1_small(vr r)
{
    const vr r2 = r * r, r4 = r2 * r2;
    const vr p23 = 0.5 + r * 1.6666666666666666e-01;
    const vr p45 = 4.1666666666666664e-02 + r * 8.3333333333333332e-03;
    const vr p67 = 1.3888888888888889e-03 + r * 1.9841269841269841e-04;
    return r2 * ((p23 + r2 * p45) + r4 * p67) + r;
}
#else
#define TANH_TABLE 1

/* e^r - 1 for |r| <= ln2/2 */
static inline vr expm1_small(vr r)
{
    const vr r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const vr c34 = 1.6666666666666666e-01 + r * 4.1666666666651364e-02;
    const vr c56 = 8.3333333333321571e-03 + r * 1.3888888905871347e-03;
    const vr c78 = 1.9841269854330769e-04 + r * 2.4801536409064087e-05;
    const vr c910 = 2.7557280082684685e-06 + r * 2.7613795554519861e-07;
    const vr c = (c34 + r2 * c56) + r4 * (c78 + r2 * c910) + r8 * 2.5095545981700220e-08;
    return r + r2 * (0.5 + r * c);
}
#endif

/* The reduction: r, and t holding k (see above). */
static inline vr tanh_reduce(vr x, vr *t)
{
    /* adding the shifter rounds to an integer, plus S/2 */
    const real shifter = SHIFTER + TANH_TABLE / 2;
    const vr z = clamp(x, TANH_CLAMP);
    *t = z * (real)(2.0 * TANH_TABLE / 0.69314718055994530942) + shifter;
#ifdef MF_REAL_FLOAT
    const vr k = *t - shifter;
    return k * -0x1.7f7d1cp-20f + (k * -0x1.62e4p-1f + (z + z));
#else
    return (*t - shifter) * (-0.69314718055994530942 / TANH_TABLE) + (z + z);
#endif
}

static inline vr tanh_finish(vr r, vr t)
{
    const vr em1 = expm1_small(r);
    /* t's low bits hold k + S/2 (the shifter's own shift out): for S = 16
     * its low 4 bits j + 8, the next 12 h modulo 2^12 */
    const int shift = TANH_TABLE == 16 ? 4 : 0;
    const vr pow2 = (vr)((((vu)t >> shift) << MANTISSA_BITS) + ONE_BITS);
#if TANH_TABLE == 16
    const __m512i j8 = (__m512i)t; /* the permute reads the low 4 bits */
    const vr T = (vr)_mm512_permutex2var_pd((__m512d)load(exp2_16), j8,
                                            (__m512d)load(exp2_16 + 8));
    const vr Tm1 = (vr)_mm512_permutex2var_pd((__m512d)load(exp2_16m1), j8,
                                              (__m512d)load(exp2_16m1 + 8));
    const vr E = pow2 * (T * em1 + Tm1) + (pow2 - 1);
#else
    const vr E = pow2 * em1 + (pow2 - 1);
#endif
    return E / (E + 2);
}

static inline vr tanhv(vr x)
{
    vr t;
    const vr r = tanh_reduce(x, &t);
    return tanh_finish(r, t);
}

/* tanh of n values; s may be x. In two passes over blocks of TANH_BLOCK
 * values, the reduction and then the rest: with 256-bit vectors one pass
 * ran 10% slower (with 512-bit ones, as fast). */
enum { TANH_BLOCK = 256 };

static void tanh_fast(int64_t n, const real *x, real *s)
{
    real rb[TANH_BLOCK], tb[TANH_BLOCK];
    for (int64_t i0 = 0; i0 < n; i0 += TANH_BLOCK) {
        const int64_t m = n - i0 < TANH_BLOCK ? n - i0 : TANH_BLOCK;
        const int64_t whole = m / LANES * LANES;
        for (int64_t i = 0; i < whole; i += LANES) {
            vr t;
            store(rb + i, tanh_reduce(load(x + i0 + i), &t));
            store(tb + i, t);
        }
        for (int64_t i = 0; i < whole; i += LANES)
            store(s + i0 + i, tanh_finish(load(rb + i), load(tb + i)));
        if (whole < m) {
            real tail[LANES] = {0};
            memcpy(tail, x + i0 + whole, (size_t)(m - whole) * sizeof *x);
            const vr v = tanhv(load(tail));
            memcpy(s + i0 + whole, &v, (size_t)(m - whole) * sizeof *s);
        }
    }
}

static void activate(int activation, int64_t n, const real *a, real *s, real *ds)
{
    switch (activation) {
    case MF_ACT_TANH:
        tanh_fast(n, a, s);
        if (ds)
            for (int64_t i = 0; i < n; i++)
                ds[i] = 1 - s[i] * s[i];
        break;
    case MF_ACT_RELU:
        if (ds)
            for (int64_t i = 0; i < n; i++)
                ds[i] = a[i] > 0 ? (real)1 : 0;
        for (int64_t i = 0; i < n; i++)
            s[i] = a[i] > 0 ? a[i] : 0;
        break;
    case MF_ACT_SIGMOID:
        /* 1 / (1 + e^-x) from e^-|x| <= 1: no overflow for either sign. */
        for (int64_t i = 0; i < n; i++) {
            real e = exp(-fabs(a[i]));
            s[i] = a[i] >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        }
        if (ds)
            for (int64_t i = 0; i < n; i++)
                ds[i] = s[i] * (1 - s[i]);
        break;
    case MF_ACT_SOFTPLUS:
        /* log(1 + e^x) = max(x, 0) + log1p(e^-|x|); the derivative is the
         * logistic. The derivative comes first: s may overwrite a. */
        if (ds)
            for (int64_t i = 0; i < n; i++) {
                real e = exp(-fabs(a[i]));
                ds[i] = a[i] >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
            }
        for (int64_t i = 0; i < n; i++)
            s[i] = (a[i] > 0 ? a[i] : 0.0) + log1p(exp(-fabs(a[i])));
        break;
    }
}

/* A (r x cm) = X W^T + bias, row-major. A starts as the bias rows and DGEMM
 * accumulates (beta = 1): no separate zeroing pass and no bias pass. */
static void preactivation(int64_t r, int dim, const real *X, int64_t cm, const real *W,
                          const real *bias, real *A)
{
    for (int64_t j = 0; j < r; j++)
        memcpy(A + j * cm, bias, (size_t)cm * sizeof *A);
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)cm, dim, 1.0, X, dim, W,
                dim, 1.0, A, (int)cm);
}

static void gemm_forward(int activation, int64_t n, int dim, const real *X, int64_t cm,
                     const real *U, const real *W, const real *bias, real *drift,
                     real *work)
{
    real *S = work;
    const int64_t rows = kernels_row_block(dim);
    for (int64_t j0 = 0; j0 < n; j0 += rows) {
        int64_t r = n - j0 < rows ? n - j0 : rows;
        preactivation(r, dim, X + j0 * dim, cm, W, bias, S);
        activate(activation, r * cm, S, S, NULL);
        GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, dim, (int)cm, 1.0, S,
                    (int)cm, U, dim, 1.0, drift + j0 * dim, dim);
    }
}

static void gemm_backward(int activation, int64_t n, int dim, const real *X, const real *P,
                      int64_t cm, const real *U, const real *W, const real *bias,
                      real *dP, real *gu, real *gw, real *gb, real *work)
{
    real *S = work;
    real *Q = S + MF_ROW_BLOCK * cm;
    real *dS = Q + MF_ROW_BLOCK * cm; /* one row */
    /* Every product accumulates (beta = 1) into memory zeroed here: OpenBLAS's
     * own beta = 0 pass is slower than memset. */
    memset(gb, 0, (size_t)cm * sizeof *gb);
    memset(gu, 0, (size_t)(cm * dim) * sizeof *gu);
    memset(gw, 0, (size_t)(cm * dim) * sizeof *gw);
    const int64_t rows = kernels_row_block(dim);
    for (int64_t j0 = 0; j0 < n; j0 += rows) {
        int64_t r = n - j0 < rows ? n - j0 : rows;
        const real *Xb = X + j0 * dim, *Pb = P + j0 * dim;
        preactivation(r, dim, Xb, cm, W, bias, S);
        memset(Q, 0, (size_t)(r * cm) * sizeof *Q);
        GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)cm, dim, 1.0, Pb, dim,
                    U, dim, 1.0, Q, (int)cm);
        /* One pass per row while it is in L1: S = sigma(A), Q = sigma'(A) .* (P U^T),
         * gb += Q. */
        for (int64_t j = 0; j < r; j++) {
            real *Sj = S + j * cm, *Qj = Q + j * cm;
            activate(activation, cm, Sj, Sj, dS);
            for (int64_t m = 0; m < cm; m++) {
                Qj[m] *= dS[m];
                gb[m] += Qj[m];
            }
        }
        if (dP)
            GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, dim, (int)cm, 1.0, Q,
                        (int)cm, W, dim, 1.0, dP + j0 * dim, dim);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cm, dim, (int)r, 1.0, S,
                    (int)cm, Pb, dim, 1.0, gu, dim);
        GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cm, dim, (int)r, 1.0, Q,
                    (int)cm, Xb, dim, 1.0, gw, dim);
    }
}

/* ---- Fused kernels: AVX-512 builds, D <= SMALL_DIM, tanh or ReLU ---------
 * Vectorised over samples, LANES to a vector; every rank runs the same code
 * on a chunk, so the chunk's sums are the same bits on any rank. Samples
 * come transposed (X[d n + j]) and padded with zeros to a multiple of PAD;
 * the padding's terms are discarded (forward) or exactly zero (p = 0 in the
 * backward). The work arrays lie SKEW values apart beyond their size: a
 * multiple of 4 KiB apart, a load from one waits for a store to another
 * (4K aliasing), and the backward ran up to half as fast. */
enum { SMALL_DIM = 8, PAD = 4 * LANES, SKEW = 24 };

/* Vectors of samples whose D sums (and, in the forward, D states) a block
 * keeps in registers: 2 D V of them, at most 16. */
enum { VMAX = 4 };
static inline int sample_vectors(int D) { return D <= 2 ? VMAX : D <= 4 ? 2 : 1; }

static inline __attribute__((always_inline)) vr activatev(int act, vr a, vr *ds)
{
    if (act == MF_ACT_TANH) {
        const vr s = tanhv(a);
        *ds = 1 - s * s;
        return s;
    }
    const vi on = a > 0; /* ReLU; NaN gives 0, as kernels_activate does */
    *ds = (vr)(on & (vi)splat(1.0));
    return (vr)(on & (vi)a);
}

/* FT (D x n) = sum_m u_m sigma(w_m . x_j + b_m): V vectors of samples at a
 * time (sample_vectors), their states and sums in registers, the particles
 * streaming by as broadcast scalars. */
static inline __attribute__((always_inline)) void fused_forward(int act, int D, int64_t n,
                                                                const real *XT, int64_t cm,
                                                                const real *U, const real *W,
                                                                const real *bias, real *FT)
{
    const int V = sample_vectors(D);
    for (int64_t j = 0; j < n; j += V * LANES) {
        vr x[SMALL_DIM][VMAX], acc[SMALL_DIM][VMAX];
        for (int d = 0; d < D; d++)
            for (int v = 0; v < V; v++) {
                x[d][v] = load(XT + d * n + j + v * LANES);
                acc[d][v] = (vr){0};
            }
        for (int64_t m = 0; m < cm; m++) {
            const real *w = W + m * D, *u = U + m * D;
            for (int v = 0; v < V; v++) {
                vr a = bias[m] + w[0] * x[0][v], ds;
                for (int d = 1; d < D; d++)
                    a += w[d] * x[d][v];
                const vr s = activatev(act, a, &ds);
                for (int d = 0; d < D; d++)
                    acc[d][v] += u[d] * s;
            }
        }
        for (int d = 0; d < D; d++)
            for (int v = 0; v < V; v++)
                store(FT + d * n + j + v * LANES, acc[d][v]);
    }
}

/* The backward pass; gu, gw, gb accumulate. Particle by particle, a vector
 * of samples at a time: sigma, q = sigma'(a) (u . p) into row m of Q
 * (cm x n, in L2), and the particle's 2D + 1 sums over samples in
 * registers, reduced across lanes at the end (lanes_sum). Then, if dPT, the
 * sums over particles dPT = Q^T W, a block of samples' sums in registers.
 * Iterations over samples depend on each other only through the sums, so
 * the core overlaps their long activation chains. */
static inline __attribute__((always_inline)) void
fused_backward(int act, int D, int64_t n, const real *XT, const real *PT, int64_t cm,
               const real *U, const real *W, const real *bias, real *dPT, real *gu,
               real *gw, real *gb, real *Q)
{
    for (int64_t m = 0; m < cm; m++) {
        const real *w = W + m * D, *u = U + m * D;
        real *q = Q + m * n;
        vr su[SMALL_DIM], sw[SMALL_DIM], sb = {0};
        for (int d = 0; d < D; d++)
            su[d] = sw[d] = (vr){0};
        for (int64_t j = 0; j < n; j += LANES) {
            vr x[SMALL_DIM], p[SMALL_DIM];
            for (int d = 0; d < D; d++) {
                x[d] = load(XT + d * n + j);
                p[d] = load(PT + d * n + j);
            }
            vr a = bias[m] + w[0] * x[0], up = u[0] * p[0], ds;
            for (int d = 1; d < D; d++) {
                a += w[d] * x[d];
                up += u[d] * p[d];
            }
            const vr sj = activatev(act, a, &ds), qj = ds * up;
            store(q + j, qj);
            for (int d = 0; d < D; d++) {
                su[d] += sj * p[d];
                sw[d] += qj * x[d];
            }
            sb += qj;
        }
        for (int d = 0; d < D; d++) {
            gu[m * D + d] += lanes_sum(su[d]);
            gw[m * D + d] += lanes_sum(sw[d]);
        }
        gb[m] += lanes_sum(sb);
    }
    if (!dPT)
        return;
    const int V = sample_vectors(D);
    for (int64_t j = 0; j < n; j += V * LANES) {
        vr acc[SMALL_DIM][VMAX];
        for (int d = 0; d < D; d++)
            for (int v = 0; v < V; v++)
                acc[d][v] = (vr){0};
        for (int64_t m = 0; m < cm; m++)
            for (int v = 0; v < V; v++) {
                const vr qv = load(Q + m * n + j + v * LANES);
                for (int d = 0; d < D; d++)
                    acc[d][v] += W[m * D + d] * qv;
            }
        for (int d = 0; d < D; d++)
            for (int v = 0; v < V; v++)
                store(dPT + d * n + j + v * LANES, acc[d][v]);
    }
}

/* One copy of each fused kernel per D <= SMALL_DIM and activation, so that
 * every loop over d unrolls and its vectors live in registers. */
#define SMALL_CASE(d, call)                                                                   \
    case d:                                                                                   \
        if (act == MF_ACT_TANH)                                                               \
            call(MF_ACT_TANH, d);                                                             \
        else                                                                                  \
            call(MF_ACT_RELU, d);                                                             \
        break;
#define SMALL_SWITCH(call)                                                                    \
    switch (D) {                                                                              \
        SMALL_CASE(1, call) SMALL_CASE(2, call) SMALL_CASE(3, call) SMALL_CASE(4, call)       \
        SMALL_CASE(5, call) SMALL_CASE(6, call) SMALL_CASE(7, call) SMALL_CASE(8, call)       \
    }

/* With narrower vectors (AVX2: 16 registers of 4 doubles) the fused kernels
 * ran slower than the DGEMM path (5.6 against 4.8 ns at D = 4). */
static int fused(int act, int D)
{
    return VECTOR_BYTES == 64 && D <= SMALL_DIM && (act == MF_ACT_TANH || act == MF_ACT_RELU);
}

/* T (D x np) = the r rows of X (r x D) transposed, zero beyond r. */
static void transpose_rows(int64_t r, int64_t np, int D, const real *X, real *T)
{
    for (int d = 0; d < D; d++) {
        for (int64_t j = 0; j < r; j++)
            T[d * np + j] = X[j * D + d];
        memset(T + d * np + r, 0, (size_t)(np - r) * sizeof *T);
    }
}

/* Y (r x D) += the first r columns of T (D x np). */
static void add_transposed(int64_t r, int64_t np, int D, const real *T, real *Y)
{
    for (int64_t j = 0; j < r; j++)
        for (int d = 0; d < D; d++)
            Y[j * D + d] += T[d * np + j];
}

static void fused_forward_rows(int act, int64_t n, int D, const real *X, int64_t cm,
                               const real *U, const real *W, const real *bias,
                               real *drift, real *work)
{
    for (int64_t j0 = 0; j0 < n; j0 += MF_ROW_BLOCK) {
        const int64_t r = n - j0 < MF_ROW_BLOCK ? n - j0 : MF_ROW_BLOCK;
        const int64_t np = (r + PAD - 1) / PAD * PAD;
        real *XT = work, *FT = XT + D * np + SKEW;
        transpose_rows(r, np, D, X + j0 * D, XT);
#define FORWARD(a, d) fused_forward(a, d, np, XT, cm, U, W, bias, FT)
        SMALL_SWITCH(FORWARD)
#undef FORWARD
        add_transposed(r, np, D, FT, drift + j0 * D);
    }
}

static void fused_backward_rows(int act, int64_t n, int D, const real *X, const real *P,
                                int64_t cm, const real *U, const real *W,
                                const real *bias, real *dP, real *gu, real *gw,
                                real *gb, real *work)
{
    memset(gb, 0, (size_t)cm * sizeof *gb);
    memset(gu, 0, (size_t)(cm * D) * sizeof *gu);
    memset(gw, 0, (size_t)(cm * D) * sizeof *gw);
    for (int64_t j0 = 0; j0 < n; j0 += MF_ROW_BLOCK) {
        const int64_t r = n - j0 < MF_ROW_BLOCK ? n - j0 : MF_ROW_BLOCK;
        const int64_t np = (r + PAD - 1) / PAD * PAD;
        real *XT = work, *PT = XT + D * np + SKEW, *dPT = PT + D * np + SKEW;
        real *Q = dPT + D * np + SKEW;
        if (!dP)
            dPT = NULL;
        transpose_rows(r, np, D, X + j0 * D, XT);
        transpose_rows(r, np, D, P + j0 * D, PT);
#define BACKWARD(a, d) fused_backward(a, d, np, XT, PT, cm, U, W, bias, dPT, gu, gw, gb, Q)
        SMALL_SWITCH(BACKWARD)
#undef BACKWARD
        if (dPT)
            add_transposed(r, np, D, dPT, dP + j0 * D);
    }
}

#ifdef MF_KERNEL_COMMON
int64_t kernels_workspace(int64_t cm)
{
    const int64_t dgemm = (2 * (int64_t)MF_ROW_BLOCK + 1) * cm;
    const int64_t fused = 3 * (SMALL_DIM * MF_ROW_BLOCK + SKEW) + cm * MF_ROW_BLOCK;
    return dgemm > fused ? dgemm : fused;
}
#endif

static void forward(int activation, int64_t n, int dim, const real *X, int64_t cm,
                     const real *U, const real *W, const real *bias, real *drift,
                     real *work)
{
    if (fused(activation, dim))
        fused_forward_rows(activation, n, dim, X, cm, U, W, bias, drift, work);
    else
        gemm_forward(activation, n, dim, X, cm, U, W, bias, drift, work);
}

static void backward(int activation, int64_t n, int dim, const real *X, const real *P,
                      int64_t cm, const real *U, const real *W, const real *bias,
                      real *dP, real *gu, real *gw, real *gb, real *work)
{
    if (fused(activation, dim))
        fused_backward_rows(activation, n, dim, X, P, cm, U, W, bias, dP, gu, gw, gb, work);
    else
        gemm_backward(activation, n, dim, X, P, cm, U, W, bias, dP, gu, gw, gb, work);
}

#ifdef MF_REAL_FLOAT
const struct kernel_ops_f32 KERNEL_PATH_FN(kernel_ops_f32) = {activate, forward, backward};
#else
void KERNEL_PATH_FN(exact_add)(const struct exact_format *f, int64_t *acc, const double *x,
                               int64_t n); /* exact.c */
extern const struct kernel_ops_f32 KERNEL_PATH_FN(kernel_ops_f32);

const struct kernel_path KERNEL_PATH_FN(kernel_path) = {
    STRING(MF_KERNEL_PATH), activate, forward, backward, KERNEL_PATH_FN(exact_add),
    &KERNEL_PATH_FN(kernel_ops_f32)};
#endif
