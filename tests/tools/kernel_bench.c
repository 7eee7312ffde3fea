/*
 * kernel_bench [D] [repetitions]
 *
 * The chunk kernels alone, without MPI, data or particle updates: the
 * forward and backward kernels on 64 chunks of MF_CHUNK particles and
 * B = 256 samples, tanh, best of the repetitions. Prints ns per (sample,
 * particle) and the ratio to this core's DGEMM peak. For profiling where a
 * step's time goes, e.g.
 *     perf record build/tests/kernel_bench 16 200 && perf report --sort symbol
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "config.h"
#include "kernels.h"
#include "log.h"
#include "particles.h"

enum { B = 256, CHUNKS = 64 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double *filled(int64_t n, int period, double scale)
{
    double *a = xmalloc((size_t)n * sizeof *a);
    for (int64_t i = 0; i < n; i++)
        a[i] = scale * ((double)(i % period) - 0.5 * period);
    return a;
}

int main(int argc, char **argv)
{
    const int D = argc > 1 ? atoi(argv[1]) : 16, reps = argc > 2 ? atoi(argv[2]) : 30;
    if (D < 1 || reps < 1) {
        fprintf(stderr, "usage: kernel_bench [D >= 1] [repetitions >= 1]\n");
        return 2;
    }
    const int64_t cm = MF_CHUNK, per_chunk = cm * D;
    double *X = filled(B * D, 13, 0.1), *P = filled(B * D, 7, 0.01);
    double *U = filled(CHUNKS * per_chunk, 11, 0.1), *W = filled(CHUNKS * per_chunk, 5, 0.2);
    double *bias = filled(CHUNKS * cm, 3, 0.1);
    double *drift = xcalloc(B * D, sizeof *drift), *dP = xcalloc(B * D, sizeof *dP);
    double *gu = xmalloc((size_t)per_chunk * sizeof *gu), *gw = xmalloc((size_t)per_chunk * sizeof *gw);
    double *gb = xmalloc((size_t)cm * sizeof *gb);
    double *work = xmalloc((size_t)kernels_workspace(cm) * sizeof *work);
    double forward = 1e30, backward = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        const double t0 = now();
        for (int c = 0; c < CHUNKS; c++)
            kernels_forward(MF_ACT_TANH, B, D, X, cm, U + c * per_chunk, W + c * per_chunk,
                            bias + c * cm, drift, work);
        const double t1 = now();
        for (int c = 0; c < CHUNKS; c++)
            kernels_backward(MF_ACT_TANH, B, D, X, P, cm, U + c * per_chunk, W + c * per_chunk,
                             bias + c * cm, dP, gu, gw, gb, work);
        const double t2 = now();
        forward = t1 - t0 < forward ? t1 - t0 : forward;
        backward = t2 - t1 < backward ? t2 - t1 : backward;
    }
    const double pairs = (double)B * (double)cm * CHUNKS, peak = kernels_dgemm_gflops(0.5);
    const double gflops = 12.0 * D * pairs / (forward + backward) / 1e9;
    printf("D = %d: forward %.2f ns, backward %.2f ns per (sample, particle); %.1f GFLOP/s "
           "nominal, %.1f%% of the DGEMM peak (%.1f GFLOP/s)\n",
           D, 1e9 * forward / pairs, 1e9 * backward / pairs, gflops, 100 * gflops / peak, peak);
    free(X), free(P), free(U), free(W), free(bias), free(drift), free(dP);
    free(gu), free(gw), free(gb), free(work);
    return 0;
}
