/*
 * kernel_bench [D] [repetitions] [streamed chunks]
 *
 * The chunk kernels alone, without MPI, data or particle updates: the
 * forward and backward kernels on 64 chunks of MF_CHUNK particles and
 * B = 256 samples, tanh, best of the repetitions. Prints ns per (sample,
 * particle) and the ratio to this core's DGEMM peak. For profiling where a
 * step's time goes, e.g.
 *     perf record build/tests/kernel_bench 16 200 && perf report --sort symbol
 *
 * With a third argument N (> 64), whether streaming the particles from
 * memory costs anything: blocks of 50 chunks taken in turn from the 64
 * cached chunks and from N chunks streamed in order (N = 6250 is a step's
 * 211 MB at D = 16), so that both see the same machine; prints the mean
 * time of each over the repetitions, e.g. kernel_bench 16 8 6250.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "blas.h"
#include "config.h"
#include "kernels.h"
#include "log.h"
#include "particles.h"

enum { B = 256, CHUNKS = 64, BLOCK = 50 };

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

/* The chunks' arrays and the kernels' inputs and outputs. */
struct bench {
    int D;
    double *X, *P, *U, *W, *bias, *drift, *dP, *gu, *gw, *gb, *work;
};

/* Forward, then backward, on chunks c0 .. c0 + n - 1 taken modulo wrap;
 * adds the seconds of each to *forward and *backward. */
static void run_chunks(const struct bench *b, int64_t c0, int64_t n, int64_t wrap,
                       double *forward, double *backward)
{
    const int64_t cm = MF_CHUNK, pc = cm * b->D;
    const double t0 = now();
    for (int64_t i = 0; i < n; i++) {
        const int64_t c = (c0 + i) % wrap;
        kernels_forward(MF_ACT_TANH, B, b->D, b->X, cm, b->U + c * pc, b->W + c * pc,
                        b->bias + c * cm, b->drift, b->work);
    }
    const double t1 = now();
    for (int64_t i = 0; i < n; i++) {
        const int64_t c = (c0 + i) % wrap;
        kernels_backward(MF_ACT_TANH, B, b->D, b->X, b->P, cm, b->U + c * pc, b->W + c * pc,
                         b->bias + c * cm, b->dP, b->gu, b->gw, b->gb, b->work);
    }
    *forward += t1 - t0;
    *backward += now() - t1;
}

int main(int argc, char **argv)
{
    const int D = argc > 1 ? atoi(argv[1]) : 16, reps = argc > 2 ? atoi(argv[2]) : 30;
    const int64_t streamed = argc > 3 ? atoll(argv[3]) : 0;
    if (D < 1 || reps < 1 || (argc > 3 && streamed <= CHUNKS)) {
        fprintf(stderr, "usage: kernel_bench [D >= 1] [repetitions >= 1] [streamed chunks > %d]\n",
                CHUNKS);
        return 2;
    }
    const int64_t chunks = streamed ? streamed : CHUNKS, cm = MF_CHUNK, pc = cm * D;
    struct bench b = {
        .D = D,
        .X = filled(B * D, 13, 0.1),
        .P = filled(B * D, 7, 0.01),
        .U = filled(chunks * pc, 11, 0.1),
        .W = filled(chunks * pc, 5, 0.2),
        .bias = filled(chunks * cm, 3, 0.1),
        .drift = xcalloc(B * D, sizeof(double)),
        .dP = xcalloc(B * D, sizeof(double)),
        .gu = xmalloc((size_t)pc * sizeof(double)),
        .gw = xmalloc((size_t)pc * sizeof(double)),
        .gb = xmalloc((size_t)cm * sizeof(double)),
        .work = xmalloc((size_t)kernels_workspace(cm) * sizeof(double)),
    };
    if (streamed) {
        double f[2] = {0, 0}, bw[2] = {0, 0}; /* [0] cached, [1] streamed */
        for (int rep = 0; rep < reps; rep++)
            for (int64_t c0 = 0; c0 < streamed; c0 += BLOCK) {
                const int64_t n = streamed - c0 < BLOCK ? streamed - c0 : BLOCK;
                run_chunks(&b, c0, n, CHUNKS, &f[0], &bw[0]);
                run_chunks(&b, c0, n, streamed, &f[1], &bw[1]);
            }
        const double pairs = (double)B * (double)cm * (double)streamed * reps;
        printf("D = %d, mean ns per (sample, particle): %d cached chunks forward %.2f, backward "
               "%.2f; %lld streamed chunks forward %.2f, backward %.2f; streamed / cached %.3f\n",
               D, CHUNKS, 1e9 * f[0] / pairs, 1e9 * bw[0] / pairs, (long long)streamed,
               1e9 * f[1] / pairs, 1e9 * bw[1] / pairs, (f[1] + bw[1]) / (f[0] + bw[0]));
    } else {
        double forward = 1e30, backward = 1e30;
        for (int rep = 0; rep < reps; rep++) {
            double f = 0, bw = 0;
            run_chunks(&b, 0, CHUNKS, CHUNKS, &f, &bw);
            forward = f < forward ? f : forward;
            backward = bw < backward ? bw : backward;
        }
        const double pairs = (double)B * (double)cm * CHUNKS, peak = blas_dgemm_gflops(0.5);
        const double gflops = 12.0 * D * pairs / (forward + backward) / 1e9;
        printf("D = %d: forward %.2f ns, backward %.2f ns per (sample, particle); %.1f GFLOP/s "
               "nominal, %.1f%% of the DGEMM peak (%.1f GFLOP/s)\n",
               D, 1e9 * forward / pairs, 1e9 * backward / pairs, gflops, 100 * gflops / peak,
               peak);
    }
    free(b.X), free(b.P), free(b.U), free(b.W), free(b.bias), free(b.drift), free(b.dP);
    free(b.gu), free(b.gw), free(b.gb), free(b.work);
    return 0;
}
