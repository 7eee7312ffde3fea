/*
 * blas: what the process's BLAS is and can do (see blas.h). Functions that
 * only one library has are looked up with dlsym, so that mfres links with
 * any CBLAS and still names OpenBLAS's core where it runs OpenBLAS.
 */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include "blas.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "log.h"

/* GFLOP/s of a 1024^3 DGEMM, or SGEMM if single: the best of a few. */
static double gemm_gflops(int single, double seconds)
{
    const int n = 1024;
    const size_t values = (size_t)3 * n * n;
    double *a = xmalloc(values * sizeof *a), *b = a + n * n, *c = b + n * n;
    float *af = (float *)a, *bf = af + n * n, *cf = bf + n * n;
    for (size_t i = 0; i < values; i++) {
        const double x = (double)(i % 7) * 0.25 - 0.75;
        if (single)
            af[i] = (float)x;
        else
            a[i] = x;
    }
    double best = 0, spent = 0;
    for (int rep = 0; rep < 20 && (rep < 3 || spent < seconds); rep++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (single)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, af, n, bf, n, 0,
                        cf, n);
        else
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c,
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

double blas_dgemm_gflops(double seconds) { return gemm_gflops(0, seconds); }

double blas_sgemm_gflops(double seconds) { return gemm_gflops(1, seconds); }

/* A function of the loaded libraries by name, or NULL. */
static void *blas_function(const char *name) { return dlsym(RTLD_DEFAULT, name); }

/* OpenBLAS's core name, or NULL under another library. */
static const char *openblas_core(void)
{
    const char *(*corename)(void) = (const char *(*)(void))blas_function("openblas_get_corename");
    return corename ? corename() : NULL;
}

const char *blas_name(void)
{
    static char name[80];
    const char *core = openblas_core();
    const char *(*blis_version)(void) =
        (const char *(*)(void))blas_function("bli_info_get_version_str");
    if (core)
        snprintf(name, sizeof name, "OpenBLAS core %s", core);
    else if (blis_version)
        snprintf(name, sizeof name, "BLIS %s", blis_version());
    else if (blas_function("mkl_get_max_threads"))
        snprintf(name, sizeof name, "MKL");
    else
        snprintf(name, sizeof name, "CBLAS");
    return name;
}

int blas_threads(void)
{
    static const char *const getters[] = {"openblas_get_num_threads", "mkl_get_max_threads",
                                          "bli_thread_get_num_threads"};
    for (size_t i = 0; i < sizeof getters / sizeof getters[0]; i++) {
        int (*threads)(void) = (int (*)(void))blas_function(getters[i]);
        if (threads)
            return threads();
    }
    return 0;
}

/* NULL when the BLAS core suits this CPU (or the BLAS is not OpenBLAS), else
 * the OPENBLAS_CORETYPE to set. */
static const char *blas_advice(void)
{
    static const char *const avx2_cores[] = {"haswell", "zen", "skylakex", "cooperlake",
                                             "sapphirerapids"};
    const char *core = openblas_core();
    if (!core)
        return NULL;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2"))
        return NULL;
    for (size_t i = 0; i < sizeof avx2_cores / sizeof avx2_cores[0]; i++)
        if (!strcasecmp(core, avx2_cores[i]))
            return NULL;
    return __builtin_cpu_supports("avx512f") ? "SkylakeX" : "Haswell";
#else
    (void)avx2_cores;
    return NULL;
#endif
}

int blas_warn_generic(void)
{
    const char *advice = blas_advice();
    if (advice)
        log_warn("OpenBLAS uses the generic core '%s' on a CPU with AVX2; it may run several "
                 "times slower. Set OPENBLAS_CORETYPE=%s.",
                 openblas_core(), advice);
    return advice != NULL;
}
