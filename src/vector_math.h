/*
 * vector_math: the vectors of kernels.c and tanh on them, for the build's
 * instruction set (a path of kernels.h) and precision (`real`: double, or
 * float with MF_REAL_FLOAT). Included by kernels.c alone, after it has
 * defined real, ireal and ureal; compiled with it once per path and
 * precision.
 */
#ifndef MFRES_VECTOR_MATH_H
#define MFRES_VECTOR_MATH_H

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <immintrin.h>
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

#endif
