/*
 * Tests of work sharing on one node: every chunk of every pass is computed
 * exactly once over the ranks, whatever the timing, each group's view shows
 * its owner's values of the right layer, a late rank's groups go to the
 * others (at most MF_SLOTS of them), and the sums come back to the owner in
 * group order, so that totals are those of a pass without sharing, bit for
 * bit. Run with 1 to 4 ranks.
 */
#include "mpi_cmocka.h"

#include <string.h>
#include <time.h>

#include "comm.h"
#include "particles.h"
#include "share.h"

/* 151 chunks: on 1 rank more than MF_GROUPS, so groups of 3 chunks. */
enum { L = 3, M = 150 * MF_CHUNK + 17, D = 2, CHUNKS = (M + MF_CHUNK - 1) / MF_CHUNK, PASSES = 24 };

static void sleep_ms(int ms)
{
    struct timespec t = {0, ms * 1000000L};
    nanosleep(&t, NULL);
}

/* Work sharing over all ranks, with slots for sums of up to 2 x D + 1
 * doubles, particle (l, m) holding u = (l M + m, -1), w = (0, 0), b =
 * -(l M + m), visible to every rank on return. */
static struct mf_share *labelled_share(struct mf_particles *p)
{
    struct mf_share *s = share_create(p, L, M, D, 2, 1, MPI_COMM_WORLD);
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
    double foreign_in_late_passes = 0, sums[1] = {0};
    for (int pass = 0; pass < PASSES; pass++) {
        const int64_t l = pass % L;
        const int together = pass % 2 == 0, steal = !(pass % 4 == 3 && test_rank % 2);
        share_begin(s, steal, 1);
        if (together)
            comm_barrier(MPI_COMM_WORLD);
        if (test_rank == 0 && (together || pass % 3 == 0))
            sleep_ms(50);
        else if (!together && test_rank % 2 && pass % 5 == 1)
            sleep_ms(10);
        struct mf_group g;
        double lent_by[4] = {0}; /* groups per owner computed by others */
        while (share_next(s, &g)) {
            const int own = g.sums == NULL;
            assert_int_equal(own, g.owner->first == p.first);
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
            for (int q = 0; q < test_ranks && !own; q++) {
                int64_t first, n;
                particles_partition(M, q, test_ranks, &first, &n);
                lent_by[q] += first == g.owner->first;
            }
        }
        share_end(s, sums);
        comm_sum(lent_by, 4, MPI_COMM_WORLD);
        for (int q = 0; q < 4; q++)
            assert_true(lent_by[q] <= MF_SLOTS);
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

/* The sum, from zero and in order, of the chunk values of p's group of
 * layer l starting at owned index i0. */
static double group_value(const struct mf_particles *p, int64_t l, int64_t i0, int64_t size)
{
    double sum = 0;
    for (int64_t c = i0; c < i0 + size && c < p->count; c += MF_CHUNK)
        sum += chunk_value(l, p->first + c);
    return sum;
}

/* Each group's sums are summed from zero chunk by chunk, own groups added to
 * the total as they are done and the others' by share_end: the total must be
 * that of the owner's groups summed in order, bit for bit, however many of
 * them were lent. Sums larger than the slots are never lent. */
static void test_sums_in_group_order(void **state)
{
    (void)state;
    struct mf_particles p;
    struct mf_share *s = labelled_share(&p);
    const int64_t group_size = particles_group_size(p.count);
    double lent = 0;
    for (int pass = 0; pass < 8; pass++) {
        const int64_t l = pass % L;
        const int64_t count = pass < 6 ? 2 : 2 * D + 2; /* the last two: too large to lend */
        double total[2 * D + 2] = {0}, group[2 * D + 2];
        share_begin(s, 1, count);
        comm_barrier(MPI_COMM_WORLD);
        if (test_rank == 0)
            sleep_ms(30);
        struct mf_group g;
        while (share_next(s, &g)) {
            double *sums = g.sums ? g.sums : group;
            memset(sums, 0, (size_t)count * sizeof *sums);
            for (int64_t i0 = g.i0; i0 < g.i1; i0 += MF_CHUNK) {
                sums[0] += chunk_value(l, g.owner->first + i0);
                sums[1] += 1;
            }
            if (g.sums)
                lent += 1, assert_true(count == 2);
            else
                for (int64_t i = 0; i < count; i++)
                    total[i] += group[i];
        }
        share_end(s, total);
        double expected = 0, backwards = 0;
        for (int64_t i0 = 0; i0 < p.count; i0 += group_size)
            expected += group_value(&p, l, i0, group_size);
        for (int64_t i0 = (p.count - 1) / group_size * group_size; i0 >= 0; i0 -= group_size)
            backwards += group_value(&p, l, i0, group_size);
        assert_true(total[0] == expected);
        assert_true(total[1] == (double)((p.count + MF_CHUNK - 1) / MF_CHUNK));
        if (test_ranks == 1)
            assert_true(backwards != expected); /* the order shows */
    }
    /* Rank 0 starts 30 ms late in the 6 passes it may lend in. */
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
    double sums[1] = {0};
    struct mf_group g;
    share_begin(s, 1, 1);
    comm_barrier(MPI_COMM_WORLD);
    while (share_next(s, &g))
        for (int64_t i0 = g.i0; i0 < g.i1; i0 += MF_CHUNK) {
            const struct mf_chunk c = particles_chunk(g.owner, 1, i0);
            for (int64_t i = 0; i < c.size; i++)
                c.w[i * D + 1] = 1000.0 + test_rank; /* who computed it */
        }
    share_end(s, sums); /* the barrier and its syncs order the stores */
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
    cmocka_unit_test(test_sums_in_group_order),
    cmocka_unit_test(test_writes_reach_the_owner),
};
MPI_CMOCKA_MAIN(tests)
