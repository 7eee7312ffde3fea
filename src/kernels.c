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
 * DGEMM, or SGEMM in single precision (any other D or activation). Per
 * block of r <= kernels_row_block(D) samples:
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

/* The vector types of this build (LANES reals), clamp and tanh. */
#include "vector_math.h"

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
