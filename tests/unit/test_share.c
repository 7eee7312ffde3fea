/*
 * Tests of work sharing on one node: every chunk of every pass is computed
 * exactly once over the ranks, whatever the timing, each chunk view shows
 * its owner's values of the right layer, and a late rank's chunks go to the
 * others. Run with 1 to 4 ranks.
 */
#include "mpi_cmocka.h"

#include <string.h>
#include <time.h>

#include "comm.h"
#include "particles.h"
#include "share.h"

enum { L = 3, M = 5 * MF_CHUNK + 17, D = 2, CHUNKS = (M + MF_CHUNK - 1) / MF_CHUNK, PASSES = 24 };

static void sleep_ms(int ms)
{
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}

/* Work sharing over all ranks, particle (l, m) holding u = (l M + m, -1),
 * w = (0, 0), b = -(l M + m), visible to every rank on return. */
static struct mf_share *labelled_share(struct mf_particles *p)
{
    struct mf_share *s = share_create(p, L, M, D, MPI_COMM_WORLD);
    for (int64_t l = 0; l < L; l++)
        for (int64_t i = 0; i < p->count; i++) {
            const int64_t at = l * p->count + i;
            p->u[at * D] = (double)(l * M + p->first + i);
            p->u[at * D + 1] = -1;
            p->w[at * D] = p->w[at * D + 1] = 0;
            p->b[at] = -(double)(l * M + p->first + i);
        }
    comm_barrier(MPI_COMM_WORLD);
    return s;
}

/* Passes over the layers in turn. Some start together (a barrier after
 * share_begin) with rank 0 late, so that the others take its chunks; the
 * rest run free, rank 0 or the odd ranks sleeping now and then; in some, the
 * odd ranks keep to their own chunks. Counts per pass and chunk, summed over
 * ranks, must all be 1. */
static void test_every_chunk_once(void **state)
{
    (void)state;
    struct mf_particles p;
    struct mf_share *s = labelled_share(&p);
    double *count = calloc(PASSES * CHUNKS, sizeof *count);
    double foreign_in_late_passes = 0;
    for (int pass = 0; pass < PASSES; pass++) {
        const int64_t l = pass % L;
        const int together = pass % 2 == 0, steal = !(pass % 4 == 3 && test_rank % 2);
        share_begin(s, l, steal);
        if (together)
            comm_barrier(MPI_COMM_WORLD);
        if (test_rank == 0 && (together || pass % 3 == 0))
            sleep_ms(50);
        else if (!together && test_rank % 2 && pass % 5 == 1)
            sleep_ms(10);
        struct mf_chunk c;
        while (share_next(s, &c)) {
            assert_int_equal(c.first % MF_CHUNK, 0);
            assert_int_equal(c.size, c.first + MF_CHUNK <= M ? MF_CHUNK : M % MF_CHUNK);
            assert_int_equal(c.own, c.first >= p.first && c.first < p.first + p.count);
            if (!steal)
                assert_true(c.own);
            if (c.own)
                assert_int_equal(c.offset, l * p.count + c.first - p.first);
            for (int64_t i = 0; i < c.size; i++) {
                assert_true(c.u[i * D] == (double)(l * M + c.first + i));
                assert_true(c.u[i * D + 1] == -1 && c.b[i] == -c.u[i * D]);
            }
            count[pass * CHUNKS + c.first / MF_CHUNK] += 1;
            if (together && !c.own)
                foreign_in_late_passes += 1;
        }
    }
    comm_sum(count, PASSES * CHUNKS, MPI_COMM_WORLD);
    for (int i = 0; i < PASSES * CHUNKS; i++)
        assert_true(count[i] == 1);
    /* Rank 0 owns at least one chunk and starts 50 ms late in each of the
     * 12 passes that begin together: the others, done with theirs, take it. */
    comm_sum(&foreign_in_late_passes, 1, MPI_COMM_WORLD);
    if (test_ranks > 1)
        assert_true(foreign_in_late_passes >= 12);
    else
        assert_true(foreign_in_late_passes == 0);
    double computed, foreign;
    share_totals(s, MPI_COMM_WORLD, &computed, &foreign);
    assert_true(computed == PASSES * CHUNKS && foreign >= foreign_in_late_passes);
    free(count);
    particles_free(&p);
    share_destroy(s);
}

/* Values written through another rank's chunk view are the owner's. */
static void test_writes_reach_the_owner(void **state)
{
    (void)state;
    struct mf_particles p;
    struct mf_share *s = labelled_share(&p);
    share_begin(s, 1, 1);
    comm_barrier(MPI_COMM_WORLD);
    struct mf_chunk c;
    while (share_next(s, &c))
        for (int64_t i = 0; i < c.size; i++)
            c.w[i * D + 1] = 1000.0 + test_rank; /* who computed it */
    comm_barrier(MPI_COMM_WORLD);
    share_begin(s, 0, 1); /* a later pass: the barrier and this sync order the stores */
    while (share_next(s, &c))
        ;
    for (int64_t i = 0; i < p.count; i++) {
        const double by = p.w[(1 * p.count + i) * D + 1];
        assert_true(by >= 1000.0 && by < 1000.0 + test_ranks);
        assert_true(p.w[(0 * p.count + i) * D + 1] == 0); /* other layers untouched */
    }
    particles_free(&p);
    share_destroy(s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_chunk_once),
    cmocka_unit_test(test_writes_reach_the_owner),
};
MPI_CMOCKA_MAIN(tests)
