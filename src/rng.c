/*
 * rng: Philox4x64-10 streams keyed by (seed, purpose) (see rng.h).
 */
#include "rng.h"

#include <Random123/philox.h>
#include <math.h>

void rng_bits4(uint64_t seed, enum rng_purpose purpose, uint64_t c0, uint64_t c1, uint64_t c2,
               uint64_t c3, uint64_t out[4])
{
    philox4x64_ctr_t ctr = {{c0, c1, c2, c3}};
    philox4x64_key_t key = {{seed, (uint64_t)purpose}};
    philox4x64_ctr_t r = philox4x64(ctr, key);
    for (int i = 0; i < 4; i++)
        out[i] = r.v[i];
}

void rng_uniform4(uint64_t seed, enum rng_purpose purpose, uint64_t c0, uint64_t c1,
                  uint64_t c2, uint64_t c3, double out[4])
{
    uint64_t bits[4];
    rng_bits4(seed, purpose, c0, c1, c2, c3, bits);
    /* 53 random bits, centred in their cell: never exactly 0 or 1. */
    for (int i = 0; i < 4; i++)
        out[i] = ((double)(bits[i] >> 11) + 0.5) * 0x1p-53;
}

void rng_normal4(uint64_t seed, enum rng_purpose purpose, uint64_t c0, uint64_t c1,
                 uint64_t c2, uint64_t c3, double out[4])
{
    const double two_pi = 6.283185307179586476925286766559;
    double u[4];
    rng_uniform4(seed, purpose, c0, c1, c2, c3, u);
    for (int i = 0; i < 4; i += 2) {
        double r = sqrt(-2.0 * log(u[i]));
        out[i] = r * cos(two_pi * u[i + 1]);
        out[i + 1] = r * sin(two_pi * u[i + 1]);
    }
}

uint64_t rng_below(uint64_t word, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)word * n) >> 64);
}

void rng_permutation(uint64_t seed, enum rng_purpose purpose, uint64_t step, int64_t n,
                     int64_t *perm)
{
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    /* Fisher-Yates from the top; draw i uses word i % 4 of block i / 4. */
    uint64_t bits[4];
    for (int64_t i = n - 1; i > 0; i--) {
        if (i % 4 == 3 || i == n - 1)
            rng_bits4(seed, purpose, step, (uint64_t)i / 4, 0, 0, bits);
        int64_t j = (int64_t)rng_below(bits[i % 4], (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
