/*
 * balance: chunk shares in proportion to measured speed (see balance.h).
 */
#include "balance.h"

#include <math.h>
#include <stdlib.h>

#include "comm.h"
#include "log.h"
#include "timer.h"

static int64_t chunks_of(int64_t particles) { return (particles + MF_CHUNK - 1) / MF_CHUNK; }

/* The slowest time over the mean, minus one. */
static double imbalance_of(int ranks, const double *busy)
{
    double mean = 0, slowest = 0;
    for (int r = 0; r < ranks; r++) {
        mean += busy[r] / ranks;
        slowest = busy[r] > slowest ? busy[r] : slowest;
    }
    return mean > 0 ? slowest / mean - 1 : 0;
}

int64_t balance_plan(int ranks, const int64_t *old, const double *busy, int64_t *bounds)
{
    const int64_t width = old[ranks], total = chunks_of(width);
    for (int r = 0; r <= ranks; r++)
        bounds[r] = old[r];
    if (ranks < 2 || total < ranks)
        return 0;
    for (int r = 0; r < ranks; r++)
        if (old[r + 1] <= old[r] || !(busy[r] > 0))
            return 0; /* a rank without work or without a time: nothing to learn */
    if (imbalance_of(ranks, busy) < MF_BALANCE_TOLERANCE)
        return 0;

    /* Shares: halfway from the current chunks to chunks proportional to
     * speed (chunks per second); both sum to the total, and the cuts are
     * their cumulative sums, rounded. */
    double *share = xmalloc((size_t)ranks * sizeof *share), speed_sum = 0;
    for (int r = 0; r < ranks; r++)
        speed_sum += (double)chunks_of(old[r + 1] - old[r]) / busy[r];
    for (int r = 0; r < ranks; r++) {
        double chunks = (double)chunks_of(old[r + 1] - old[r]);
        share[r] = 0.5 * (chunks + total * (chunks / busy[r]) / speed_sum);
    }
    double cumulative = 0;
    int64_t moved = 0;
    for (int r = 1; r < ranks; r++) {
        cumulative += share[r - 1];
        int64_t cut = llround(cumulative);
        int64_t lo = bounds[r - 1] / MF_CHUNK + 1, hi = total - (ranks - r);
        cut = cut < lo ? lo : cut > hi ? hi : cut;
        bounds[r] = cut * MF_CHUNK < width ? cut * MF_CHUNK : width;
        moved += llabs(bounds[r] - old[r]);
    }
    free(share);
    return moved;
}

double balance_clock(void) { return comm_wtime() - timer_seconds(TIMER_MPI); }

int64_t balance_particles(struct mf_particles *p, struct balance *b, MPI_Comm comm)
{
    const int ranks = comm_size(comm);
    double *times = xmalloc((size_t)ranks * sizeof *times);
    int64_t *old = xmalloc(2 * ((size_t)ranks + 1) * sizeof *old), *bounds = old + ranks + 1;
    comm_allgather(b->busy, times, comm);
    comm_allgather_i64(p->first, old, comm);
    old[ranks] = p->width;
    int64_t moved = balance_plan(ranks, old, times, bounds);
    if (moved)
        particles_repartition(p, bounds, comm);
    b->busy = 0;
    b->moves += moved > 0;
    b->moved += moved;
    free(times);
    free(old);
    return moved;
}
