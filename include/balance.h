/*
 * balance: dynamic load balancing of the particles over ranks.
 *
 * Every rank does the same work per particle, but the cores do not run at
 * the same speed (shared or heterogeneous nodes, a busy neighbour, thermal
 * limits), and each layer's reduction waits for the slowest rank. From each
 * rank's compute time (its step time less its time in MPI), the chunks are
 * redistributed in proportion to the measured speeds, halfway at a time so
 * that noise does not make the shares swing. The ranges stay contiguous and
 * in rank order, whole chunks only, so the arithmetic of each chunk is
 * unchanged; the sums over ranks are regrouped, which changes results in
 * the last bits only.
 */
#ifndef MFRES_BALANCE_H
#define MFRES_BALANCE_H

#include <mpi.h>
#include <stdint.h>

#include "particles.h"

/* Imbalances below this (slowest rank's compute time over the mean, minus
 * one) are left alone. */
#define MF_BALANCE_TOLERANCE 0.03

/* New chunk-aligned bounds[0..ranks] from the current ones (old[0..ranks],
 * particles per layer, width = old[ranks]) and each rank's compute seconds
 * busy[r] for its share. Every rank keeps at least one chunk. Returns the
 * number of particles per layer that change rank (0: keep the bounds, which
 * then equal old). Pure. */
int64_t balance_plan(int ranks, const int64_t *old, const double *busy, int64_t *bounds);

/* The running balance of one run: this rank's compute seconds since the
 * last rebalance (add differences of balance_clock), and what moved so far. */
struct balance {
    double busy;
    int64_t moves; /* rebalances that moved particles */
    int64_t moved; /* particles per layer moved in all */
};

/* This rank's compute clock: wall time less the time spent in MPI
 * (TIMER_MPI). Not collective. */
double balance_clock(void);

/* Collective: gather every rank's b->busy, plan, and repartition when the
 * plan moves particles; then count what moved and reset b->busy. Returns the
 * particles per layer moved now. */
int64_t balance_particles(struct mf_particles *p, struct balance *b, MPI_Comm comm);

#endif
