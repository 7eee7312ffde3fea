/*
 * share: work sharing between the ranks of one node (see share.h).
 */
#include "share.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>

#include "comm.h"
#include "log.h"
#include "timer.h"

/* A rank's segment of the window: its claim counter on a cache line of its
 * own, then its particle arrays. */
#define COUNTER_BYTES 64

struct mf_share {
    MPI_Comm node;              /* the ranks of comm on this node */
    MPI_Win win;                /* their segments */
    int ranks, me;              /* node size and rank */
    struct mf_particles *peer;  /* [ranks]: each node rank's particles, as views */
    _Atomic uint64_t **counter; /* [ranks]: front << 32 | back; unclaimed groups [front, back) */
    int64_t next;               /* the next own group, when not stealing */
    int steal, victim;          /* this pass shares; offset of the rank claimed from now */
    int64_t computed, foreign;  /* chunk evaluations */
};

/* Open MPI keeps shared windows in files under osc_sm_backing_directory,
 * /dev/shm on Linux. A tmpfs too small for them would end the run with
 * SIGBUS at the first touch of a missing page: check before. 0 and the
 * reason in why if bytes do not fit. */
static int room_for(double bytes, char *why, size_t len)
{
    const char *dir = getenv("OMPI_MCA_osc_sm_backing_directory");
    struct statvfs fs;
    if (!dir)
        dir = "/dev/shm";
    if (statvfs(dir, &fs) != 0)
        return 1; /* elsewhere: nothing to check */
    const double room = (double)fs.f_bavail * (double)fs.f_frsize;
    snprintf(why, len, "this node's particles need %.2f GiB of shared memory but %s has %.2f GiB free",
             bytes / 1073741824.0, dir, room / 1073741824.0);
    return bytes <= room;
}

struct mf_share *share_create(struct mf_particles *p, int required, MPI_Comm comm)
{
    struct mf_share *s = xmalloc(sizeof *s);
    *s = (struct mf_share){.node = comm_node(comm)};
    s->ranks = comm_size(s->node);
    s->me = comm_rank(s->node);
    int64_t *first = xmalloc(2 * (size_t)s->ranks * sizeof *first), *count = first + s->ranks;
    comm_allgather_i64(p->first, first, s->node);
    comm_allgather_i64(p->count, count, s->node);
    const size_t values = (size_t)particles_values(p);
    const size_t bytes = COUNTER_BYTES + values * particles_value_size(p);
    double node_bytes = (double)bytes;
    comm_sum(&node_bytes, 1, s->node);
    char why[160];
    const int fits = s->me != 0 || room_for(node_bytes, why, sizeof why);
    if (!fits && required)
        log_fatal("train.share_work = node: %s; use more nodes, set "
                  "OMPI_MCA_osc_sm_backing_directory, or train.share_work = off", why);
    if (!comm_all_ok(fits, comm)) {
        if (!fits)
            log_warn("train.share_work = auto: %s: no work sharing", why);
        comm_free(&s->node);
        free(first);
        free(s);
        return NULL;
    }
    char *base = comm_shared_alloc(bytes, s->node, &s->win);
    particles_attach(p, base + COUNTER_BYTES);
    s->peer = xmalloc((size_t)s->ranks * sizeof *s->peer);
    s->counter = xmalloc((size_t)s->ranks * sizeof *s->counter);
    for (int q = 0; q < s->ranks; q++) {
        char *segment = comm_shared_peer(s->win, q);
        s->peer[q] = *p;
        s->peer[q].first = first[q];
        s->peer[q].count = count[q];
        particles_attach(&s->peer[q], segment + COUNTER_BYTES);
        s->counter[q] = (_Atomic uint64_t *)segment;
    }
    free(first);
    if (!atomic_is_lock_free(s->counter[s->me]))
        log_fatal("share: 64-bit atomics are not lock-free here; set train.share_work = off");
    atomic_store(s->counter[s->me], 0); /* no groups unclaimed */
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

/* Node rank q's groups in each layer. */
static int64_t groups_of(const struct mf_share *s, int q)
{
    const int64_t size = particles_group_size(s->peer[q].count);
    return (s->peer[q].count + size - 1) / size;
}

void share_begin(struct mf_share *s, int steal)
{
    s->next = 0;
    s->victim = 0;
    s->steal = steal && s->ranks > 1;
    /* The last pass ended in a barrier: nobody still claims from it. */
    if (s->steal)
        atomic_store(s->counter[s->me], (uint64_t)groups_of(s, s->me));
}

/* Claim a group of node rank q in this pass: our own from the front, others'
 * from the back. Its index in *group; 0 if none is left to us. */
static int claim(struct mf_share *s, int q, int64_t *group)
{
    _Atomic uint64_t *counter = s->counter[q];
    const int own = q == s->me;
    uint64_t v = atomic_load(counter), front, back;
    do {
        front = v >> 32;
        back = v & 0xffffffffu;
        if (front >= back)
            return 0;
    } while (!atomic_compare_exchange_weak(counter, &v, own ? v + (1ull << 32) : v - 1));
    *group = (int64_t)(own ? front : back - 1);
    return 1;
}

int share_next(struct mf_share *s, struct mf_group *g)
{
    int q = s->me;
    int64_t group = 0;
    if (s->steal) {
        /* Our own groups first, then the other ranks' in turn. */
        while (s->victim < s->ranks && !claim(s, q = (s->me + s->victim) % s->ranks, &group))
            s->victim++;
        if (s->victim == s->ranks)
            return 0;
    } else if (s->next < groups_of(s, q)) {
        group = s->next++;
    } else {
        return 0;
    }
    const struct mf_particles *p = &s->peer[q];
    const int64_t size = particles_group_size(p->count);
    g->owner = p;
    g->i0 = group * size;
    g->i1 = g->i0 + size < p->count ? g->i0 + size : p->count;
    const int64_t chunks = (g->i1 - g->i0 + MF_CHUNK - 1) / MF_CHUNK;
    s->computed += chunks;
    s->foreign += q == s->me ? 0 : chunks;
    return 1;
}

void share_end(struct mf_share *s)
{
    if (s->ranks > 1) {
        timer_start(TIMER_MPI);
        timer_start(TIMER_MPI_WAIT);
        comm_shared_sync(s->win); /* our updates of particles, for their owners */
        comm_barrier(s->node);
        comm_shared_sync(s->win); /* theirs, for us */
        timer_stop(TIMER_MPI_WAIT);
        timer_stop(TIMER_MPI);
    }
}

void share_totals(const struct mf_share *s, MPI_Comm comm, double *computed, double *foreign)
{
    double counts[2] = {(double)s->computed, (double)s->foreign};
    comm_sum(counts, 2, comm);
    *computed = counts[0];
    *foreign = counts[1];
}
