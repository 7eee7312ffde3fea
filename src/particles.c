/*
 * particles: chunk layout and initial values (see particles.h).
 */
#include "particles.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "config.h"
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

void particles_layout(struct mf_particles *p, int64_t layers, int64_t width, int dim,
                      int precision, int rank, int ranks)
{
    *p = (struct mf_particles){
        .layers = layers, .width = width, .dim = dim, .precision = precision};
    particles_partition(width, rank, ranks, &p->first, &p->count);
}

size_t particles_value_size(const struct mf_particles *p)
{
    return p->precision == MF_PRECISION_MIXED ? sizeof(float) : sizeof(double);
}

int64_t particles_values(const struct mf_particles *p)
{
    return p->layers * p->count * (2 * (int64_t)p->dim + 1);
}

int particles_finite(const struct mf_particles *p)
{
    const int64_t n = p->layers * p->count, nd = n * p->dim;
    int finite = 1;
    if (p->precision == MF_PRECISION_MIXED) {
        for (int64_t i = 0; i < nd; i++)
            finite &= isfinite(p->uf[i]) && isfinite(p->wf[i]);
        for (int64_t i = 0; i < n; i++)
            finite &= isfinite(p->bf[i]) != 0;
        return finite;
    }
    for (int64_t i = 0; i < nd; i++)
        finite &= isfinite(p->u[i]) && isfinite(p->w[i]);
    for (int64_t i = 0; i < n; i++)
        finite &= isfinite(p->b[i]) != 0;
    return finite;
}

void particles_attach(struct mf_particles *p, void *values)
{
    const size_t n = (size_t)(p->layers * p->count) * particles_value_size(p);
    p->u = values;
    p->w = (void *)((char *)values + n * (size_t)p->dim);
    p->b = (void *)((char *)values + 2 * n * (size_t)p->dim);
    p->borrowed = 1;
}

void particles_alloc(struct mf_particles *p, int64_t layers, int64_t width, int dim,
                     int precision, int rank, int ranks)
{
    particles_layout(p, layers, width, dim, precision, rank, ranks);
    const char *what = "the particles' u, w (model.layers x model.width / ranks x model.dim "
                       "values each, of model.precision) and b";
    const size_t n = (size_t)(layers * p->count), size = particles_value_size(p);
    p->u = xmalloc_for(what, n * (size_t)dim, size);
    p->w = xmalloc_for(what, n * (size_t)dim, size);
    p->b = xmalloc_for(what, n, size);
}

void particles_free(struct mf_particles *p)
{
    if (!p->borrowed) {
        free(p->u);
        free(p->w);
        free(p->b);
    }
    p->u = p->w = p->b = NULL;
}

int64_t particles_group_size(int64_t count)
{
    const int64_t chunks = (count + MF_CHUNK - 1) / MF_CHUNK;
    return MF_CHUNK * (chunks > MF_GROUPS ? (chunks + MF_GROUPS - 1) / MF_GROUPS : 1);
}

struct mf_chunk particles_chunk(const struct mf_particles *p, int64_t l, int64_t i0)
{
    const int64_t offset = l * p->count + i0;
    const size_t size = particles_value_size(p);
    return (struct mf_chunk){
        .u = (void *)((char *)p->u + (size_t)(offset * p->dim) * size),
        .w = (void *)((char *)p->w + (size_t)(offset * p->dim) * size),
        .b = (void *)((char *)p->b + (size_t)offset * size),
        .first = p->first + i0,
        .size = p->count - i0 < MF_CHUNK ? p->count - i0 : MF_CHUNK,
        .offset = offset,
    };
}

/* One particle of one layer as 2D + 1 values (bytes of `size` each): u, w, b. */
static void pack(const struct mf_particles *p, int64_t l, int64_t i, char *item)
{
    const size_t D = (size_t)p->dim, size = particles_value_size(p);
    const size_t local = (size_t)(l * p->count + i);
    memcpy(item, (char *)p->u + local * D * size, D * size);
    memcpy(item + D * size, (char *)p->w + local * D * size, D * size);
    memcpy(item + 2 * D * size, (char *)p->b + local * size, size);
}

static void unpack(struct mf_particles *p, int64_t l, int64_t i, const char *item)
{
    const size_t D = (size_t)p->dim, size = particles_value_size(p);
    const size_t local = (size_t)(l * p->count + i);
    memcpy((char *)p->u + local * D * size, item, D * size);
    memcpy((char *)p->w + local * D * size, item + D * size, D * size);
    memcpy((char *)p->b + local * size, item + 2 * D * size, size);
}

/* Shift each layer's block of n kept particles (s bytes each) from
 * src + l*old_stride to dst + l*new_stride within a. The blocks keep their
 * order and do not overlap at either end, so moving the ones that go down
 * in ascending order and then the ones that go up in descending order never
 * overwrites a block before it has moved. */
static void shift_layers(void *array, int64_t layers, int64_t n, size_t s, int64_t src,
                         int64_t old_stride, int64_t dst, int64_t new_stride)
{
    char *a = array;
    for (int64_t l = 0; l < layers; l++) {
        int64_t from = src + l * old_stride, to = dst + l * new_stride;
        if (to < from)
            memmove(a + (size_t)to * s, a + (size_t)from * s, (size_t)n * s);
    }
    for (int64_t l = layers - 1; l >= 0; l--) {
        int64_t from = src + l * old_stride, to = dst + l * new_stride;
        if (to > from)
            memmove(a + (size_t)to * s, a + (size_t)from * s, (size_t)n * s);
    }
}

static void *resize(void *a, int64_t values, size_t size)
{
    void *b = realloc(a, (size_t)(values > 0 ? values : 1) * size);
    if (!b)
        log_fatal("out of memory resizing the particles to %lld values", (long long)values);
    return b;
}

static int64_t overlap(int64_t a0, int64_t a1, int64_t b0, int64_t b1, int64_t *start)
{
    *start = a0 > b0 ? a0 : b0;
    int64_t end = a1 < b1 ? a1 : b1;
    return end > *start ? end - *start : 0;
}

void particles_repartition(struct mf_particles *p, const int64_t *bounds, MPI_Comm comm)
{
    const int rank = comm_rank(comm), ranks = comm_size(comm);
    const int64_t L = p->layers, f = p->first, c = p->count;
    if (p->borrowed)
        log_fatal("particles_repartition: the particles live in a shared window");
    const int64_t nf = bounds[rank], nc = bounds[rank + 1] - bounds[rank];
    /* Per peer r: the particles (of each layer) sent to it and received from
     * it, as index ranges [at, at + n). */
    int64_t *old_first = xmalloc(6 * (size_t)ranks * sizeof *old_first);
    int64_t *old_count = old_first + ranks, *send_at = old_count + ranks, *send_n = send_at + ranks;
    int64_t *recv_at = send_n + ranks, *recv_n = recv_at + ranks, sends = 0, recvs = 0;
    comm_allgather_i64(f, old_first, comm);
    comm_allgather_i64(c, old_count, comm);
    for (int r = 0; r < ranks; r++) {
        send_n[r] = r == rank ? 0 : overlap(f, f + c, bounds[r], bounds[r + 1], &send_at[r]);
        recv_n[r] = r == rank ? 0
                              : overlap(old_first[r], old_first[r] + old_count[r], nf, nf + nc,
                                        &recv_at[r]);
        sends += send_n[r], recvs += recv_n[r];
    }

    /* One exchange item is a particle in all layers: L x (u, w, b). */
    const size_t size = particles_value_size(p), item = (size_t)(2 * p->dim + 1) * size;
    char *send = xmalloc((size_t)((sends + recvs) * L) * item);
    char *recv = send + (size_t)(sends * L) * item, *next = send;
    for (int r = 0; r < ranks; r++)
        for (int64_t l = 0; l < L; l++)
            for (int64_t m = send_at[r]; m < send_at[r] + send_n[r]; m++, next += item)
                pack(p, l, m - f, next);
    comm_exchange(send, send_n, recv, recv_n, (size_t)L * item, comm);

    /* Kept particles move within the arrays: grow first, shrink after. */
    int64_t start;
    const int64_t kept = overlap(f, f + c, nf, nf + nc, &start);
    const size_t vector = (size_t)p->dim * size;
    if (nc > c) {
        p->u = resize(p->u, L * nc * p->dim, size);
        p->w = resize(p->w, L * nc * p->dim, size);
        p->b = resize(p->b, L * nc, size);
    }
    if (kept) {
        shift_layers(p->u, L, kept, vector, start - f, c, start - nf, nc);
        shift_layers(p->w, L, kept, vector, start - f, c, start - nf, nc);
        shift_layers(p->b, L, kept, size, start - f, c, start - nf, nc);
    }
    if (nc < c) {
        p->u = resize(p->u, L * nc * p->dim, size);
        p->w = resize(p->w, L * nc * p->dim, size);
        p->b = resize(p->b, L * nc, size);
    }
    p->first = nf, p->count = nc;
    next = recv;
    for (int r = 0; r < ranks; r++)
        for (int64_t l = 0; l < L; l++)
            for (int64_t m = recv_at[r]; m < recv_at[r] + recv_n[r]; m++, next += item)
                unpack(p, l, m - nf, next);
    free(send);
    free(old_first);
}

void particles_init(struct mf_particles *p, double u_std, double w_std, double b_std,
                    uint64_t seed, enum rng_purpose purpose)
{
    const int D = p->dim, mixed = p->precision == MF_PRECISION_MIXED;
    const double w_scale = w_std / sqrt((double)D);
    for (int64_t l = 0; l < p->layers; l++)
        for (int64_t i = 0; i < p->count; i++) {
            int64_t local = l * p->count + i;
            /* Components 0..D-1 are u, D..2D-1 are w, 2D is b; block j/4
             * of counter (l, m) holds components j..j+3. */
            double z[4];
            for (int j = 0; j < 2 * D + 1; j++) {
                if (j % 4 == 0)
                    rng_normal4(seed, purpose, (uint64_t)l, (uint64_t)(p->first + i),
                                (uint64_t)j / 4, 0, z);
                const double x = (j < D ? u_std : j < 2 * D ? w_scale : b_std) * z[j % 4];
                const int64_t at = j < 2 * D ? local * D + j % D : local;
                if (mixed)
                    (j < D ? p->uf : j < 2 * D ? p->wf : p->bf)[at] = (float)x;
                else
                    (j < D ? p->u : j < 2 * D ? p->w : p->b)[at] = x;
            }
        }
}

