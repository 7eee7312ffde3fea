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
#include <string.h>
#include <strings.h>

#include "config.h"
#include "particles.h"

int64_t kernels_workspace(int64_t cm) { return 3 * (int64_t)MF_ROW_BLOCK * cm; }

/* 1 / (1 + e^-x) without overflow for either sign of x. */
static inline double logistic(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

void kernels_activate(int activation, int64_t n, const double *a, double *s, double *ds)
{
    switch (activation) {
    case MF_ACT_TANH:
        for (int64_t i = 0; i < n; i++) {
            double t = tanh(a[i]);
            s[i] = t;
            if (ds)
                ds[i] = 1.0 - t * t;
        }
        break;
    case MF_ACT_RELU:
        for (int64_t i = 0; i < n; i++) {
            double x = a[i];
            s[i] = x > 0 ? x : 0.0;
            if (ds)
                ds[i] = x > 0 ? 1.0 : 0.0;
        }
        break;
    case MF_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) {
            double e = logistic(a[i]);
            s[i] = e;
            if (ds)
                ds[i] = e * (1.0 - e);
        }
        break;
    case MF_ACT_SOFTPLUS:
        for (int64_t i = 0; i < n; i++) {
            double x = a[i];
            /* log(1 + e^x) without overflow; derivative is the logistic. */
            s[i] = x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
            if (ds)
                ds[i] = logistic(x);
        }
        break;
    }
}

/* A (r x cm) = X W^T + bias, row-major. */
static void preactivation(int64_t r, int dim, const double *X, int64_t cm, const double *W,
                          const double *bias, double *A)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)cm, dim, 1.0, X, dim, W,
                dim, 0.0, A, (int)cm);
    for (int64_t j = 0; j < r; j++)
        for (int64_t m = 0; m < cm; m++)
            A[j * cm + m] += bias[m];
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
