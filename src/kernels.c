/*
 * kernels: chunk arithmetic through DGEMM (see kernels.h).
 *
 * Per block of r <= kernels_row_block(D) samples and a chunk of cm particles:
 *   forward   A = X W^T + b, S = sigma(A), drift += S U            4 r cm D flops
 *   backward  A = X W^T + b (recomputed), Q = P U^T                 4 r cm D
 *             per row: S = sigma(A), Q .*= sigma'(A), gb += Q       (one pass)
 *             dP += Q W, gu += S^T P, gw += Q^T X                   6 r cm D
 * The r x cm blocks A/S and Q and one row of sigma' are the whole
 * workspace. This file is compiled with FMA contraction
 * (-ffp-contract=fast): the activations' polynomials are chains of FMAs.
 */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "particles.h"

int64_t kernels_workspace(int64_t cm) { return (2 * (int64_t)MF_ROW_BLOCK + 1) * cm; }

/* Measured (README, Performance): at D = 64 a 128-row block is 5% over the
 * limit, and 120 rows made the kernels 15% faster on AVX-512 cores (64 to
 * 73% of the DGEMM peak); AVX2 cores, without such kernels, ran as before. */
int64_t kernels_row_block(int dim)
{
    const int64_t fit = 1000000 / ((int64_t)MF_CHUNK * dim) / 8 * 8;
    return fit < MF_ROW_BLOCK && fit >= 64 ? fit : MF_ROW_BLOCK;
}

/*
 * Activations are evaluated in branch-free loops that GCC vectorizes: tanh
 * (the default, and the cost that matters at small D: two evaluations per
 * sample, particle and layer) by tanh_fast below; exp and log1p through
 * glibc's vector math library (libmvec). math.h declares the libmvec
 * variants only under -ffast-math, which mfres avoids (it breaks isfinite
 * and reorders sums), so they are declared here. This file is compiled with
 * -fno-trapping-math so that GCC may evaluate both sides of a select.
 */
__attribute__((simd("notinbranch"))) double exp(double);
__attribute__((simd("notinbranch"))) double log1p(double);

/* tanh within 5e-16 relative of libm's, in two passes over blocks of
 * TANH_BLOCK values. In one pass each value is one long chain of dependent
 * operations, and the core's out-of-order window holds too few values at
 * once to keep its FMA pipes busy; two shorter chains ran 30% faster here.
 *   1. y = min(|x|, 20) (tanh = 1 in doubles beyond), k = round(-2y / ln2),
 *      r = -2y - k ln2 with |r| <= ln2/2, and 2^k built in the exponent bits;
 *   2. E = e^(-2y) - 1 = 2^k (e^r - 1) + (2^k - 1) in (-1, 0], and
 *      tanh|x| = -E / (2 + E), which at most doubles E's relative error.
 * e^r - 1 = r + r^2/2 + r^3 C(r), C the degree-8 Chebyshev fit of
 * (e^r - 1 - r - r^2/2) / r^3 on |r| <= ln2/2 (mpmath.chebyfit, 50 digits;
 * relative error of e^r - 1 below 1e-16), in Estrin's scheme. For |x| below
 * ln2/4, k = 0 and E = e^r - 1 with no cancellation; ln2 rounded to a double
 * adds below 3e-17 relative to E for |k| <= 58. The sign is copied from x,
 * so tanh(-0) = -0, and NaN stays NaN. s may be x. */
enum { TANH_BLOCK = 256 };

static void tanh_block(int64_t n, const double *x, double *s)
{
    double r[TANH_BLOCK], pow2[TANH_BLOCK];
    for (int64_t i = 0; i < n; i++) {
        const double shifter = 0x1.8p52; /* adding it rounds to an integer */
        double y = fabs(x[i]);
        y = y > 20.0 ? 20.0 : y; /* tanh = 1 in doubles beyond */
        const double t = y * -2.8853900817779268147 + shifter;
        const double k = t - shifter;
        r[i] = -2.0 * y - k * 0.69314718055994530942;
        uint64_t bits;
        memcpy(&bits, &t, sizeof t);
        /* 2^k: t's low 12 bits hold k (the shifter's own shift out) */
        bits = 0x3ff0000000000000u + (bits << 52);
        memcpy(&pow2[i], &bits, sizeof bits);
    }
    for (int64_t i = 0; i < n; i++) {
        const double ri = r[i], r2 = ri * ri, r4 = r2 * r2, r8 = r4 * r4;
        const double c34 = 1.6666666666666666e-01 + ri * 4.1666666666651364e-02;
        const double c56 = 8.3333333333321571e-03 + ri * 1.3888888905871347e-03;
        const double c78 = 1.9841269854330769e-04 + ri * 2.4801536409064087e-05;
        const double c910 = 2.7557280082684685e-06 + ri * 2.7613795554519861e-07;
        const double c =
            (c34 + r2 * c56) + r4 * (c78 + r2 * c910) + r8 * 2.5095545981700220e-08;
        const double em1r = ri + r2 * (0.5 + ri * c);
        const double E = pow2[i] * em1r + (pow2[i] - 1.0);
        s[i] = copysign(E, x[i]) / (2.0 + E);
    }
}

static void tanh_fast(int64_t n, const double *x, double *s)
{
    for (int64_t i = 0; i < n; i += TANH_BLOCK)
        tanh_block(n - i < TANH_BLOCK ? n - i : TANH_BLOCK, x + i, s + i);
}

void kernels_activate(int activation, int64_t n, const double *a, double *s, double *ds)
{
    switch (activation) {
    case MF_ACT_TANH:
        tanh_fast(n, a, s);
        if (ds)
            for (int64_t i = 0; i < n; i++)
                ds[i] = 1.0 - s[i] * s[i];
        break;
    case MF_ACT_RELU:
        if (ds)
            for (int64_t i = 0; i < n; i++)
                ds[i] = a[i] > 0 ? 1.0 : 0.0;
        for (int64_t i = 0; i < n; i++)
            s[i] = a[i] > 0 ? a[i] : 0.0;
        break;
    case MF_ACT_SIGMOID:
        /* 1 / (1 + e^-x) from e^-|x| <= 1: no overflow for either sign. */
        for (int64_t i = 0; i < n; i++) {
            double e = exp(-fabs(a[i]));
            s[i] = a[i] >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
        }
        if (ds)
            for (int64_t i = 0; i < n; i++)
                ds[i] = s[i] * (1.0 - s[i]);
        break;
    case MF_ACT_SOFTPLUS:
        /* log(1 + e^x) = max(x, 0) + log1p(e^-|x|); the derivative is the
         * logistic. The derivative comes first: s may overwrite a. */
        if (ds)
            for (int64_t i = 0; i < n; i++) {
                double e = exp(-fabs(a[i]));
                ds[i] = a[i] >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
            }
        for (int64_t i = 0; i < n; i++)
            s[i] = (a[i] > 0 ? a[i] : 0.0) + log1p(exp(-fabs(a[i])));
        break;
    }
}

/* A (r x cm) = X W^T + bias, row-major. A starts as the bias rows and DGEMM
 * accumulates (beta = 1): no separate zeroing pass and no bias pass. */
static void preactivation(int64_t r, int dim, const double *X, int64_t cm, const double *W,
                          const double *bias, double *A)
{
    for (int64_t j = 0; j < r; j++)
        memcpy(A + j * cm, bias, (size_t)cm * sizeof *A);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)cm, dim, 1.0, X, dim, W,
                dim, 1.0, A, (int)cm);
}

void kernels_forward(int activation, int64_t n, int dim, const double *X, int64_t cm,
                     const double *U, const double *W, const double *bias, double *drift,
                     double *work)
{
    double *S = work;
    const int64_t rows = kernels_row_block(dim);
    for (int64_t j0 = 0; j0 < n; j0 += rows) {
        int64_t r = n - j0 < rows ? n - j0 : rows;
        preactivation(r, dim, X + j0 * dim, cm, W, bias, S);
        kernels_activate(activation, r * cm, S, S, NULL);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, dim, (int)cm, 1.0, S,
                    (int)cm, U, dim, 1.0, drift + j0 * dim, dim);
    }
}

void kernels_backward(int activation, int64_t n, int dim, const double *X, const double *P,
                      int64_t cm, const double *U, const double *W, const double *bias,
                      double *dP, double *gu, double *gw, double *gb, double *work)
{
    double *S = work;
    double *Q = S + MF_ROW_BLOCK * cm;
    double *dS = Q + MF_ROW_BLOCK * cm; /* one row */
    /* Every product accumulates (beta = 1) into memory zeroed here: OpenBLAS's
     * own beta = 0 pass is slower than memset. */
    memset(gb, 0, (size_t)cm * sizeof *gb);
    memset(gu, 0, (size_t)(cm * dim) * sizeof *gu);
    memset(gw, 0, (size_t)(cm * dim) * sizeof *gw);
    const int64_t rows = kernels_row_block(dim);
    for (int64_t j0 = 0; j0 < n; j0 += rows) {
        int64_t r = n - j0 < rows ? n - j0 : rows;
        const double *Xb = X + j0 * dim, *Pb = P + j0 * dim;
        preactivation(r, dim, Xb, cm, W, bias, S);
        memset(Q, 0, (size_t)(r * cm) * sizeof *Q);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)cm, dim, 1.0, Pb, dim,
                    U, dim, 1.0, Q, (int)cm);
        /* One pass per row while it is in L1: S = sigma(A), Q = sigma'(A) .* (P U^T),
         * gb += Q. */
        for (int64_t j = 0; j < r; j++) {
            double *Sj = S + j * cm, *Qj = Q + j * cm;
            kernels_activate(activation, cm, Sj, Sj, dS);
            for (int64_t m = 0; m < cm; m++) {
                Qj[m] *= dS[m];
                gb[m] += Qj[m];
            }
        }
        if (dP)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, dim, (int)cm, 1.0, Q,
                        (int)cm, W, dim, 1.0, dP + j0 * dim, dim);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cm, dim, (int)r, 1.0, S,
                    (int)cm, Pb, dim, 1.0, gu, dim);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cm, dim, (int)r, 1.0, Q,
                    (int)cm, Xb, dim, 1.0, gw, dim);
    }
}

double kernels_dgemm_gflops(double seconds)
{
    const int n = 1024;
    double *a = xmalloc((size_t)3 * n * n * sizeof *a), *b = a + n * n, *c = b + n * n;
    for (int64_t i = 0; i < (int64_t)3 * n * n; i++)
        a[i] = (double)(i % 7) * 0.25 - 0.75;
    double best = 0, spent = 0;
    for (int rep = 0; rep < 20 && (rep < 3 || spent < seconds); rep++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0, c,
                    n);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        spent += dt;
        if (2.0 * n * n * n / dt > best)
            best = 2.0 * n * n * n / dt;
    }
    free(a);
    return best / 1e9;
}

int kernels_blas_threads(void) { return openblas_get_num_threads(); }

const char *kernels_blas_core(void) { return openblas_get_corename(); }

/* NULL when the BLAS core suits this CPU, else the OPENBLAS_CORETYPE to set. */
static const char *blas_advice(void)
{
    static const char *const avx2_cores[] = {"haswell", "zen", "skylakex", "cooperlake",
                                             "sapphirerapids"};
    const char *core = openblas_get_corename();
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2"))
        return NULL;
    for (size_t i = 0; i < sizeof avx2_cores / sizeof avx2_cores[0]; i++)
        if (!strcasecmp(core, avx2_cores[i]))
            return NULL;
    return __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell";
}

int kernels_warn_generic_blas(void)
{
    const char *advice = blas_advice();
    if (advice)
        log_warn("OpenBLAS uses the generic core '%s' on a CPU with AVX2; it may run several "
                 "times slower. Set OPENBLAS_CORETYPE=%s.",
                 kernels_blas_core(), advice);
    return advice != NULL;
}
