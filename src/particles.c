/*
 * particles: chunk layout and initial values (see particles.h).
 */
#include "particles.h"

#include <math.h>
#include <stdlib.h>

#include "log.h"

void particles_partition(int64_t width, int rank, int ranks, int64_t *first, int64_t *count)
{
    int64_t chunks = (width + MF_CHUNK - 1) / MF_CHUNK;
    int64_t c0 = chunks * rank / ranks;
    int64_t c1 = chunks * (rank + 1) / ranks;
    int64_t m0 = c0 * MF_CHUNK;
    int64_t m1 = c1 * MF_CHUNK < width ? c1 * MF_CHUNK : width;
    *first = m0;
    *count = m1 > m0 ? m1 - m0 : 0;
}

void particles_alloc(struct mf_particles *p, int64_t layers, int64_t width, int dim, int rank,
                     int ranks)
{
    p->layers = layers;
    p->width = width;
    p->dim = dim;
    particles_partition(width, rank, ranks, &p->first, &p->count);
    size_t n = (size_t)(layers * p->count);
    p->u = xmalloc(n * (size_t)dim * sizeof(double));
    p->w = xmalloc(n * (size_t)dim * sizeof(double));
    p->b = xmalloc(n * sizeof(double));
}

void particles_free(struct mf_particles *p)
{
    free(p->u);
    free(p->w);
    free(p->b);
    p->u = p->w = p->b = NULL;
}

void particles_init(struct mf_particles *p, double u_std, double w_std, double b_std,
                    uint64_t seed, enum rng_purpose purpose)
{
    const int D = p->dim;
    const double w_scale = w_std / sqrt((double)D);
    for (int64_t l = 0; l < p->layers; l++)
        for (int64_t i = 0; i < p->count; i++) {
            int64_t local = l * p->count + i;
            double *u = p->u + local * D, *w = p->w + local * D;
            /* Components 0..D-1 are u, D..2D-1 are w, 2D is b; block j/4
             * of counter (l, m) holds components j..j+3. */
            double z[4];
            for (int j = 0; j < 2 * D + 1; j++) {
                if (j % 4 == 0)
                    rng_normal4(seed, purpose, (uint64_t)l, (uint64_t)(p->first + i),
                                (uint64_t)j / 4, 0, z);
                if (j < D)
                    u[j] = u_std * z[j % 4];
                else if (j < 2 * D)
                    w[j - D] = w_scale * z[j % 4];
                else
                    p->b[local] = b_std * z[j % 4];
            }
        }
}

