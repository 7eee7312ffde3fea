/*
 * Tests of comm: reductions against sums formed by hand from every rank's
 * known contribution, statistics over ranks, agreement on failures, and
 * broadcasts. The abort paths end the process; the integration tests run
 * them (bad input from 2 and 3 ranks, a fatal write).
 */
#include "mpi_cmocka.h"

#include <stdlib.h>
#include <string.h>

#include "comm.h"

/* comm_sum over ranks: rank r contributes (r + 1) * (i + 1) to entry i. */
static void test_sum(void **state)
{
    (void)state;
    const long n = 1000;
    double *v = malloc((size_t)n * sizeof *v);
    for (long i = 0; i < n; i++)
        v[i] = (double)(test_rank + 1) * (double)(i + 1);
    comm_sum(v, n, MPI_COMM_WORLD);
    const double ranks = test_ranks * (test_ranks + 1) / 2.0;
    for (long i = 0; i < n; i++)
        assert_close(v[i], ranks * (double)(i + 1), 0, 0);
    free(v);
}

static void test_stats_and_max(void **state)
{
    (void)state;
    double min, mean, max;
    int slowest;
    comm_stats(10.0 + test_rank, MPI_COMM_WORLD, &min, &mean, &max, &slowest);
    assert_close(min, 10.0, 0, 0);
    assert_close(max, 10.0 + test_ranks - 1, 0, 0);
    assert_close(mean, 10.0 + (test_ranks - 1) / 2.0, 1e-15, 0);
    assert_int_equal(slowest, test_ranks - 1);
    assert_close(comm_max(-(double)test_rank, MPI_COMM_WORLD), 0.0, 0, 0);
}

/* The lowest failing rank, or -1; all_ok and or agree everywhere. */
static void test_agreement(void **state)
{
    (void)state;
    assert_int_equal(comm_first_failure(1, MPI_COMM_WORLD), -1);
    int last = test_ranks - 1;
    assert_int_equal(comm_first_failure(test_rank != last, MPI_COMM_WORLD), last);
    assert_int_equal(comm_first_failure(test_rank < 1, MPI_COMM_WORLD), test_ranks > 1 ? 1 : -1);
    assert_int_equal(comm_all_ok(test_rank != last, MPI_COMM_WORLD), 0);
    assert_int_equal(comm_all_ok(1, MPI_COMM_WORLD), 1);
    assert_int_equal(comm_or(1 << (test_rank % 3), MPI_COMM_WORLD),
                     test_ranks >= 3 ? 7 : (test_ranks == 2 ? 3 : 1));
    /* When every rank is fine, neither of the failure paths does anything. */
    comm_agree_or_exit(1, "never printed", 2, MPI_COMM_WORLD);
    comm_fatal_unless(1, MPI_COMM_WORLD, "never printed");
}

static void test_bcast_and_gather(void **state)
{
    (void)state;
    char text[64] = "";
    if (test_rank == 0)
        strcpy(text, "from rank 0");
    comm_bcast(text, sizeof text, 0, MPI_COMM_WORLD);
    assert_string_equal(text, "from rank 0");
    double *all = malloc((size_t)test_ranks * sizeof *all);
    comm_allgather(2.0 * test_rank, all, MPI_COMM_WORLD);
    for (int r = 0; r < test_ranks; r++)
        assert_close(all[r], 2.0 * r, 0, 0);
    free(all);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sum),
    cmocka_unit_test(test_stats_and_max),
    cmocka_unit_test(test_agreement),
    cmocka_unit_test(test_bcast_and_gather),
};
MPI_CMOCKA_MAIN(tests)
