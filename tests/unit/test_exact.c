/*
 * Tests of exact: sums against an independent exact reference (Shewchuk's
 * expansion arithmetic, error-free two-sums) on adversarial terms (huge
 * cancellation, mixed magnitudes, denormals, signed zeros, terms at the
 * range's edge); the bits of a sum independent of the order and grouping of
 * its terms and of the ranks holding them; overflow giving NaN.
 */
#include "mpi_cmocka.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exact.h"
#include "kernels.h"

/* ---- the reference: a nonoverlapping expansion, exact for any doubles ---- */

enum { MAX_PARTS = 4096 };

struct expansion {
    double part[MAX_PARTS];
    int n;
};

/* Add x exactly (Shewchuk's Grow-Expansion, zeros dropped). */
static void grow(struct expansion *e, double x)
{
    int k = 0;
    for (int i = 0; i < e->n; i++) {
        const double s = x + e->part[i], bv = s - x, err = (x - (s - bv)) + (e->part[i] - bv);
        if (err != 0)
            e->part[k++] = err;
        x = s;
    }
    if (x != 0)
        e->part[k++] = x;
    e->n = k;
    assert_true(e->n < MAX_PARTS);
}

/* The expansion's value, rounded (faithfully: within one ulp). */
static double value(const struct expansion *e)
{
    struct expansion c = *e;
    double sum = 0;
    for (int i = 0; i < c.n; i++)
        sum += c.part[i]; /* increasing magnitude, nonoverlapping */
    return sum;
}

/* The term as exact_add keeps it: truncated toward zero to a multiple of
 * 2^low (so the reference and exact see the same terms). */
static double kept(double x, int low)
{
    return ldexp(trunc(ldexp(x, -low)), low);
}

static double exact_sum(const struct exact_format *f, const double *x, int64_t n)
{
    int64_t *acc = calloc((size_t)exact_size(f, 1), sizeof *acc);
    double v;
    for (int64_t i = 0; i < n; i++)
        exact_add(f, acc, x + i, 1);
    exact_value(f, acc, 1, &v);
    free(acc);
    return v;
}

static void expect_exact(const struct exact_format *f, const double *x, int64_t n)
{
    struct expansion e = {.n = 0};
    for (int64_t i = 0; i < n; i++)
        grow(&e, kept(x[i], f->low));
    const double want = value(&e), got = exact_sum(f, x, n);
    const double ulp = nextafter(fabs(want), INFINITY) - fabs(want);
    if (!(fabs(got - want) <= 2 * ulp)) /* both rounded faithfully */
        fail_msg("exact sum %.17g, reference %.17g", got, want);
}

static void test_adversarial_sums(void **state)
{
    (void)state;
    const struct exact_format *f = &EXACT_STATE;
    /* Huge cancellation: a plain sum in this order gives 0. */
    const double cancel[] = {1e16, 1.0, -1e16};
    assert_true(exact_sum(f, cancel, 3) == 1.0);
    expect_exact(f, cancel, 3);
    const double cancel2[] = {0x1p59, 0x1p-99, -0x1p59, 0x1p-99, 3.0, -3.0};
    assert_true(exact_sum(f, cancel2, 6) == 0x1p-98);
    /* Signed zeros and denormals (below 2^-100: held as zero). */
    const double zeros[] = {-0.0, 0.0, 4.9e-324, -2.2e-308, 0x1p-101};
    assert_true(exact_sum(f, zeros, 5) == 0.0);
    /* The edge of the range: just below 2^60 is held, 2^60 is not. */
    const double edge[] = {0x1p60 - 0x1p8, -0x1p59, 0x1p-100};
    expect_exact(f, edge, 3);
    const double over[] = {1.0, 0x1p60};
    assert_true(isnan(exact_sum(f, over, 2)));
    const double inf[] = {1.0, INFINITY}, nan_[] = {NAN};
    assert_true(isnan(exact_sum(f, inf, 2)) && isnan(exact_sum(f, nan_, 1)));
    /* Many sums side by side, each of one term of either sign: every term
     * comes back as it went in (down to 2^-100). */
    enum { SIDE = 1000 };
    double one[SIDE], back[SIDE];
    int64_t *acc = calloc((size_t)exact_size(f, SIDE), sizeof *acc);
    srand(3);
    for (int i = 0; i < SIDE; i++)
        one[i] = ldexp((double)rand() / RAND_MAX - 0.5, rand() % 150 - 95);
    exact_add(f, acc, one, SIDE);
    exact_value(f, acc, SIDE, back);
    for (int i = 0; i < SIDE; i++)
        if (back[i] != kept(one[i], f->low))
            fail_msg("term %.17g came back as %.17g", one[i], back[i]);
    free(acc);
    /* Mixed magnitudes over the whole range, both signs, many cancellations. */
    enum { N = 3000 };
    double *x = malloc(N * sizeof *x);
    srand(7);
    for (int i = 0; i < N; i++) {
        const double mantissa = (double)rand() / RAND_MAX + 0.5;
        x[i] = ldexp(i % 2 ? mantissa : -mantissa, rand() % 158 - 99);
    }
    expect_exact(f, x, N);
    for (int i = 0; i < N; i++)
        x[i] = ldexp((double)(rand() - RAND_MAX / 2), rand() % 300 - 190);
    expect_exact(&EXACT_SCALAR, x, N); /* the wide range */
    free(x);
}

/* The same bits for any order of the terms and any grouping of them into
 * accumulators that are then added as integers. */
static void test_order_and_grouping(void **state)
{
    (void)state;
    enum { N = 1000, VALUES = 3 };
    const struct exact_format *f = &EXACT_STATE;
    double x[N * VALUES], first[VALUES];
    srand(11);
    for (int i = 0; i < N * VALUES; i++)
        x[i] = ldexp((double)rand() / RAND_MAX - 0.5, rand() % 120 - 80);
    const int64_t size = exact_size(f, VALUES);
    int64_t *a = calloc((size_t)size, sizeof *a), *b = calloc((size_t)size, sizeof *b);
    for (int trial = 0; trial < 20; trial++) {
        for (int i = N - 1; i > 0; i--) { /* shuffle the terms (rows of VALUES) */
            const int j = rand() % (i + 1);
            for (int k = 0; k < VALUES; k++) {
                const double t = x[i * VALUES + k];
                x[i * VALUES + k] = x[j * VALUES + k];
                x[j * VALUES + k] = t;
            }
        }
        memset(a, 0, (size_t)size * sizeof *a);
        memset(b, 0, (size_t)size * sizeof *b);
        const int cut = rand() % N; /* two groups, added as integers */
        for (int i = 0; i < N; i++)
            exact_add(f, i < cut ? a : b, x + i * VALUES, VALUES);
        exact_carry(f, a, VALUES);
        for (int64_t k = 0; k < size; k++)
            a[k] += b[k];
        double sums[VALUES];
        exact_value(f, a, VALUES, sums);
        if (trial == 0)
            memcpy(first, sums, sizeof first);
        assert_memory_equal(sums, first, sizeof first);
    }
    free(a), free(b);
}

/* Every kernel path this CPU runs (kernels.h) has its own copy of the limb
 * loops: all give the same limbs, over both formats and across blocks. */
static void test_every_kernel_path_same_limbs(void **state)
{
    (void)state;
    enum { N = 1500 };
    double x[N];
    srand(12);
    for (int i = 0; i < N; i++)
        x[i] = ldexp((double)rand() / RAND_MAX - 0.5, rand() % 200 - 120);
    const struct exact_format *formats[] = {&EXACT_STATE, &EXACT_SCALAR};
    for (int fi = 0; fi < 2; fi++) {
        const struct exact_format *f = formats[fi];
        const int64_t size = exact_size(f, N);
        int64_t *first = calloc((size_t)size, sizeof *first);
        int64_t *acc = calloc((size_t)size, sizeof *acc);
        int paths = 0;
        for (int p = 0; kernel_paths[p]; p++) {
            char err[256];
            if (kernels_choose(kernel_paths[p]->name, err, sizeof err))
                continue;
            memset(acc, 0, (size_t)size * sizeof *acc);
            exact_add(f, acc, x, N);
            exact_add(f, acc, x, N);
            if (paths++ == 0)
                memcpy(first, acc, (size_t)size * sizeof *acc);
            assert_memory_equal(acc, first, (size_t)size * sizeof *acc);
        }
        assert_true(paths >= 1);
        free(first), free(acc);
    }
    kernels_choose(NULL, (char[8]){0}, 8);
}

/* Terms spread over the ranks in a rank-count dependent way: the reduced
 * sum is the same bits as one rank's sum of all of them. */
static void test_allreduce_any_ranks(void **state)
{
    (void)state;
    enum { N = 500 };
    const struct exact_format *f = &EXACT_STATE;
    double x[N];
    for (int i = 0; i < N; i++)
        x[i] = (i % 3 ? 1.0 : -1.0) * ldexp(1.0 + i / 7.0, (i * 37) % 140 - 95);
    int64_t acc[5] = {0};
    for (int i = test_rank; i < N; i += test_ranks)
        exact_add(f, acc, x + i, 1);
    double total;
    exact_allreduce(f, acc, 1, &total, MPI_COMM_WORLD);
    const double alone = exact_sum(f, x, N);
    assert_memory_equal(&total, &alone, sizeof total);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_adversarial_sums),
    cmocka_unit_test(test_order_and_grouping),
    cmocka_unit_test(test_allreduce_any_ranks),
    cmocka_unit_test(test_every_kernel_path_same_limbs),
};
MPI_CMOCKA_MAIN(tests)
