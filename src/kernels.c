/*
 * kernels: chunk arithmetic through DGEMM (see kernels.h).
 *
 * Per block of r <= MF_ROW_BLOCK samples and a chunk of cm particles:
 *   forward   A = X W^T + b, S = sigma(A), drift += S U            4 r cm D flops
 *   backward  A = X W^T + b, S, S' = sigma(A), sigma'(A)           2 r cm D (recompute)
 *             Q = S' .* (P U^T)                                     2 r cm D
 *             dP += Q W, gu += S^T P, gw += Q^T X, gb += colsum Q   6 r cm D
 * The r x cm blocks A/S, S' and Q are the whole workspace.
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

int64_t kernels_workspace(int64_t cm) { return 3 * (int64_t)MF_ROW_BLOCK * cm; }

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

/* e^x for x <= 0 (larger x are not needed), relative error below 3e-16:
 * x = k ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^12 in
 * Estrin's scheme (a shallow dependency tree), 2^k added to the exponent
 * bits. x below -708 gives e^-708: no subnormals. */
static inline double exp_nonpositive(double x)
{
    const double shifter = 0x1.8p52; /* adding it rounds to an integer */
    x = x < -708.0 ? -708.0 : x;
    const double t = x * 1.4426950408889634074 + shifter;
    const double k = t - shifter;
    const double r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    const double r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    const double c01 = 1.0 + r, c23 = 0.5 + r * (1.0 / 6), c45 = 1.0 / 24 + r * (1.0 / 120);
    const double c67 = 1.0 / 720 + r * (1.0 / 5040), c89 = 1.0 / 40320 + r * (1.0 / 362880);
    const double c1011 = 1.0 / 3628800 + r * (1.0 / 39916800), c12 = 1.0 / 479001600;
    const double c03 = c01 + r2 * c23, c47 = c45 + r2 * c67, c811 = c89 + r2 * c1011;
    double p = (c03 + r4 * c47) + r8 * (c811 + r4 * c12);
    uint64_t pbits, tbits, sbits;
    memcpy(&pbits, &p, sizeof p);
    memcpy(&tbits, &t, sizeof t);
    memcpy(&sbits, &shifter, sizeof shifter);
    pbits += (tbits - sbits) << 52; /* times 2^k */
    memcpy(&p, &pbits, sizeof p);
    return p;
}

/* tanh within 5e-16 relative of libm's, about twice as fast as libmvec's
 * on AVX2. |x| < 0.625: x + x^3 P(x^2) / Q(x^2) (the Cephes rational);
 * otherwise (1 - e) / (1 + e) with e = e^-2|x| <= 0.29, free of
 * cancellation. Both sides are computed on clamped inputs (so neither can
 * overflow) and selected before the single division. */
static inline double tanh_fast(double x)
{
    const double y = fabs(x);
    const int small = y < 0.625;
    const double xs = small ? x : 0.0, z = xs * xs;
    const double P = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z -
                     1.61468768441708447952e3;
    const double Q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z +
                     4.84406305325125486048e3;
    const double e = exp_nonpositive(-2.0 * y);
    const double large = x < 0 ? e - 1.0 : 1.0 - e;
    return (small ? xs * (Q + z * P) : large) / (small ? Q : 1.0 + e);
}

void kernels_activate(int activation, int64_t n, const double *a, double *s, double *ds)
{
    switch (activation) {
    case MF_ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            s[i] = tanh_fast(a[i]);
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
    for (int64_t j0 = 0; j0 < n; j0 += MF_ROW_BLOCK) {
        int64_t r = n - j0 < MF_ROW_BLOCK ? n - j0 : MF_ROW_BLOCK;
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
    double *dS = S + MF_ROW_BLOCK * cm;
    double *Q = dS + MF_ROW_BLOCK * cm;
    memset(gb, 0, (size_t)cm * sizeof *gb);
    if (n <= 0) {
        memset(gu, 0, (size_t)(cm * dim) * sizeof *gu);
        memset(gw, 0, (size_t)(cm * dim) * sizeof *gw);
    }
    for (int64_t j0 = 0; j0 < n; j0 += MF_ROW_BLOCK) {
        int64_t r = n - j0 < MF_ROW_BLOCK ? n - j0 : MF_ROW_BLOCK;
        const double *Xb = X + j0 * dim, *Pb = P + j0 * dim;
        double beta = j0 == 0 ? 0.0 : 1.0; /* first block overwrites gu, gw */
        preactivation(r, dim, Xb, cm, W, bias, S);
        kernels_activate(activation, r * cm, S, S, dS);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)cm, dim, 1.0, Pb, dim,
                    U, dim, 0.0, Q, (int)cm);
        for (int64_t j = 0; j < r; j++)
            for (int64_t m = 0; m < cm; m++) {
                Q[j * cm + m] *= dS[j * cm + m];
                gb[m] += Q[j * cm + m];
            }
        if (dP)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, dim, (int)cm, 1.0, Q,
                        (int)cm, W, dim, 1.0, dP + j0 * dim, dim);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cm, dim, (int)r, 1.0, S,
                    (int)cm, Pb, dim, beta, gu, dim);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cm, dim, (int)r, 1.0, Q,
                    (int)cm, Xb, dim, beta, gw, dim);
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

const char *kernels_blas_advice(void)
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
