/*
 * particles: the residual blocks, sharded over ranks.
 *
 * Layer l holds particles m = 0..M-1 with global id g = l*M + m. The M
 * particles of a layer form ceil(M / MF_CHUNK) chunks of MF_CHUNK
 * consecutive indices (the last one may be short). Chunks are
 * block-distributed over ranks, the same range in every layer, so each rank
 * owns a share of every layer and a rank may own none. The split starts even
 * (particles_partition); load balancing may move the bounds between ranks
 * later (particles_repartition), in whole chunks. Chunk boundaries do
 * not depend on the rank count, so all arithmetic on a chunk is the same
 * whatever the number of ranks.
 */
#ifndef MFRES_PARTICLES_H
#define MFRES_PARTICLES_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/* Particles per chunk: a compile-time constant, never rank dependent. */
#define MF_CHUNK 128

/* The particles this rank owns: the same index range [first, first+count)
 * in every layer. Arrays are layer-major: u[(l*count + i)*dim + k] is
 * component k of u for particle m = first + i of layer l. The values are
 * doubles (u, w, b), or floats (uf, wf, bf) in mixed precision. */
struct mf_particles {
    int64_t layers; /* L >= 1 */
    int64_t width;  /* M >= 1, particles per layer over all ranks */
    int dim;        /* D >= 1 */
    int precision;  /* enum mf_precision (config.h) */
    int64_t first;  /* first owned index within a layer; a multiple of MF_CHUNK */
    int64_t count;  /* owned particles per layer, 0 <= count <= width */
    union { double *u; float *uf; }; /* [layers][count][dim] */
    union { double *w; float *wf; }; /* [layers][count][dim] */
    union { double *b; float *bf; }; /* [layers][count] */
    int borrowed;   /* the arrays live in memory owned elsewhere (a shared window) */
};

/* One chunk of one layer, wherever it lives. */
struct mf_chunk {
    union { double *u; float *uf; }; /* the values of its first particle */
    union { double *w; float *wf; };
    union { double *b; float *bf; };
    int64_t first;     /* index m within the layer of its first particle */
    int64_t size;      /* particles, 1 to MF_CHUNK */
    int64_t offset;    /* of its first particle in its owner's arrays, l * count + i */
};

/* A rank's chunks of one layer are handed out in groups of consecutive
 * chunks, at most MF_GROUPS, the unit work sharing claims (share.h). The
 * sums over the chunks are exact (exact.h), so the grouping changes no
 * result. */
#define MF_GROUPS 64

/* The particles per group for a rank owning count per layer: a multiple
 * of MF_CHUNK (the last group may be shorter). */
int64_t particles_group_size(int64_t count);

/* The chunk of layer l starting at owned index i0 (a multiple of MF_CHUNK
 * below count). */
struct mf_chunk particles_chunk(const struct mf_particles *p, int64_t l, int64_t i0);

/* The index range a rank owns in each layer under the block distribution of
 * chunks. Not collective. */
void particles_partition(int64_t width, int rank, int ranks, int64_t *first, int64_t *count);

/* Allocate this rank's share (uninitialised values) in `precision` (enum
 * mf_precision). */
void particles_alloc(struct mf_particles *p, int64_t layers, int64_t width, int dim,
                     int precision, int rank, int ranks);
void particles_free(struct mf_particles *p);

/* The shape and share of particles_alloc without the arrays; then
 * particles_attach places them in particles_values(p) values of
 * particles_value_size(p) bytes each, owned by the caller (particles_free
 * leaves those alone). */
void particles_layout(struct mf_particles *p, int64_t layers, int64_t width, int dim,
                      int precision, int rank, int ranks);
int64_t particles_values(const struct mf_particles *p);
/* Bytes per value: 8, or 4 in mixed precision. */
size_t particles_value_size(const struct mf_particles *p);
/* 1 when every owned value (u, w, b) is finite, else 0. Not collective. */
int particles_finite(const struct mf_particles *p);
void particles_attach(struct mf_particles *p, void *values);

/* Move particles between the ranks of comm so that rank r owns
 * [bounds[r], bounds[r + 1]) of every layer. bounds has comm_size + 1
 * entries, from 0 to width, non-decreasing, multiples of MF_CHUNK except the
 * last; every rank passes the same. Values are moved, not recomputed; the
 * extra memory is the moving particles only (kept ones are shifted in place).
 * Not for borrowed arrays. Collective. */
void particles_repartition(struct mf_particles *p, const int64_t *bounds, MPI_Comm comm);

/* Draw the initial values of the owned particles from the stream (seed,
 * purpose): u ~ N(0, u_std^2), w ~ N(0, w_std^2 / D), b ~ N(0, b_std^2) per
 * component, drawn in doubles (rounded to floats in mixed precision).
 * Particle (l, m) gets the same value for every rank count and every width
 * M > m. */
void particles_init(struct mf_particles *p, double u_std, double w_std, double b_std,
                    uint64_t seed, enum rng_purpose purpose);

#endif
