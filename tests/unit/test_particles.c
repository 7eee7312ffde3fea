/*
 * Tests of particles: the chunk partition, the nested width coupling of
 * initial values, and moving particles between ranks.
 */
#include "mpi_cmocka.h"

#include <string.h>

#include "config.h"
#include "particles.h"

/* Every rank count from 1 to 9 tiles [0, M) with chunk-aligned pieces. */
static void test_partition_tiles_width(void **state)
{
    (void)state;
    const int64_t widths[] = {1, 5, MF_CHUNK - 1, MF_CHUNK, MF_CHUNK + 1, 3 * MF_CHUNK + 7, 1000};
    for (size_t w = 0; w < sizeof widths / sizeof widths[0]; w++)
        for (int ranks = 1; ranks <= 9; ranks++) {
            int64_t next = 0, empty = 0;
            for (int r = 0; r < ranks; r++) {
                int64_t first, count;
                particles_partition(widths[w], r, ranks, &first, &count);
                assert_true(count >= 0);
                if (count == 0) {
                    empty++;
                    continue;
                }
                assert_int_equal(first, next);
                assert_int_equal(first % MF_CHUNK, 0);
                next = first + count;
            }
            assert_int_equal(next, widths[w]);
            int64_t chunks = (widths[w] + MF_CHUNK - 1) / MF_CHUNK;
            assert_int_equal(empty, ranks > chunks ? ranks - chunks : 0);
        }
}

/* Component k of particle (l, m) in layout p, or NAN when not owned. */
static double component(const struct mf_particles *p, int64_t l, int64_t m, int k)
{
    if (m < p->first || m >= p->first + p->count)
        return NAN;
    int64_t local = l * p->count + (m - p->first);
    int D = p->dim;
    return k < D ? p->u[local * D + k] : k < 2 * D ? p->w[local * D + k - D] : p->b[local];
}

/* Particle (l, m) starts at the same value for widths M and 2M and for any
 * rank count, including the real ranks of this job. */
static void test_width_coupling(void **state)
{
    (void)state;
    const int64_t L = 3, M = 2 * MF_CHUNK + 9;
    const int D = 5;
    struct mf_particles ref, wide, mine;
    particles_alloc(&ref, L, M, D, MF_PRECISION_DOUBLE, 0, 1);
    particles_init(&ref, 1.0, 2.0, 0.5, 42, RNG_INIT);
    particles_alloc(&wide, L, 2 * M, D, MF_PRECISION_DOUBLE, 0, 1);
    particles_init(&wide, 1.0, 2.0, 0.5, 42, RNG_INIT);
    particles_alloc(&mine, L, M, D, MF_PRECISION_DOUBLE, test_rank, test_ranks);
    particles_init(&mine, 1.0, 2.0, 0.5, 42, RNG_INIT);
    for (int64_t l = 0; l < L; l++)
        for (int64_t m = 0; m < M; m++)
            for (int k = 0; k < 2 * D + 1; k++) {
                double v = component(&ref, l, m, k);
                assert_true(v == component(&wide, l, m, k));
                double own = component(&mine, l, m, k);
                assert_true(isnan(own) || own == v);
            }
    for (int ranks = 2; ranks <= 5; ranks++)
        for (int r = 0; r < ranks; r++) {
            struct mf_particles part;
            particles_alloc(&part, L, M, D, MF_PRECISION_DOUBLE, r, ranks);
            particles_init(&part, 1.0, 2.0, 0.5, 42, RNG_INIT);
            for (int64_t l = 0; l < L; l++)
                for (int64_t m = part.first; m < part.first + part.count; m++)
                    for (int k = 0; k < 2 * D + 1; k++)
                        assert_true(component(&part, l, m, k) == component(&ref, l, m, k));
            particles_free(&part);
        }
    particles_free(&ref);
    particles_free(&wide);
    particles_free(&mine);
}

/* The stds are those documented: u ~ u_std, w ~ w_std / sqrt(D), b ~ b_std. */
static void test_init_scales(void **state)
{
    (void)state;
    const int64_t L = 2, M = 20000;
    const int D = 4;
    struct mf_particles p;
    particles_alloc(&p, L, M, D, MF_PRECISION_DOUBLE, 0, 1);
    particles_init(&p, 3.0, 2.0, 0.5, 1, RNG_INIT);
    double su = 0, sw = 0, sb = 0;
    const int64_t n = L * M;
    for (int64_t i = 0; i < n * D; i++) {
        su += p.u[i] * p.u[i];
        sw += p.w[i] * p.w[i];
    }
    for (int64_t i = 0; i < n; i++)
        sb += p.b[i] * p.b[i];
    assert_close(su / (n * D), 9.0, 0.03, 0);
    assert_close(sw / (n * D), 4.0 / D, 0.03, 0);
    assert_close(sb / n, 0.25, 0.03, 0);
    particles_free(&p);
}

/* Repartitioning moves every particle to its new owner unchanged, through
 * shares that grow, shrink, shift past each other and shrink to one chunk,
 * on the ranks of this job. */
static void test_repartition_keeps_values(void **state)
{
    (void)state;
    const int64_t L = 3, chunks = 4 * test_ranks + 3, M = chunks * MF_CHUNK - 5;
    const int D = 3;
    struct mf_particles ref, p;
    particles_alloc(&ref, L, M, D, MF_PRECISION_DOUBLE, 0, 1);
    particles_init(&ref, 1.0, 2.0, 0.5, 7, RNG_INIT);
    particles_alloc(&p, L, M, D, MF_PRECISION_DOUBLE, test_rank, test_ranks);
    particles_init(&p, 1.0, 2.0, 0.5, 7, RNG_INIT);
    int64_t *bounds = xmalloc(((size_t)test_ranks + 1) * sizeof *bounds);
    for (int shape = 0; shape < 4; shape++) {
        /* Chunk cuts: 0 the first rank holds all but one chunk per other
         * rank, 1 the last rank does, 2 alternating 1 and 7 chunks with the
         * rest on the last rank, 3 the even split again. */
        bounds[0] = 0;
        for (int r = 1; r < test_ranks; r++) {
            int64_t cut = shape == 0   ? chunks - (test_ranks - r)
                          : shape == 1 ? r
                          : shape == 2 ? (bounds[r - 1] / MF_CHUNK) + (r % 2 ? 7 : 1)
                                       : chunks * r / test_ranks;
            bounds[r] = cut * MF_CHUNK;
        }
        bounds[test_ranks] = M;
        particles_repartition(&p, bounds, MPI_COMM_WORLD);
        assert_int_equal(p.first, bounds[test_rank]);
        assert_int_equal(p.count, bounds[test_rank + 1] - bounds[test_rank]);
        for (int64_t l = 0; l < L; l++)
            for (int64_t m = p.first; m < p.first + p.count; m++)
                for (int k = 0; k < 2 * D + 1; k++)
                    assert_true(component(&p, l, m, k) == component(&ref, l, m, k));
    }
    free(bounds);
    particles_free(&ref);
    particles_free(&p);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_partition_tiles_width),
    cmocka_unit_test(test_width_coupling),
    cmocka_unit_test(test_init_scales),
    cmocka_unit_test(test_repartition_keeps_values),
};
MPI_CMOCKA_MAIN(tests)
