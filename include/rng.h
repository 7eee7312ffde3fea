/*
 * rng: counter-based random numbers (Random123 Philox4x64-10).
 *
 * A stream is keyed by (seed, purpose); the counter names the draw, e.g.
 * (layer, particle, block) for initial values or (step, ...) for noise. A
 * draw therefore depends only on what it is for, never on the rank that
 * makes it or on how many draws came before: every rank count and every
 * width gives particle (l, m) the same initial value, and every rank draws
 * the same minibatch without communication.
 */
#ifndef MFRES_RNG_H
#define MFRES_RNG_H

#include <stdint.h>

/* What a stream is for; part of the key so streams never overlap. */
enum rng_purpose {
    RNG_INIT = 1, /* initial particles: counter (layer, index, block) */
    RNG_DATA,     /* data samples: counter (sample, block) */
    RNG_TEACHER,  /* teacher network particles */
    RNG_BATCH,    /* minibatch indices: counter (step, draw) */
    RNG_ORDER,    /* layer permutations: counter (step, draw) */
    RNG_NOISE     /* Langevin noise: counter (step, layer, index, block) */
};

/* Four independent 64-bit words for one counter. */
void rng_bits4(uint64_t seed, enum rng_purpose purpose, uint64_t c0, uint64_t c1, uint64_t c2,
               uint64_t c3, uint64_t out[4]);

/* Four uniforms in the open interval (0, 1). */
void rng_uniform4(uint64_t seed, enum rng_purpose purpose, uint64_t c0, uint64_t c1,
                  uint64_t c2, uint64_t c3, double out[4]);

/* Four standard normals (Box-Muller on rng_uniform4). */
void rng_normal4(uint64_t seed, enum rng_purpose purpose, uint64_t c0, uint64_t c1,
                 uint64_t c2, uint64_t c3, double out[4]);

/* Uniform integer in [0, n) from one 64-bit word (multiply-shift). */
uint64_t rng_below(uint64_t word, uint64_t n);

/* Fill perm[0..n) with a uniformly random permutation of 0..n-1 keyed by
 * (seed, purpose, step). */
void rng_permutation(uint64_t seed, enum rng_purpose purpose, uint64_t step, int64_t n,
                     int64_t *perm);

#endif
