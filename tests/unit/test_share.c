/*
 * Tests of work sharing on one node: every chunk of every pass is computed
 * exactly once over the ranks, whatever the timing, each group's view shows
 * its owner's values of the right layer, a late rank's groups go to the
 * others, exact sums over the chunks are the same bits whoever computed
 * which, and stores through another rank's view reach the owner. Run with
 * 1 to 4 ranks.
 */
#include "mpi_cmocka.h"

#include <string.h>
#include <time.h>

#include "comm.h"
#include "config.h"
#include "exact.h"
#include "particles.h"
#include "share.h"

/* 151 chunks: on 1 rank more than MF_GROUPS, so groups of 3 chunks. */
enum { L = 3, M = 150 * MF_CHUNK + 17, D = 2, CHUNKS = (M + MF_CHUNK - 1) / MF_CHUNK, PASSES = 24 };

static void sleep_ms(int ms)
{
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}

/* Work sharing over all ranks, particle (l, m) holding u = (l M + m, -1),
 * w = (0, 0), b = -(l M + m), visible to every rank on return. */
static struct mf_share *labelled_share(struct mf_particles *p)
{
    particles_layout(p, L, M, D, MF_PRECISION_DOUBLE, test_rank, test_ranks);
    struct mf_share *s = share_create(p, 1, MPI_COMM_WORLD);
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
 * share_begin) with rank 0 late, so that the others take its groups; the
 * rest run free, rank 0 or the odd ranks sleeping now and then; in some, the
 * odd ranks keep to their own groups. Counts per pass and chunk, summed over
 * ranks, must all be 1. */
static void test_every_chunk_once(void **state)
{
    (void)state;
    struct mf_particles p;
    struct mf_share *s = labelled_share(&p);
    const int64_t group_size = particles_group_size(p.count);
    double *count = calloc(PASSES * CHUNKS, sizeof *count);
    double foreign_in_late_passes = 0;
    for (int pass = 0; pass < PASSES; pass++) {
        const int64_t l = pass % L;
        const int together = pass % 2 == 0, steal = !(pass % 4 == 3 && test_rank % 2);
        share_begin(s, steal);
        if (together)
            comm_barrier(MPI_COMM_WORLD);
        if (test_rank == 0 && (together || pass % 3 == 0))
            sleep_ms(50);
        else if (!together && test_rank % 2 && pass % 5 == 1)
            sleep_ms(10);
        struct mf_group g;
        while (share_next(s, &g)) {
            const int own = g.owner->first == p.first;
            assert_int_equal(g.i0 % group_size, 0);
            assert_true(g.i0 < g.i1 && g.i1 <= g.owner->count);
            assert_int_equal(g.i1 - g.i0, g.i0 + group_size <= g.owner->count
                                              ? group_size : g.owner->count - g.i0);
            if (!steal)
                assert_true(own);
            for (int64_t i0 = g.i0; i0 < g.i1; i0 += MF_CHUNK) {
                const struct mf_chunk c = particles_chunk(g.owner, l, i0);
                assert_int_equal(c.first % MF_CHUNK, 0);
                assert_int_equal(c.size, c.first + MF_CHUNK <= M ? MF_CHUNK : M % MF_CHUNK);
                for (int64_t i = 0; i < c.size; i++) {
                    assert_true(c.u[i * D] == (double)(l * M + c.first + i));
                    assert_true(c.u[i * D + 1] == -1 && c.b[i] == -c.u[i * D]);
                }
                count[pass * CHUNKS + c.first / MF_CHUNK] += 1;
                if (together && !own)
                    foreign_in_late_passes += 1;
            }
        }
        share_end(s);
    }
    comm_sum(count, PASSES * CHUNKS, MPI_COMM_WORLD);
    for (int i = 0; i < PASSES * CHUNKS; i++)
        assert_true(count[i] == 1);
    /* Rank 0 owns at least one group and starts 50 ms late in each of the
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

/* A value per chunk whose sums depend on their order: about 1, and 1e16
 * for the first chunk of a layer. */
static double chunk_value(int64_t l, int64_t first)
{
    const int64_t k = l * CHUNKS + first / MF_CHUNK;
    return first == 0 ? 1e16 : 1.0 + 1.0 / (double)(k + 1);
}

/* Every rank adds the chunk values it computes, whoever owns them, to its
 * exact accumulator; the reduced total must be the same bits as one rank's
 * exact sum of all the values, in whatever order, though plain sums of the
 * same values differ with the order. */
static void test_exact_sums_whoever_computes(void **state)
{
    (void)state;
    struct mf_particles p;
    struct mf_share *s = labelled_share(&p);
    double lent = 0;
    for (int pass = 0; pass < 6; pass++) {
        const int64_t l = pass % L;
        int64_t acc[5] = {0}, whole[5] = {0};
        share_begin(s, 1);
        comm_barrier(MPI_COMM_WORLD);
        if (test_rank == 0)
            sleep_ms(30);
        struct mf_group g;
        while (share_next(s, &g)) {
            lent += g.owner->first != p.first;
            for (int64_t i0 = g.i0; i0 < g.i1; i0 += MF_CHUNK) {
                const double v = chunk_value(l, g.owner->first + i0);
                exact_add(&EXACT_STATE, acc, &v, 1);
            }
        }
        share_end(s);
        double total, expected, forwards = 0, backwards = 0;
        exact_allreduce(&EXACT_STATE, acc, 1, &total, MPI_COMM_WORLD);
        for (int64_t c = CHUNKS - 1; c >= 0; c--) {
            const double v = chunk_value(l, c * MF_CHUNK);
            exact_add(&EXACT_STATE, whole, &v, 1);
            backwards += v;
        }
        for (int64_t c = 0; c < CHUNKS; c++)
            forwards += chunk_value(l, c * MF_CHUNK);
        exact_value(&EXACT_STATE, whole, 1, &expected);
        assert_true(total == expected);
        assert_true(backwards != forwards); /* the values are order-sensitive */
    }
    /* Rank 0 starts 30 ms late in every pass: the others take its groups. */
    comm_sum(&lent, 1, MPI_COMM_WORLD);
    assert_true(test_ranks > 1 ? lent >= 6 : lent == 0);
    particles_free(&p);
    share_destroy(s);
}

/* Values written through another rank's group view are the owner's. */
static void test_writes_reach_the_owner(void **state)
{
    (void)state;
    struct mf_particles p;
    struct mf_share *s = labelled_share(&p);
    struct mf_group g;
    share_begin(s, 1);
    comm_barrier(MPI_COMM_WORLD);
    while (share_next(s, &g))
        for (int64_t i0 = g.i0; i0 < g.i1; i0 += MF_CHUNK) {
            const struct mf_chunk c = particles_chunk(g.owner, 1, i0);
            for (int64_t i = 0; i < c.size; i++)
                c.w[i * D + 1] = 1000.0 + test_rank; /* who computed it */
        }
    share_end(s); /* the barrier and its syncs order the stores */
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
    cmocka_unit_test(test_exact_sums_whoever_computes),
    cmocka_unit_test(test_writes_reach_the_owner),
};
MPI_CMOCKA_MAIN(tests)
