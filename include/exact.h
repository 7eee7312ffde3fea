/*
 * exact: sums of doubles whose bits do not depend on the order or grouping
 * of their terms, so that results are the same on any number of ranks.
 *
 * Each term is cut into fixed-point limbs, int64 integers that count units
 * of 2^(40 k + low) for limb k = 0 ... limbs - 1: the term's bits below
 * 2^low are dropped (rounding toward zero, the same whoever adds it), the
 * rest are held exactly. Integers add associatively, so an accumulator can
 * gather terms in any order, on any rank, and MPI_SUM over MPI_INT64_T can
 * combine accumulators along any reduction tree: the total's limbs are the
 * same integers every time, and turning them back into a double (after
 * carrying, in a fixed order) gives the same bits every time.
 *
 * Why fixed point: it is the simplest exact sum that MPI can reduce with a
 * built-in operation; a binned accumulator (ReproBLAS) adapts its range to
 * the data but needs a user-defined reduction or an extra round for the
 * maximum. The price is a fixed range, chosen per use:
 *   EXACT_STATE  (4 limbs, 2^-100 to 2^60): the per-layer sums of the
 *                forward drift and the adjoint, each term a chunk's sum;
 *   EXACT_SCALAR (8 limbs, 2^-160 to 2^160): sums of a few numbers (the
 *                squared gradient norm).
 * Limbs carry 40 bits; an int64 holds 2^23 full limbs, so an accumulator
 * takes up to 2^22 terms before exact_carry must be called (EXACT_TERMS),
 * and the carried accumulators of up to 2^22 ranks can be reduced.
 *
 * Overflow: a term that is not finite or whose magnitude reaches the
 * range's top (2^60 or 2^160) cannot be held. exact_add counts such terms
 * and exact_value then gives NaN for that sum, which the caller's
 * divergence check reports as it would a NaN in the dynamics. Terms below
 * 2^low in magnitude (denormals included) count as zero, and each term's
 * bits below 2^low are lost: an absolute error of at most 2^low per term.
 */
#ifndef MFRES_EXACT_H
#define MFRES_EXACT_H

#include <mpi.h>
#include <stdint.h>

/* A range: limbs per value and the weight exponent of the lowest limb. */
struct exact_format {
    int limbs;
    int low;
};

#define EXACT_LIMB_BITS 40
#define EXACT_SCALAR_LIMBS 8
#define EXACT_TERMS (INT64_C(1) << 22)

extern const struct exact_format EXACT_STATE, EXACT_SCALAR;

/* The int64s an accumulator of n sums takes: limb k of sum i at
 * acc[k n + i] (limb-major, so that adding vectorizes), then one count of
 * terms that could not be held. Zeroed, it holds n zeros. */
int64_t exact_size(const struct exact_format *f, int64_t n);

/* Add term x[i] to sum i, for i < n. */
void exact_add(const struct exact_format *f, int64_t *acc, const double *x, int64_t n);

/* Carry every limb but the top one into [0, 2^40), keeping the values. */
void exact_carry(const struct exact_format *f, int64_t *acc, int64_t n);

/* The n sums as doubles, each within two ulps of its exact value and the
 * same bits for the same integers (all NaN if any term could not be
 * held). */
void exact_value(const struct exact_format *f, const int64_t *acc, int64_t n, double *out);

/* Add the accumulators of every rank (each carried first) into acc on every
 * rank and write the n sums into out. Collective. */
void exact_allreduce(const struct exact_format *f, int64_t *acc, int64_t n, double *out,
                     MPI_Comm comm);

#endif
