/*
 * Tests of kernels against plain loops written straight from the formulas,
 * for every activation, with more samples than one row block and a chunk
 * shorter than MF_CHUNK.
 */
#include "mpi_cmocka.h"

#include <string.h>

#include "config.h"
#include "kernels.h"
#include "log.h"
#include "particles.h"
#include "rng.h"

enum { N = MF_ROW_BLOCK + 37, D = 5, CM = 19 };

static double sigma(int act, double a)
{
    switch (act) {
    case MF_ACT_TANH:
        return tanh(a);
    case MF_ACT_RELU:
        return a > 0 ? a : 0;
    case MF_ACT_SIGMOID:
        return 1 / (1 + exp(-a));
    default:
        return log(1 + exp(a));
    }
}

static void fill(double *x, int64_t n, uint64_t tag)
{
    double z[4];
    for (int64_t i = 0; i < n; i++) {
        if (i % 4 == 0)
            rng_normal4(99, RNG_DATA, tag, (uint64_t)i / 4, 0, 0, z);
        x[i] = z[i % 4];
    }
}

/* The derivative returned with each activation matches a central difference. */
static void test_activation_derivatives(void **state)
{
    (void)state;
    const double a[] = {-3.1, -0.7, -0.01, 0.02, 0.5, 2.9};
    const int n = sizeof a / sizeof a[0];
    for (int act = MF_ACT_TANH; act <= MF_ACT_SOFTPLUS; act++) {
        double s[6], ds[6], sp[6], sm[6], ap[6], am[6];
        const double eps = 1e-6;
        for (int i = 0; i < n; i++)
            ap[i] = a[i] + eps, am[i] = a[i] - eps;
        kernels_activate(act, n, a, s, ds);
        kernels_activate(act, n, ap, sp, NULL);
        kernels_activate(act, n, am, sm, NULL);
        for (int i = 0; i < n; i++) {
            assert_close(s[i], sigma(act, a[i]), 1e-14, 1e-15);
            assert_close(ds[i], (sp[i] - sm[i]) / (2 * eps), 1e-7, 1e-9);
        }
    }
    /* Softplus and sigmoid stay finite and exact far out (traps are on). */
    double big[2] = {800, -800}, s[2], ds[2];
    kernels_activate(MF_ACT_SOFTPLUS, 2, big, s, ds);
    assert_true(s[0] == 800 && s[1] >= 0 && s[1] < 1e-300);
    assert_true(ds[0] == 1 && ds[1] >= 0 && ds[1] < 1e-300);
    kernels_activate(MF_ACT_SIGMOID, 2, big, s, ds);
    assert_true(s[0] == 1 && s[1] >= 0 && s[1] < 1e-300 && ds[0] == 0 && ds[1] < 1e-300);
}

/* mfres's own tanh is within 5e-16 relative of libm's over the whole range:
 * tiny and huge arguments, both sides of ln2/4 (where its exponential's
 * reduction first subtracts ln2) and of its clamp at 20, signed zeros, NaN.
 * kernels.c is built with -fno-trapping-math: the discarded side of a select
 * may overflow on its way (x^2 for x = 1e300), so the traps are off here. */
static void test_tanh_accuracy(void **state)
{
    (void)state;
    int traps = fedisableexcept(FE_ALL_EXCEPT);
    enum { N = 400001 };
    double *a = xmalloc(N * sizeof(double)), *s = xmalloc(N * sizeof(double));
    const double scales[] = {1e-300, 1e-8, 1.0, 25.0};
    for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
        for (int i = 0; i < N; i++)
            a[i] = scales[k] * (i - N / 2) / (N / 2);
        kernels_activate(MF_ACT_TANH, N, a, s, NULL);
        for (int i = 0; i < N; i++)
            assert_close(s[i], tanh(a[i]), 5e-16, 0);
    }
    double edge[] = {0.17328679513998632, -0.17328679513998632, nextafter(0.17328679513998632, 0),
                     20.0, -nextafter(20.0, 0), 1e300, -1e300, 0.0, -0.0, NAN}, t[10];
    kernels_activate(MF_ACT_TANH, 10, edge, t, NULL);
    for (int i = 0; i < 9; i++)
        assert_close(t[i], tanh(edge[i]), 5e-16, 0);
    assert_true(signbit(t[8]) && !signbit(t[7]));
    assert_true(isnan(t[9])); /* a diverged run stays visibly diverged */
    free(a), free(s);
    feenableexcept(traps);
}

static void test_forward_and_backward_match_loops(void **state)
{
    (void)state;
    double *X = xmalloc(N * D * sizeof(double)), *P = xmalloc(N * D * sizeof(double));
    double U[CM * D], W[CM * D], bias[CM];
    double *work = xmalloc((size_t)kernels_workspace(CM) * sizeof(double));
    double *drift = xmalloc(N * D * sizeof(double)), *dP = xmalloc(N * D * sizeof(double));
    double gu[CM * D], gw[CM * D], gb[CM];
    fill(X, N * D, 1);
    fill(P, N * D, 2);
    fill(U, CM * D, 3);
    fill(W, CM * D, 4);
    fill(bias, CM, 5);
    for (int act = MF_ACT_TANH; act <= MF_ACT_SOFTPLUS; act++) {
        for (int i = 0; i < N * D; i++)
            drift[i] = dP[i] = 1.0; /* kernels accumulate */
        kernels_forward(act, N, D, X, CM, U, W, bias, drift, work);
        kernels_backward(act, N, D, X, P, CM, U, W, bias, dP, gu, gw, gb, work);
        double ref_gu[CM * D] = {0}, ref_gw[CM * D] = {0}, ref_gb[CM] = {0};
        for (int j = 0; j < N; j++) {
            double ref_drift[D] = {0}, ref_dp[D] = {0};
            for (int m = 0; m < CM; m++) {
                double a = bias[m], up = 0;
                for (int k = 0; k < D; k++)
                    a += W[m * D + k] * X[j * D + k], up += U[m * D + k] * P[j * D + k];
                const double eps = 1e-6;
                double s = sigma(act, a);
                double ds = (sigma(act, a + eps) - sigma(act, a - eps)) / (2 * eps);
                for (int k = 0; k < D; k++) {
                    ref_drift[k] += U[m * D + k] * s;
                    ref_dp[k] += W[m * D + k] * ds * up;
                    ref_gu[m * D + k] += s * P[j * D + k];
                    ref_gw[m * D + k] += ds * up * X[j * D + k];
                }
                ref_gb[m] += ds * up;
            }
            for (int k = 0; k < D; k++) {
                assert_close(drift[j * D + k], 1.0 + ref_drift[k], 1e-12, 1e-12);
                assert_close(dP[j * D + k], 1.0 + ref_dp[k], 1e-7, 1e-8);
            }
        }
        for (int i = 0; i < CM * D; i++) {
            assert_close(gu[i], ref_gu[i], 1e-12, 1e-11);
            assert_close(gw[i], ref_gw[i], 1e-7, 1e-7);
        }
        for (int m = 0; m < CM; m++)
            assert_close(gb[m], ref_gb[m], 1e-7, 1e-7);
    }
    free(X), free(P), free(work), free(drift), free(dP);
}

/* Splitting the samples into two calls gives the same drift: rows are
 * independent, and the gradients add up. */
static void test_rows_are_independent(void **state)
{
    (void)state;
    double *X = xmalloc(N * D * sizeof(double)), *P = xmalloc(N * D * sizeof(double));
    double U[CM * D], W[CM * D], bias[CM], gu[CM * D], gw[CM * D], gb[CM];
    double gu2[CM * D], gw2[CM * D], gb2[CM];
    double *work = xmalloc((size_t)kernels_workspace(CM) * sizeof(double));
    double *d1 = xcalloc(N * D, sizeof(double)), *d2 = xcalloc(N * D, sizeof(double));
    fill(X, N * D, 6);
    fill(P, N * D, 7);
    fill(U, CM * D, 8);
    fill(W, CM * D, 9);
    fill(bias, CM, 10);
    const int split = 100;
    kernels_forward(MF_ACT_TANH, N, D, X, CM, U, W, bias, d1, work);
    kernels_forward(MF_ACT_TANH, split, D, X, CM, U, W, bias, d2, work);
    kernels_forward(MF_ACT_TANH, N - split, D, X + split * D, CM, U, W, bias, d2 + split * D,
                    work);
    for (int i = 0; i < N * D; i++)
        assert_close(d1[i], d2[i], 1e-14, 1e-15);
    kernels_backward(MF_ACT_TANH, N, D, X, P, CM, U, W, bias, NULL, gu, gw, gb, work);
    kernels_backward(MF_ACT_TANH, split, D, X, P, CM, U, W, bias, NULL, gu2, gw2, gb2, work);
    double gu3[CM * D], gw3[CM * D], gb3[CM];
    kernels_backward(MF_ACT_TANH, N - split, D, X + split * D, P + split * D, CM, U, W, bias,
                     NULL, gu3, gw3, gb3, work);
    for (int i = 0; i < CM * D; i++) {
        assert_close(gu[i], gu2[i] + gu3[i], 1e-12, 1e-13);
        assert_close(gw[i], gw2[i] + gw3[i], 1e-12, 1e-13);
    }
    for (int m = 0; m < CM; m++)
        assert_close(gb[m], gb2[m] + gb3[m], 1e-12, 1e-13);
    free(X), free(P), free(work), free(d1), free(d2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_activation_derivatives),
    cmocka_unit_test(test_tanh_accuracy),
    cmocka_unit_test(test_forward_and_backward_match_loops),
    cmocka_unit_test(test_rows_are_independent),
};
MPI_CMOCKA_MAIN(tests)
