/*
 * Tests of balance: the plan that moves chunks from slow ranks to fast ones,
 * and a training run whose particles change rank midway.
 */
#include "mpi_cmocka.h"

#include <string.h>

#include "balance.h"
#include "config.h"

/* Bounds of an even split of `chunks` whole chunks over `ranks`. */
static void even(int ranks, int64_t chunks, int64_t *bounds)
{
    for (int r = 0; r <= ranks; r++)
        bounds[r] = chunks * r / ranks * MF_CHUNK;
}

/* Equal times, or differences under the tolerance, move nothing. */
static void test_balanced_stays(void **state)
{
    (void)state;
    int64_t old[4], bounds[4];
    even(3, 30, old);
    const double equal[] = {2.0, 2.0, 2.0}, close[] = {2.0, 2.05, 1.98};
    assert_int_equal(balance_plan(3, old, equal, bounds), 0);
    assert_memory_equal(bounds, old, sizeof old);
    assert_int_equal(balance_plan(3, old, close, bounds), 0);
    assert_memory_equal(bounds, old, sizeof old);
}

/* Two ranks with 50 chunks each, the second twice as slow: speed shares are
 * 2/3 and 1/3, so halfway is 58.33 and 41.67 chunks, cut at chunk 58. */
static void test_moves_halfway_to_speed(void **state)
{
    (void)state;
    int64_t old[3], bounds[3];
    even(2, 100, old);
    const double busy[] = {1.0, 2.0};
    assert_int_equal(balance_plan(2, old, busy, bounds), 8 * MF_CHUNK);
    assert_int_equal(bounds[0], 0);
    assert_int_equal(bounds[1], 58 * MF_CHUNK);
    assert_int_equal(bounds[2], 100 * MF_CHUNK);
}

/* Repeated plans with times proportional to work converge to shares
 * proportional to speed, keep one chunk on a very slow rank, keep the last
 * short chunk at the end and the bounds increasing. */
static void test_converges_to_speed(void **state)
{
    (void)state;
    enum { R = 4 };
    const double cost[R] = {1.0, 3.0, 1.0, 2000.0}; /* seconds per chunk */
    const int64_t width = 600 * MF_CHUNK - 17;
    int64_t bounds[R + 1], next[R + 1];
    even(R, 600, bounds);
    bounds[R] = width;
    for (int it = 0; it < 30; it++) {
        double busy[R];
        for (int r = 0; r < R; r++)
            busy[r] = cost[r] * (double)(bounds[r + 1] - bounds[r]) / MF_CHUNK;
        balance_plan(R, bounds, busy, next);
        assert_int_equal(next[0], 0);
        assert_int_equal(next[R], width);
        for (int r = 0; r < R; r++) {
            assert_true(next[r + 1] - next[r] >= (r < R - 1 ? MF_CHUNK : MF_CHUNK - 17));
            assert_int_equal(next[r] % MF_CHUNK, 0);
        }
        memcpy(bounds, next, sizeof bounds);
    }
    /* Speeds 1, 1/3, 1, 1/2000 of 600 chunks: 257, 86, 257, and one. */
    const double expect[R] = {257.0, 85.6, 257.0, 1.0};
    for (int r = 0; r < R; r++)
        assert_close((double)(bounds[r + 1] - bounds[r]) / MF_CHUNK, expect[r], 0.02, 1.0);
}

/* Nothing is planned for one rank, fewer chunks than ranks, a rank without
 * particles or a rank without a time. */
static void test_nothing_to_plan(void **state)
{
    (void)state;
    int64_t one[2] = {0, 10 * MF_CHUNK}, bounds[4];
    const double busy1[] = {1.0};
    assert_int_equal(balance_plan(1, one, busy1, bounds), 0);
    int64_t few[4] = {0, MF_CHUNK, 2 * MF_CHUNK, 2 * MF_CHUNK};
    const double busy3[] = {1.0, 5.0, 0.0};
    assert_int_equal(balance_plan(3, few, busy3, bounds), 0);
    int64_t some[4] = {0, 5 * MF_CHUNK, 10 * MF_CHUNK, 15 * MF_CHUNK};
    const double no_time[] = {1.0, 5.0, 0.0};
    assert_int_equal(balance_plan(3, some, no_time, bounds), 0);
    assert_memory_equal(bounds, some, sizeof some);
}

/* balance_particles on this job's ranks: a rank that reports itself slow
 * loses particles, the shares are the plan's, and every particle keeps its
 * values. */
static void test_balance_particles_moves_work(void **state)
{
    (void)state;
    const int64_t L = 2, M = 8 * MF_CHUNK * test_ranks;
    struct mf_particles ref, p;
    particles_alloc(&ref, L, M, 2, MF_PRECISION_DOUBLE, 0, 1);
    particles_init(&ref, 1.0, 1.0, 1.0, 5, RNG_INIT);
    particles_alloc(&p, L, M, 2, MF_PRECISION_DOUBLE, test_rank, test_ranks);
    particles_init(&p, 1.0, 1.0, 1.0, 5, RNG_INIT);
    const int64_t before = p.count;
    int64_t *old = xmalloc(2 * ((size_t)test_ranks + 1) * sizeof *old), *plan = old + test_ranks + 1;
    double *busy = xmalloc((size_t)test_ranks * sizeof *busy);
    for (int r = 0; r <= test_ranks; r++)
        old[r] = r * 8 * MF_CHUNK; /* the even split */
    for (int r = 0; r < test_ranks; r++)
        busy[r] = r == 0 ? 3.0 : 1.0;
    int64_t planned = balance_plan(test_ranks, old, busy, plan);
    struct balance b = {.busy = busy[test_rank], .moves = 2, .moved = 5};
    int64_t moved = balance_particles(&p, &b, MPI_COMM_WORLD);
    assert_int_equal(moved, planned);
    assert_true(b.busy == 0);
    assert_int_equal(b.moves, 2 + (planned > 0));
    assert_int_equal(b.moved, 5 + planned);
    assert_int_equal(p.first, plan[test_rank]);
    assert_int_equal(p.count, plan[test_rank + 1] - plan[test_rank]);
    if (test_ranks > 1)
        assert_true(moved > 0 && (test_rank == 0 ? p.count < before : p.count >= before));
    free(old);
    free(busy);
    for (int64_t l = 0; l < L; l++)
        for (int64_t i = 0; i < p.count; i++) {
            int64_t mine = l * p.count + i, theirs = l * M + p.first + i;
            assert_true(p.b[mine] == ref.b[theirs]);
            assert_true(p.u[2 * mine + 1] == ref.u[2 * theirs + 1]);
            assert_true(p.w[2 * mine] == ref.w[2 * theirs]);
        }
    particles_free(&ref);
    particles_free(&p);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_balanced_stays),
    cmocka_unit_test(test_moves_halfway_to_speed),
    cmocka_unit_test(test_converges_to_speed),
    cmocka_unit_test(test_nothing_to_plan),
    cmocka_unit_test(test_balance_particles_moves_work),
};
MPI_CMOCKA_MAIN(tests)
