/*
 * Tests of rng: determinism, ranges, moments, permutations, independence
 * of keys.
 */
#include "mpi_cmocka.h"

#include <math.h>
#include <string.h>

#include "rng.h"

static void test_deterministic_and_keyed(void **state)
{
    (void)state;
    uint64_t a[4], b[4], c[4], d[4];
    rng_bits4(7, RNG_INIT, 1, 2, 3, 4, a);
    rng_bits4(7, RNG_INIT, 1, 2, 3, 4, b);
    rng_bits4(7, RNG_NOISE, 1, 2, 3, 4, c); /* other purpose */
    rng_bits4(8, RNG_INIT, 1, 2, 3, 4, d);  /* other seed */
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    assert_memory_not_equal(a, d, sizeof a);
    /* Every rank draws the same numbers for the same counter. */
    uint64_t root[4];
    memcpy(root, a, sizeof root);
    MPI_Bcast(root, 4, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    assert_memory_equal(a, root, sizeof a);
}

static void test_uniform_and_normal_moments(void **state)
{
    (void)state;
    const int n = 200000;
    double su = 0, umin = 1, umax = 0, s1 = 0, s2 = 0, s4 = 0;
    for (int i = 0; i < n / 4; i++) {
        double u[4], z[4];
        rng_uniform4(1, RNG_DATA, (uint64_t)i, 0, 0, 0, u);
        rng_normal4(1, RNG_DATA, (uint64_t)i, 1, 0, 0, z);
        for (int k = 0; k < 4; k++) {
            assert_true(u[k] > 0 && u[k] < 1);
            su += u[k];
            umin = fmin(umin, u[k]);
            umax = fmax(umax, u[k]);
            s1 += z[k];
            s2 += z[k] * z[k];
            s4 += z[k] * z[k] * z[k] * z[k];
        }
    }
    /* Bounds are about 5 standard errors of each estimate. */
    assert_close(su / n, 0.5, 0, 5 * sqrt(1.0 / 12 / n));
    assert_true(umin < 1e-4 && umax > 1 - 1e-4);
    assert_close(s1 / n, 0.0, 0, 5 / sqrt(n));
    assert_close(s2 / n, 1.0, 0, 5 * sqrt(2.0 / n));
    assert_close(s4 / n, 3.0, 0, 5 * sqrt(96.0 / n));
}

static void test_below_is_in_range_and_unbiased(void **state)
{
    (void)state;
    int counts[5] = {0};
    const int n = 50000;
    for (int i = 0; i < n / 4; i++) {
        uint64_t bits[4];
        rng_bits4(3, RNG_BATCH, (uint64_t)i, 0, 0, 0, bits);
        for (int k = 0; k < 4; k++) {
            uint64_t v = rng_below(bits[k], 5);
            assert_true(v < 5);
            counts[v]++;
        }
    }
    for (int v = 0; v < 5; v++)
        assert_close(counts[v], n / 5.0, 0, 5 * sqrt(n * 0.2 * 0.8));
    assert_int_equal(rng_below(UINT64_MAX, 7), 6);
    assert_int_equal(rng_below(0, 7), 0);
}

static void test_permutation(void **state)
{
    (void)state;
    enum { N = 37 };
    int64_t p[N], q[N];
    int seen[N] = {0};
    rng_permutation(5, RNG_ORDER, 11, N, p);
    rng_permutation(5, RNG_ORDER, 11, N, q);
    assert_memory_equal(p, q, sizeof p);
    for (int i = 0; i < N; i++) {
        assert_true(p[i] >= 0 && p[i] < N);
        seen[p[i]]++;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    rng_permutation(5, RNG_ORDER, 12, N, q);
    assert_memory_not_equal(p, q, sizeof p);
    /* Position 0 is uniform over the values: count value 0 at position 0. */
    int hits = 0;
    const int trials = 20000;
    int64_t r[4];
    for (int s = 0; s < trials; s++) {
        rng_permutation(9, RNG_ORDER, (uint64_t)s, 4, r);
        hits += r[0] == 0;
    }
    assert_close(hits, trials / 4.0, 0, 5 * sqrt(trials * 0.25 * 0.75));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_deterministic_and_keyed),
    cmocka_unit_test(test_uniform_and_normal_moments),
    cmocka_unit_test(test_below_is_in_range_and_unbiased),
    cmocka_unit_test(test_permutation),
};
MPI_CMOCKA_MAIN(tests)
