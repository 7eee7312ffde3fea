/*
 * share: work sharing between the ranks of one node (train.share_work).
 *
 * The ranks of a node keep their particles in one shared window, so that
 * each can compute any chunk of the node. A pass over the chunks of a layer
 * then ends when the node's chunks are done, not when each rank's own are:
 * every rank claims its own chunks first, in order, then those still
 * unclaimed on the other ranks of its node. A rank slowed down by its core
 * (a busy neighbour, a lower clock) no longer makes the others wait at the
 * layer's reduction; its work goes to whoever is free.
 *
 * Claims go through one atomic counter per rank, tagged with the pass
 * number, which every rank advances identically (passes are collective).
 * A rank publishes its counter for pass k only after its own chunks of pass
 * k - 1 are all claimed, so a counter's tag tells a thief whether the chunks
 * are of its pass (take one), of a later pass (all taken), or of an earlier
 * one (the owner is behind: leave them to it). No pass needs a barrier.
 *
 * Every chunk is still computed exactly once per pass, with the same
 * arithmetic; only the order of the sums over chunks changes, so results
 * match a run without sharing to rounding (1e-12 relative), not bit for bit.
 */
#ifndef MFRES_SHARE_H
#define MFRES_SHARE_H

#include <mpi.h>
#include <stdint.h>

#include "particles.h"

struct mf_share;

/* Lay out this rank's particles as particles_alloc does, their arrays in a
 * window shared by the ranks of comm on this node. Collective over comm. */
struct mf_share *share_create(struct mf_particles *p, int64_t layers, int64_t width, int dim,
                              MPI_Comm comm);

/* Free the window, and with it the particle arrays (particles_free first).
 * Collective over comm. */
void share_destroy(struct mf_share *s);

/* Start the next pass, over the chunks of layer l. Every rank of comm starts
 * the same passes in the same order. With steal = 0 this rank computes its
 * own chunks only and offers none to the others (a pass whose results are
 * kept per owned particle). Not collective. */
void share_begin(struct mf_share *s, int64_t l, int steal);

/* The next chunk this rank computes in the pass; 0 when the pass is done
 * for it. */
int share_next(struct mf_share *s, struct mf_chunk *c);

/* Chunk evaluations since share_create, summed over the ranks of comm: all,
 * and those by a rank other than the chunk's owner. Collective. */
void share_totals(const struct mf_share *s, MPI_Comm comm, double *computed, double *foreign);

#endif
