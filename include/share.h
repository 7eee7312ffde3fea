/*
 * share: work sharing between the ranks of one node (train.share_work).
 *
 * The ranks of a node keep their particles in one shared window, so that
 * each can compute any chunk of the node. A pass over the chunks of a layer
 * then ends when the node's chunks are done, not when each rank's own are:
 * every rank claims its own groups of chunks (particles.h) from the front,
 * in order, and when it has none left takes groups from the back of the
 * other ranks of its node. A rank slowed down by its core (a busy
 * neighbour, a lower clock) no longer makes the others wait at the layer's
 * reduction; its work goes to whoever is free.
 *
 * Claims go through one atomic counter per rank holding the front and the
 * back of its unclaimed groups. A pass ends with a barrier of the node, so
 * a thief never takes a group of another pass: a counter holds the groups
 * of this pass or none.
 *
 * Whoever computes a chunk adds its sums to its own exact accumulator
 * (exact.h), whose total does not depend on the order or the rank of its
 * terms: results are the same, bit for bit, with and without sharing,
 * whoever computed what.
 */
#ifndef MFRES_SHARE_H
#define MFRES_SHARE_H

#include <mpi.h>
#include <stdint.h>

#include "particles.h"

struct mf_share;

/* A group of chunks claimed in a pass: owned indices [i0, i1), in the
 * pass's layer, of `owner` (the owner's particles, as a view). */
struct mf_group {
    const struct mf_particles *owner;
    int64_t i0, i1;
};

/* Place the arrays of this rank's particles, laid out by particles_layout,
 * in a window shared by the ranks of comm on this node. If some node lacks
 * the shared memory: a fatal error if required, else a warning and NULL on
 * every rank (the caller allocates the particles as usual). Collective
 * over comm. */
struct mf_share *share_create(struct mf_particles *p, int required, MPI_Comm comm);

/* Free the window, and with it the particle arrays (particles_free first).
 * Collective over comm. */
void share_destroy(struct mf_share *s);

/* Start the next pass over the groups of a layer. With steal = 0 this rank
 * computes its own groups only and lends none (as in a pass whose results
 * are kept per owned particle). Every rank of the node must make the same
 * passes, over the same layer. Not collective. */
void share_begin(struct mf_share *s, int steal);

/* The next group this rank computes in the pass: its own groups in order,
 * then others'; 0 when none is left for it. */
int share_next(struct mf_share *s, struct mf_group *g);

/* End the pass: wait for the node's ranks, so that every particle update of
 * the pass is seen by its owner. Collective over the node. */
void share_end(struct mf_share *s);

/* Chunk evaluations since share_create, summed over the ranks of comm: all,
 * and those by a rank other than the chunk's owner. Collective. */
void share_totals(const struct mf_share *s, MPI_Comm comm, double *computed, double *foreign);

#endif
