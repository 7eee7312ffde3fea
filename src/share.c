/*
 * share: work sharing between the ranks of one node (see share.h).
 */
#include "share.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <sys/statvfs.h>

#include "comm.h"
#include "log.h"

/* A rank's segment of the window: its claim counter on a cache line of its
 * own, then its particle arrays. */
#define COUNTER_BYTES 64
#define INDEX_BITS 0xffffffffu

struct mf_share {
    MPI_Comm node;              /* the ranks of comm on this node */
    MPI_Win win;                /* their segments */
    int ranks, me;              /* node size and rank */
    struct mf_particles *peer;  /* [ranks]: each node rank's particles, as views */
    _Atomic uint64_t **counter; /* [ranks]: pass tag << 32 | next unclaimed chunk */
    uint64_t pass;              /* passes started */
    int64_t layer, next;        /* this pass: its layer; the next own index (no stealing) */
    int steal, victim;          /* this pass shares; offset of the rank claimed from now */
    int64_t computed, foreign;
};

/* Open MPI keeps shared windows in files under osc_sm_backing_directory,
 * /dev/shm on Linux. A tmpfs too small for them would end the run with
 * SIGBUS at the first touch of a missing page: say so before. */
static void check_room(double bytes)
{
    const char *dir = getenv("OMPI_MCA_osc_sm_backing_directory");
    struct statvfs fs;
    if (!dir)
        dir = "/dev/shm";
    if (statvfs(dir, &fs) != 0)
        return; /* elsewhere: nothing to check */
    const double room = (double)fs.f_bavail * (double)fs.f_frsize;
    if (bytes > room)
        log_fatal("train.share_work = node: this node's particles need %.2f GiB of shared memory "
                  "but %s has %.2f GiB free; use more nodes, set OMPI_MCA_osc_sm_backing_directory, "
                  "or train.share_work = off",
                  bytes / 1073741824.0, dir, room / 1073741824.0);
}

struct mf_share *share_create(struct mf_particles *p, int64_t layers, int64_t width, int dim,
                              MPI_Comm comm)
{
    struct mf_share *s = xmalloc(sizeof *s);
    *s = (struct mf_share){.node = comm_node(comm)};
    s->ranks = comm_size(s->node);
    s->me = comm_rank(s->node);
    particles_layout(p, layers, width, dim, comm_rank(comm), comm_size(comm));
    int64_t *first = xmalloc(2 * (size_t)s->ranks * sizeof *first), *count = first + s->ranks;
    comm_allgather_i64(p->first, first, s->node);
    comm_allgather_i64(p->count, count, s->node);
    const size_t bytes = COUNTER_BYTES + (size_t)particles_values(p) * sizeof(double);
    double node_bytes = (double)bytes;
    comm_sum(&node_bytes, 1, s->node);
    if (s->me == 0)
        check_room(node_bytes);
    char *base = comm_shared_alloc(bytes, s->node, &s->win);
    particles_attach(p, (double *)(base + COUNTER_BYTES));
    s->peer = xmalloc((size_t)s->ranks * sizeof *s->peer);
    s->counter = xmalloc((size_t)s->ranks * sizeof *s->counter);
    for (int q = 0; q < s->ranks; q++) {
        char *segment = comm_shared_peer(s->win, q);
        s->peer[q] = *p;
        s->peer[q].first = first[q];
        s->peer[q].count = count[q];
        particles_attach(&s->peer[q], (double *)(segment + COUNTER_BYTES));
        s->counter[q] = (_Atomic uint64_t *)segment;
    }
    free(first);
    if (!atomic_is_lock_free(s->counter[s->me]))
        log_fatal("share: 64-bit atomics are not lock-free here; set train.share_work = off");
    atomic_store(s->counter[s->me], 0); /* pass 0: never started */
    comm_shared_sync(s->win);
    comm_barrier(s->node);
    comm_shared_sync(s->win);
    return s;
}

void share_destroy(struct mf_share *s)
{
    comm_shared_free(&s->win);
    comm_free(&s->node);
    free(s->peer);
    free(s->counter);
    free(s);
}

void share_begin(struct mf_share *s, int64_t l, int steal)
{
    comm_shared_sync(s->win); /* others' updates from earlier passes */
    s->pass++;
    s->layer = l;
    s->next = 0;
    s->victim = 0;
    s->steal = steal && s->ranks > 1;
    /* Our chunks of the previous pass are all claimed (we finished it), so
     * the counter may start this pass. */
    if (s->steal)
        atomic_store(s->counter[s->me], (s->pass & INDEX_BITS) << 32);
}

/* Claim the next chunk of node rank q in this pass: its first owned index
 * in *i0. 0 if q's chunks are all taken or q has not started this pass. */
static int claim(struct mf_share *s, int q, int64_t *i0)
{
    _Atomic uint64_t *counter = s->counter[q];
    const uint64_t tag = (s->pass & INDEX_BITS) << 32;
    const uint64_t chunks = (uint64_t)((s->peer[q].count + MF_CHUNK - 1) / MF_CHUNK);
    uint64_t v = atomic_load(counter);
    while ((v >> 32) << 32 == tag && (v & INDEX_BITS) < chunks)
        if (atomic_compare_exchange_weak(counter, &v, v + 1)) {
            *i0 = (int64_t)(v & INDEX_BITS) * MF_CHUNK;
            return 1;
        }
    return 0;
}

int share_next(struct mf_share *s, struct mf_chunk *c)
{
    int q = s->me, found;
    int64_t i0 = s->next;
    if (s->steal) {
        /* Our own chunks first, then the other ranks' in turn. */
        while (s->victim < s->ranks && !claim(s, q = (s->me + s->victim) % s->ranks, &i0))
            s->victim++;
        found = s->victim < s->ranks;
    } else {
        found = i0 < s->peer[q].count;
        s->next += MF_CHUNK;
    }
    if (!found) {
        comm_shared_sync(s->win); /* our updates, for the ranks' next passes */
        return 0;
    }
    *c = particles_chunk(&s->peer[q], s->layer, i0);
    c->own = q == s->me;
    s->computed++;
    s->foreign += !c->own;
    return 1;
}

void share_totals(const struct mf_share *s, MPI_Comm comm, double *computed, double *foreign)
{
    double counts[2] = {(double)s->computed, (double)s->foreign};
    comm_sum(counts, 2, comm);
    *computed = counts[0];
    *foreign = counts[1];
}
