/*
 * exact: order-independent exact sums in fixed-point limbs (see exact.h).
 *
 * Compiled once per kernel path (kernels.h), like kernels.c: the limb loops
 * of exact_add vectorize only with the path's instruction sets (converting
 * doubles to int64 takes AVX-512 DQ), and cost as much as a few percent of a
 * step at D = 64. The sums are exact, so every path gives the same bits.
 * The rest is compiled once, in the generic build (MF_KERNEL_COMMON).
 */
#include "exact.h"

#include <math.h>
#include <string.h>

#include "comm.h"
#include "kernels.h"

#ifndef MF_KERNEL_PATH
#define MF_KERNEL_PATH generic
#define MF_KERNEL_COMMON
#endif

/* One limb of m terms r (weight 2^e): add the truncated multiples of 2^e
 * to a and leave the remainders in r. Kept out of line: inlined into the
 * loop over limbs, GCC 12 stops vectorizing it. */
static __attribute__((noinline)) void add_limb(int64_t *restrict a, double *restrict r,
                                               int64_t m, int e)
{
    const double down = ldexp(1.0, -e), up = ldexp(1.0, e);
    for (int64_t i = 0; i < m; i++) {
        const double t = trunc(r[i] * down);
        a[i] += (int64_t)t;
        r[i] -= t * up;
    }
}

/* The body of exact_add for a range known where it is inlined: in blocks
 * of terms, limbs from the top down, each the truncated multiple of its
 * weight, the remainder (exact: the bits of the term below that weight)
 * passed on. Each inner loop runs over the block, so it vectorizes. */
static inline void add_terms(int64_t *restrict acc, const double *restrict x, int64_t n,
                             int limbs, int low)
{
    enum { BLOCK = 512 };
    /* |x| < 2^(40 limbs + low), tested on the bits: no floating-point
     * comparison, so NaN raises nothing (the unit tests trap FE_INVALID). */
    const double top = ldexp(1.0, EXACT_LIMB_BITS * limbs + low);
    uint64_t top_bits;
    memcpy(&top_bits, &top, sizeof top_bits);
    double r[BLOCK];
    int64_t lost = 0;
    for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {
        const int64_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        for (int64_t i = 0; i < m; i++) {
            uint64_t bits;
            memcpy(&bits, x + i0 + i, sizeof bits);
            const int held = (bits & ~(UINT64_C(1) << 63)) < top_bits;
            lost += !held;
            r[i] = held ? x[i0 + i] : 0.0;
        }
        for (int k = limbs - 1; k >= 0; k--)
            add_limb(acc + k * n + i0, r, m, EXACT_LIMB_BITS * k + low);
    }
    acc[limbs * n] += lost;
}

void KERNEL_PATH_FN(exact_add)(const struct exact_format *f, int64_t *acc, const double *x,
                               int64_t n);
void KERNEL_PATH_FN(exact_add)(const struct exact_format *f, int64_t *acc, const double *x,
                               int64_t n)
{
    if (f->limbs == EXACT_STATE.limbs && f->low == EXACT_STATE.low)
        add_terms(acc, x, n, 4, -100); /* the hot path, with constant weights */
    else
        add_terms(acc, x, n, f->limbs, f->low);
}

#ifdef MF_KERNEL_COMMON
const struct exact_format EXACT_STATE = {4, -100}, EXACT_SCALAR = {EXACT_SCALAR_LIMBS, -160};

int64_t exact_size(const struct exact_format *f, int64_t n) { return f->limbs * n + 1; }

void exact_add(const struct exact_format *f, int64_t *acc, const double *x, int64_t n)
{
    kernels_path()->exact_add(f, acc, x, n);
}

/* Carry the limbs of one value, limb k at limb[k * stride], so that all but
 * the top one lie in [0, 2^40), keeping the value. */
static void carry(int64_t *limb, int limbs, int64_t stride)
{
    const int64_t base = INT64_C(1) << EXACT_LIMB_BITS;
    for (int k = 0; k + 1 < limbs; k++) {
        int64_t *here = limb + k * stride, *next = here + stride;
        const int64_t low = *here & (base - 1); /* two's complement */
        *next += (*here - low) / base;          /* exact: floor(*here / 2^40) */
        *here = low;
    }
}

void exact_carry(const struct exact_format *f, int64_t *acc, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        carry(acc + i, f->limbs, n);
}

/* The value as a double: the magnitude's limbs, all of one sign once
 * carried, summed from the lowest (no cancellation, so within an ulp or
 * two of the exact sum and the same bits for the same integers), then the
 * sign. */
static double value_of(int64_t *limb, int limbs, int low)
{
    carry(limb, limbs, 1);
    const int negative = limb[limbs - 1] < 0;
    if (negative) {
        for (int k = 0; k < limbs; k++)
            limb[k] = -limb[k];
        carry(limb, limbs, 1);
    }
    double v = 0;
    for (int k = 0; k < limbs; k++)
        v += ldexp((double)limb[k], EXACT_LIMB_BITS * k + low);
    return negative ? -v : v;
}

void exact_value(const struct exact_format *f, const int64_t *acc, int64_t n, double *out)
{
    const int lost = acc[f->limbs * n] != 0;
    int64_t limb[EXACT_SCALAR_LIMBS]; /* the widest format's */
    for (int64_t i = 0; i < n; i++) {
        for (int k = 0; k < f->limbs; k++)
            limb[k] = acc[k * n + i];
        out[i] = lost ? NAN : value_of(limb, f->limbs, f->low);
    }
}

void exact_allreduce(const struct exact_format *f, int64_t *acc, int64_t n, double *out,
                     MPI_Comm comm)
{
    exact_carry(f, acc, n);
    comm_sum_i64(acc, (long)exact_size(f, n), comm);
    exact_value(f, acc, n, out);
}
#endif
