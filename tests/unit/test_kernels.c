/*
 * Tests of kernels against plain loops written straight from the formulas,
 * for every activation and both ways (fused, DGEMM), on every kernel path
 * this CPU runs (avx512, avx2, generic), with more samples
 * than one row block, a block that is not a whole number of vectors, and a
 * chunk shorter than MF_CHUNK.
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

/* mfres's own tanh is within 8e-16 relative of libm's (about 3 ulp) over the
 * whole range: tiny and huge arguments, both sides of ln2/64 and 7.5 ln2/32
 * (where its reduction first takes a table entry, and first scales by 2),
 * of its clamp at 20, zeros and NaN. kernels.c is built with
 * -fno-trapping-math: the discarded side of a select may overflow on its way
 * (x^2 for x = 1e300), so the traps are off here. */
static void test_tanh_accuracy(void **state)
{
    (void)state;
    int traps = fedisableexcept(FE_ALL_EXCEPT);
    enum { N = 400001 };
    double *a = xmalloc(N * sizeof(double)), *s = xmalloc(N * sizeof(double));
    const double scales[] = {1e-300, 1e-8, 0.05, 1.0, 25.0};
    for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
        for (int i = 0; i < N; i++)
            a[i] = scales[k] * (i - N / 2) / (N / 2);
        kernels_activate(MF_ACT_TANH, N, a, s, NULL);
        for (int i = 0; i < N; i++)
            assert_close(s[i], tanh(a[i]), 8e-16, 0);
    }
    const double first = 0.010830424696249145, scale = 0.16245637044373717;
    double edge[] = {first, -first, nextafter(first, 0), scale, -scale, nextafter(scale, 0),
                     20.0, -nextafter(20.0, 0), 1e300, -1e300, 0.0, -0.0, NAN}, t[13];
    kernels_activate(MF_ACT_TANH, 13, edge, t, NULL);
    for (int i = 0; i < 10; i++)
        assert_close(t[i], tanh(edge[i]), 8e-16, 0);
    assert_true(t[10] == 0 && t[11] == 0);
    assert_true(isnan(t[12])); /* a diverged run stays visibly diverged */
    free(a), free(s);
    feenableexcept(traps);
}

/* A chunk's inputs at dimension dim on n samples, drawn from streams tag to
 * tag + 4: pre-activations and P U^T of the same size at every dim as at
 * D = 5, so that finite-difference derivatives keep their accuracy. */
static void fill_chunk(int64_t n, int dim, double *X, double *P, double *U, double *W,
                       double *bias, uint64_t tag)
{
    fill(X, n * dim, tag);
    fill(P, n * dim, tag + 1);
    fill(U, CM * dim, tag + 2);
    fill(W, CM * dim, tag + 3);
    fill(bias, CM, tag + 4);
    for (int64_t i = 0; i < CM * dim; i++)
        U[i] *= sqrt((double)D / dim), W[i] *= sqrt((double)D / dim);
}

/* The kernels against the formulas, at dimension dim, on n samples: more
 * than one row block. */
static void check_against_loops(int dim, int64_t n)
{
    const int64_t nd = n * dim, cd = CM * dim;
    double *X = xmalloc((size_t)(4 * nd + 6 * cd + 2 * CM) * sizeof(double));
    double *P = X + nd, *drift = P + nd, *dP = drift + nd, *U = dP + nd, *W = U + cd;
    double *gu = W + cd, *gw = gu + cd, *ref_gu = gw + cd, *ref_gw = ref_gu + cd;
    double *bias = ref_gw + cd, *gb = bias + CM, ref_gb[CM];
    double *work = xmalloc((size_t)kernels_workspace(CM) * sizeof(double));
    double *ref_drift = xmalloc(2 * (size_t)dim * sizeof(double)), *ref_dp = ref_drift + dim;
    fill_chunk(n, dim, X, P, U, W, bias, 1);
    for (int act = MF_ACT_TANH; act <= MF_ACT_SOFTPLUS; act++) {
        for (int64_t i = 0; i < nd; i++)
            drift[i] = dP[i] = 1.0; /* kernels accumulate */
        kernels_forward(act, n, dim, X, CM, U, W, bias, drift, work);
        kernels_backward(act, n, dim, X, P, CM, U, W, bias, dP, gu, gw, gb, work);
        memset(ref_gu, 0, 2 * (size_t)cd * sizeof(double));
        memset(ref_gb, 0, sizeof ref_gb);
        for (int64_t j = 0; j < n; j++) {
            memset(ref_drift, 0, 2 * (size_t)dim * sizeof(double));
            for (int m = 0; m < CM; m++) {
                double a = bias[m], up = 0;
                for (int k = 0; k < dim; k++)
                    a += W[m * dim + k] * X[j * dim + k], up += U[m * dim + k] * P[j * dim + k];
                const double eps = 1e-6;
                double s = sigma(act, a);
                double ds = (sigma(act, a + eps) - sigma(act, a - eps)) / (2 * eps);
                for (int k = 0; k < dim; k++) {
                    ref_drift[k] += U[m * dim + k] * s;
                    ref_dp[k] += W[m * dim + k] * ds * up;
                    ref_gu[m * dim + k] += s * P[j * dim + k];
                    ref_gw[m * dim + k] += ds * up * X[j * dim + k];
                }
                ref_gb[m] += ds * up;
            }
            for (int k = 0; k < dim; k++) {
                assert_close(drift[j * dim + k], 1.0 + ref_drift[k], 1e-12, 1e-12);
                assert_close(dP[j * dim + k], 1.0 + ref_dp[k], 1e-7, 1e-8);
            }
        }
        for (int64_t i = 0; i < cd; i++) {
            assert_close(gu[i], ref_gu[i], 1e-12, 1e-11);
            assert_close(gw[i], ref_gw[i], 1e-7, 1e-7);
        }
        for (int m = 0; m < CM; m++)
            assert_close(gb[m], ref_gb[m], 1e-7, 1e-7);
    }
    free(X), free(work), free(ref_drift);
}

static void test_forward_and_backward_match_loops(void **state)
{
    (void)state;
    /* The fused kernels (tanh and ReLU up to D = 8) at every vector count
     * per register block, and the DGEMM path (sigmoid, softplus, D > 8). */
    for (int dim = 1; dim <= 8; dim++)
        check_against_loops(dim, N);
    check_against_loops(9, N);
    /* At D = 64 the blocks are shorter (kernels.h): 120 rows and the rest. */
    check_against_loops(64, kernels_row_block(64) + 37);
}

/* Row blocks: MF_ROW_BLOCK, except where a shorter block of 64 or more rows
 * keeps a product within 10^6 multiply-adds. */
static void test_row_block(void **state)
{
    (void)state;
    assert_int_equal(kernels_row_block(5), MF_ROW_BLOCK);
    assert_int_equal(kernels_row_block(61), MF_ROW_BLOCK);
    assert_int_equal(kernels_row_block(62), 120);
    assert_int_equal(kernels_row_block(64), 120);
    assert_int_equal(kernels_row_block(100), 72);
    assert_int_equal(kernels_row_block(122), 64);
    assert_int_equal(kernels_row_block(123), MF_ROW_BLOCK);
    assert_int_equal(kernels_row_block(1000), MF_ROW_BLOCK);
    for (int dim = 1; dim <= 300; dim++) {
        const int64_t rows = kernels_row_block(dim);
        assert_true(rows % 8 == 0 && rows >= 64 && rows <= MF_ROW_BLOCK);
        assert_true(rows == MF_ROW_BLOCK || rows * MF_CHUNK * dim <= 1000000);
    }
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

/* The single-precision tanh is within 4e-7 relative of libm's (3.4 float
 * ulp) over the whole range, both sides of its clamp at 10, and keeps
 * zeros and NaN. */
static void test_tanh_f32_accuracy(void **state)
{
    (void)state;
    int traps = fedisableexcept(FE_ALL_EXCEPT);
    enum { N = 400001 };
    float *a = xmalloc(N * sizeof(float)), *s = xmalloc(N * sizeof(float));
    float *ds = xmalloc(N * sizeof(float));
    const float scales[] = {1e-30f, 1e-4f, 0.05f, 1.0f, 12.0f};
    for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
        for (int i = 0; i < N; i++)
            a[i] = scales[k] * (float)(i - N / 2) / (N / 2);
        kernels_activate_f32(MF_ACT_TANH, N, a, s, ds);
        for (int i = 0; i < N; i++) {
            assert_close(s[i], tanh((double)a[i]), 4e-7, 0);
            assert_close(ds[i], 1 - (double)s[i] * s[i], 1e-6, 1e-7);
        }
    }
    float edge[] = {10.0f, -nextafterf(10.0f, 0), 1e30f, -1e30f, 0.0f, -0.0f, NAN}, t[7];
    kernels_activate_f32(MF_ACT_TANH, 7, edge, t, NULL);
    for (int i = 0; i < 4; i++)
        assert_close(t[i], tanh((double)edge[i]), 4e-7, 0);
    assert_true(t[4] == 0 && t[5] == 0 && isnan(t[6]));
    free(a), free(s), free(ds);
    feenableexcept(traps);
}

/* The single-precision kernels against the double ones on the same
 * (float) inputs, every activation, fused and SGEMM ways: within a few
 * float roundings of each sum's magnitude. */
static void check_f32_against_double(int dim, int64_t n)
{
    const int64_t nd = n * dim, cd = CM * dim, all = 4 * nd + 5 * cd + 2 * CM;
    double *X = xmalloc((size_t)all * sizeof(double));
    double *P = X + nd, *drift = P + nd, *dP = drift + nd, *U = dP + nd, *W = U + cd;
    double *gu = W + cd, *gw = gu + cd, *bias = gw + cd, *gb = bias + CM;
    float *f = xmalloc((size_t)all * sizeof(float));
    float *fX = f, *fP = fX + nd, *fdrift = fP + nd, *fdP = fdrift + nd, *fU = fdP + nd;
    float *fW = fU + cd, *fgu = fW + cd, *fgw = fgu + cd, *fbias = fgw + cd, *fgb = fbias + CM;
    double *work = xmalloc((size_t)kernels_workspace(CM) * sizeof(double));
    float *fwork = xmalloc((size_t)kernels_workspace(CM) * sizeof(float));
    fill_chunk(n, dim, X, P, U, W, bias, 11);
    for (int64_t i = 0; i < all; i++)
        f[i] = (float)X[i], X[i] = f[i];
    for (int act = MF_ACT_TANH; act <= MF_ACT_SOFTPLUS; act++) {
        memset(drift, 0, 2 * (size_t)nd * sizeof *drift);
        memset(fdrift, 0, 2 * (size_t)nd * sizeof *fdrift);
        kernels_forward(act, n, dim, X, CM, U, W, bias, drift, work);
        kernels_backward(act, n, dim, X, P, CM, U, W, bias, dP, gu, gw, gb, work);
        kernels_forward_f32(act, n, dim, fX, CM, fU, fW, fbias, fdrift, fwork);
        kernels_backward_f32(act, n, dim, fX, fP, CM, fU, fW, fbias, fdP, fgu, fgw, fgb, fwork);
        /* A sum of k terms of size about 1 (19 particles, n samples). */
        for (int64_t i = 0; i < nd; i++) {
            assert_close(fdrift[i], drift[i], 0, 2e-6 * CM);
            assert_close(fdP[i], dP[i], 0, 2e-6 * CM);
        }
        for (int64_t i = 0; i < cd; i++) {
            assert_close(fgu[i], gu[i], 0, 2e-6 * (double)n);
            assert_close(fgw[i], gw[i], 0, 2e-6 * (double)n);
        }
        for (int m = 0; m < CM; m++)
            assert_close(fgb[m], gb[m], 0, 2e-6 * (double)n);
    }
    free(X), free(f), free(work), free(fwork);
}

static void test_f32_kernels_match_double(void **state)
{
    (void)state;
    for (int dim = 1; dim <= 9; dim++)
        check_f32_against_double(dim, N);
    check_f32_against_double(64, kernels_row_block(64) + 37);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_activation_derivatives),
    cmocka_unit_test(test_tanh_accuracy),
    cmocka_unit_test(test_forward_and_backward_match_loops),
    cmocka_unit_test(test_row_block),
    cmocka_unit_test(test_rows_are_independent),
    cmocka_unit_test(test_tanh_f32_accuracy),
    cmocka_unit_test(test_f32_kernels_match_double),
};
/* The whole group once per kernel path that this CPU runs. */
static int on_every_path(void)
{
    int failed = 0;
    for (int i = 0; kernel_paths[i]; i++) {
        char err[256];
        if (kernels_choose(kernel_paths[i]->name, err, sizeof err)) {
            print_message("skipped: %s\n", err);
            continue;
        }
        print_message("kernel path %s\n", kernels_path()->name);
        failed += cmocka_run_group_tests(tests, NULL, NULL);
    }
    return failed;
}

MPI_CMOCKA_MAIN_RUNNING(on_every_path())
