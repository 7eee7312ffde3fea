/*
 * fp_probe [loops]: what one 512-bit instruction costs beside
 * multiply-adds, on this core (x86-64 with AVX-512 only).
 *
 * A loop of 12 independent 512-bit FMAs sets the pace of the multiply-add
 * pipes; the same loop with 12 (or 1, for the division) other instructions
 * added shows what each of those takes from that pace, in FMA slots:
 * (t_mixed - t_fma) / (t_fma / 12) / count. About 0 for an instruction that
 * runs beside the FMAs, 1 for one that needs the same pipe. No clock rate is
 * needed: every figure is a ratio of two loops timed in the same run. The
 * "Small D" bound in src/README.md (Performance) counts tanh's cost with
 * these figures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) && defined(__GNUC__)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

#define F(r) "vfmadd231pd %%zmm30, %%zmm31, %%zmm" #r "\n"
#define FMA12 F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11)
#define X12(op) op(12) op(13) op(14) op(15) op(16) op(17) op(18) op(19) op(20) op(21) op(22) op(23)
#define ADD(r) "vaddpd %%zmm30, %%zmm" #r ", %%zmm" #r "\n"
#define MAX(r) "vmaxpd %%zmm30, %%zmm" #r ", %%zmm" #r "\n"
#define SHIFT(r) "vpsllq $52, %%zmm" #r ", %%zmm" #r "\n"
#define MUL(r) "vmulpd %%zmm30, %%zmm" #r ", %%zmm" #r "\n"
#define PERM2(r) "vpermt2pd %%zmm30, %%zmm29, %%zmm" #r "\n"
#define BCAST(r) "vbroadcastsd (%0), %%zmm" #r "\n"
#define DIV(r) "vdivpd %%zmm29, %%zmm30, %%zmm" #r "\n"

/* Seconds per iteration of the loop body, the least of 5 timings of `reps`. */
#define TIME(body, out)                                                                       \
    do {                                                                                      \
        double best = 1e30;                                                                   \
        for (int k = 0; k < 5; k++) {                                                         \
            const double t0 = now();                                                          \
            for (long n = 0; n < reps; n++)                                                   \
                __asm__ volatile(body ::"r"(scalar) : "memory");                              \
            const double t = (now() - t0) / reps;                                             \
            best = t < best ? t : best;                                                       \
        }                                                                                     \
        out = best;                                                                           \
    } while (0)

/* The probes; compiled for AVX-512 (the binary is built for the baseline),
 * run only where the CPU has it. */
static __attribute__((target("avx512f"))) void probe(long reps)
{
    static double scalar[8] = {1.0};
    __asm__ volatile("vxorpd %%zmm30, %%zmm30, %%zmm30\n"
                     "vxorpd %%zmm31, %%zmm31, %%zmm31\n"
                     "vpternlogd $0xff, %%zmm29, %%zmm29, %%zmm29\n" ::
                         : "xmm29", "xmm30", "xmm31");
    double fma, t;
    TIME(FMA12, fma);
    printf("12 FMAs: %.2f ns per loop (%.1f GFLOP/s)\n", fma * 1e9, 12 * 16 / fma / 1e9);
    /* `count` instructions added to the FMAs, in FMA slots each; noise below
     * 0 shows as 0 */
#define PROBE(name, count, added)                                                             \
    do {                                                                                      \
        TIME(FMA12 added, t);                                                                 \
        const double slots = (t - fma) / (fma / 12) / (count);                                \
        printf("  + %2d %-20s %.2f FMA slots each\n", count, name, slots > 0 ? slots : 0.0);  \
    } while (0)
    PROBE("vaddpd", 12, X12(ADD));
    PROBE("vmaxpd", 12, X12(MAX));
    PROBE("vpsllq", 12, X12(SHIFT));
    PROBE("vmulpd", 12, X12(MUL));
    PROBE("vpermt2pd", 12, X12(PERM2));
    PROBE("vbroadcastsd (load)", 12, X12(BCAST));
    PROBE("vdivpd", 1, DIV(12));
}

int main(int argc, char **argv)
{
    char *end = NULL;
    const long reps = argc > 1 ? strtol(argv[1], &end, 10) : 20000000;
    if (argc > 2 || reps < 1 || (end && *end)) {
        fprintf(stderr, "usage: fp_probe [loops > 0] (default 20000000)\n");
        return 2;
    }
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) {
        fprintf(stderr, "fp_probe: this CPU has no AVX-512\n");
        return 2;
    }
    probe(reps);
    return 0;
}

#else

int main(void)
{
    fprintf(stderr, "fp_probe: x86-64 with GCC's inline assembly only\n");
    return 2;
}

#endif
