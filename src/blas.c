/*
 * blas: what the process's BLAS is and can do (see blas.h).
 */
#include "blas.h"

#include <cblas.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "log.h"

double blas_dgemm_gflops(double seconds)
{
    const int n = 1024;
    double *a = xmalloc((size_t)3 * n * n * sizeof *a), *b = a + n * n, *c = b + n * n;
    for (int64_t i = 0; i < (int64_t)3 * n * n; i++)
        a[i] = (double)(i % 7) * 0.25 - 0.75;
    double best = 0, spent = 0;
    for (int rep = 0; rep < 20 && (rep < 3 || spent < seconds); rep++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, a, n, b, n, 0.0, c,
                    n);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double dt = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        spent += dt;
        if (2.0 * n * n * n / dt > best)
            best = 2.0 * n * n * n / dt;
    }
    free(a);
    return best / 1e9;
}

int blas_threads(void) { return openblas_get_num_threads(); }

const char *blas_core(void) { return openblas_get_corename(); }

/* NULL when the BLAS core suits this CPU, else the OPENBLAS_CORETYPE to set. */
static const char *blas_advice(void)
{
    static const char *const avx2_cores[] = {"haswell", "zen", "skylakex", "cooperlake",
                                             "sapphirerapids"};
    const char *core = openblas_get_corename();
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2"))
        return NULL;
    for (size_t i = 0; i < sizeof avx2_cores / sizeof avx2_cores[0]; i++)
        if (!strcasecmp(core, avx2_cores[i]))
            return NULL;
    return __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell";
}

int blas_warn_generic(void)
{
    const char *advice = blas_advice();
    if (advice)
        log_warn("OpenBLAS uses the generic core '%s' on a CPU with AVX2; it may run several "
                 "times slower. Set OPENBLAS_CORETYPE=%s.",
                 blas_core(), advice);
    return advice != NULL;
}
