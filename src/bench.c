/*
 * bench: the speed report (see bench.h).
 *
 * The model is built from the default configuration with the benchmark's
 * shape: teacher data of B samples in D dimensions, full batch, so every
 * step processes exactly B samples. Timings are per step, the slowest rank
 * counting (the step ends with collectives, so ranks finish together).
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "balance.h"
#include "comm.h"
#include "config.h"
#include "data.h"
#include "kernels.h"
#include "log.h"
#include "model.h"
#include "timer.h"
#include "train.h"
#include "version.h"

struct bench_options {
    int64_t layers, width, dim, batch, steps;
    int64_t balance;    /* rebalance every k steps; 0 = off */
    int per_rank;       /* width is per rank: M = width x ranks (weak scaling) */
    int activation;     /* enum mf_activation */
    const char *tsv;    /* append a TSV row here (NULL: none) */
    const char *label;  /* first TSV column */
};

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -n R mfres bench [--layers L] [--width M] [--per-rank] [--dim D]\n"
            "                   [--batch B] [--steps N] [--activation NAME] [--tsv FILE]\n"
            "                   [--label TEXT] [--balance K]\n"
            "defaults: L = 8, M = 100000, D = 16, B = 256, N = 10, tanh. --per-rank makes M\n"
            "the width per rank (M x R in all: weak scaling). --tsv appends one row (with a\n"
            "header when the file is new). --balance K moves particles to the faster ranks\n"
            "every K steps, as train.balance_every does (its time counts in the steps).\n");
}

/* Parse options; 0 or -1 with err. */
static int parse(int argc, char **argv, struct bench_options *o, char *err, size_t errlen)
{
    *o = (struct bench_options){8, 100000, 16, 256, 10, 0, 0, MF_ACT_TANH, NULL, "bench"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t *field = !strcmp(a, "--layers") ? &o->layers
                         : !strcmp(a, "--width") ? &o->width
                         : !strcmp(a, "--dim")   ? &o->dim
                         : !strcmp(a, "--batch") ? &o->batch
                         : !strcmp(a, "--steps") ? &o->steps
                         : !strcmp(a, "--balance") ? &o->balance
                                                   : NULL;
        if (!strcmp(a, "--per-rank")) {
            o->per_rank = 1;
            continue;
        }
        if (!field && strcmp(a, "--tsv") && strcmp(a, "--label") && strcmp(a, "--activation"))
            return snprintf(err, errlen, "bench: unknown option '%s'", a), -1;
        if (!v)
            return snprintf(err, errlen, "bench: %s needs a value", a), -1;
        i++;
        if (!strcmp(a, "--tsv")) {
            o->tsv = v;
        } else if (!strcmp(a, "--label")) {
            o->label = v;
        } else if (!strcmp(a, "--activation")) {
            struct mf_config probe;
            char assignment[64];
            config_defaults(&probe);
            snprintf(assignment, sizeof assignment, "model.activation=%s", v);
            if (config_set(&probe, assignment, err, errlen) != 0)
                return -1;
            o->activation = probe.model.activation;
        } else {
            char *end;
            *field = strtoll(v, &end, 10);
            if (*end || *field < 1)
                return snprintf(err, errlen, "bench: %s needs a positive integer, not '%s'", a, v),
                       -1;
        }
    }
    return 0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int bench_main(int argc, char **argv, MPI_Comm comm)
{
    struct bench_options o;
    char err[MF_ERR_MAX] = "";
    const int rank = comm_rank(comm), ranks = comm_size(comm);
    int ok = parse(argc, argv, &o, err, sizeof err) == 0;
    if (comm_first_failure(ok, comm) >= 0) {
        if (rank == 0) {
            fprintf(stderr, "mfres: error: %s\n", err);
            bench_usage(stderr);
        }
        return 2;
    }
    if (rank == 0)
        kernels_warn_generic_blas(); /* before the minutes a slow core would take */

    struct mf_config cfg;
    config_defaults(&cfg);
    cfg.model.layers = o.layers;
    cfg.model.width = o.per_rank ? o.width * ranks : o.width;
    cfg.model.dim = o.dim;
    cfg.model.activation = o.activation;
    cfg.data.input_dim = o.dim;
    cfg.data.samples = o.batch;
    cfg.data.test_samples = 0;
    cfg.train.lr = 1e-3; /* small: the state stays sane for any number of steps */
    if (config_resolve(&cfg, NULL, err, sizeof err) != 0)
        log_fatal("bench: %s", err);

    struct mf_dataset ds;
    data_build(&cfg, NULL, &ds);
    struct mf_model m;
    model_create(&m, &cfg, ds.d_out, comm);
    struct train_workspace *w = train_workspace_create(&cfg, &ds);

    /* The DGEMM peak is measured between the steps, on the same core: a
     * shared machine's clock and neighbours drift over seconds, and each
     * step is compared with the peak measured just before and after it. */
    train_step(&cfg, &ds, &m, w, 0); /* warm-up: first touches, BLAS buffers */
    const int64_t n = o.steps;
    double *seconds = xmalloc((size_t)(3 * n + 1) * sizeof *seconds);
    double *peaks = seconds + n, *fraction = peaks + n + 1;
    const double flops_per_rank = 12.0 * (double)o.batch * (double)cfg.model.dim *
                                  (double)cfg.model.width * (double)cfg.model.layers / ranks;
    comm_time_waits(1);
    timer_reset_all();
    double step_total = 0, busy = 0;
    int64_t moves = 0, moved = 0;
    peaks[0] = kernels_dgemm_gflops(0.2);
    for (int64_t k = 0; k < n; k++) {
        comm_barrier(comm);
        double t0 = comm_wtime(), mpi0 = timer_seconds(TIMER_MPI);
        train_step(&cfg, &ds, &m, w, k + 1);
        busy += comm_wtime() - t0 - (timer_seconds(TIMER_MPI) - mpi0);
        if (o.balance && (k + 1) % o.balance == 0) {
            double imbalance;
            int64_t now = balance_particles(&m.particles, busy, &imbalance, comm);
            moves += now > 0, moved += now, busy = 0;
        }
        seconds[k] = comm_max(comm_wtime() - t0, comm);
        step_total += seconds[k];
        peaks[k + 1] = kernels_dgemm_gflops(0.2);
        fraction[k] = flops_per_rank / seconds[k] / 1e9 / (0.5 * (peaks[k] + peaks[k + 1]));
    }
    const double mpi_seconds = timer_seconds(TIMER_MPI);
    const double wait_seconds = timer_seconds(TIMER_MPI_WAIT);
    comm_time_waits(0);
    comm_sum(fraction, (long)n, comm); /* the mean over ranks of each step's ratio */
    for (int64_t k = 0; k < n; k++)
        fraction[k] /= ranks;
    qsort(fraction, (size_t)n, sizeof *fraction, compare_doubles);
    qsort(peaks, (size_t)(n + 1), sizeof *peaks, compare_doubles);
    const double peak = peaks[n / 2]; /* the median of this rank's n + 1 */
    double mpi_min, mpi_mean, mpi_max;
    int mpi_slowest;
    comm_stats(mpi_seconds / step_total, comm, &mpi_min, &mpi_mean, &mpi_max,
               &mpi_slowest);
    double wait_min, wait_mean, wait_max, reduce_min, reduce_mean, reduce_max;
    int wait_slowest, reduce_slowest;
    comm_stats(wait_seconds / step_total, comm, &wait_min, &wait_mean, &wait_max,
               &wait_slowest);
    comm_stats((mpi_seconds - wait_seconds) / step_total, comm, &reduce_min, &reduce_mean,
               &reduce_max, &reduce_slowest);
    double peak_min, peak_mean, peak_max;
    int peak_slowest;
    comm_stats(peak, comm, &peak_min, &peak_mean, &peak_max, &peak_slowest);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = comm_max((double)ru.ru_maxrss * 1024.0, comm);
    qsort(seconds, (size_t)n, sizeof *seconds, compare_doubles);

    const double L = (double)cfg.model.layers, M = (double)cfg.model.width;
    const double D = (double)cfg.model.dim, B = (double)o.batch;
    const double local = L * comm_max((double)m.particles.count, comm); /* the largest share */
    const double state = local * 8.0 * (2.0 * D + 1.0);
    const double median = seconds[n / 2];
    const double gflops = 12.0 * B * D * M * L / median / 1e9;
    const double per_rank = gflops / ranks;
    double share_min, share_mean, share_max;
    int share_largest;
    comm_stats((double)m.particles.count, comm, &share_min, &share_mean, &share_max,
               &share_largest);
    if (rank == 0) {
        printf("mfres bench %s, %d ranks, OpenBLAS core %s, %d BLAS thread(s) per rank\n",
               mfres_version, ranks, kernels_blas_core(), kernels_blas_threads());
        printf("model L = %.0f, M = %.0f (%.0f per rank), D = %.0f, B = %.0f, %s; %lld steps\n",
               L, M, M / ranks, D, B, config_activation_name(o.activation), (long long)o.steps);
        printf("  DGEMM peak per rank      %8.2f GFLOP/s (min %.2f, max %.2f; medians of %lld "
               "between the steps)\n",
               peak_mean, peak_min, peak_max, (long long)n + 1);
        printf("  step, nominal            %8.2f GFLOP/s in all, %.2f per rank\n", gflops,
               per_rank);
        printf("  step / DGEMM peak        %8.1f %% median (min %.1f %%, max %.1f %%; each step "
               "against the peak around it)\n",
               100 * fraction[n / 2], 100 * fraction[0], 100 * fraction[n - 1]);
        printf("  seconds per step         %8.4f median (min %.4f, max %.4f)\n", median,
               seconds[0], seconds[n - 1]);
        printf("  peak RSS per rank        %8.1f MiB (state %.1f MiB; %.1f bytes per particle, "
               "state %.0f)\n",
               rss / 1048576, state / 1048576, rss / local, state / local);
        printf("  RSS / (1.25 state + 64 MiB) %5.2f\n", rss / (1.25 * state + 64 * 1048576.0));
        printf("  time in MPI              %8.1f %% mean (min %.1f %%, max %.1f %% on rank %d)\n",
               100 * mpi_mean, 100 * mpi_min, 100 * mpi_max, mpi_slowest);
        printf("    waiting for other ranks%8.1f %% mean (max %.1f %% on rank %d)\n",
               100 * wait_mean, 100 * wait_max, wait_slowest);
        printf("    reductions             %8.1f %% mean (max %.1f %% on rank %d)\n",
               100 * reduce_mean, 100 * reduce_max, reduce_slowest);
        if (o.balance)
            printf("  load balance             every %lld steps: %lld moves, %lld particles per "
                   "layer moved; shares %.0f to %.0f per layer\n",
                   (long long)o.balance, (long long)moves, (long long)moved, share_min, share_max);
        fflush(stdout);
        if (o.tsv) {
            FILE *f = fopen(o.tsv, "a");
            if (!f)
                log_fatal("bench: cannot append to %s", o.tsv);
            if (ftell(f) == 0)
                fprintf(f, "label\tranks\tlayers\twidth\tdim\tbatch\tsteps\tdgemm_gflops\t"
                           "step_gflops\tpeak_fraction\tseconds_median\tseconds_min\t"
                           "seconds_max\trss_bytes\tstate_bytes\tmpi_fraction_mean\t"
                           "mpi_fraction_max\tmpi_wait_fraction_max\t"
                           "mpi_reduce_fraction_max\n");
            fprintf(f, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%lld\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t"
                       "%.0f\t%.0f\t%.6g\t%.6g\t%.6g\t%.6g\n",
                    o.label, ranks, L, M, D, B, (long long)o.steps, peak_mean, gflops,
                    fraction[n / 2], median, seconds[0], seconds[n - 1], rss, state,
                    mpi_mean, mpi_max, wait_max, reduce_max);
            fclose(f);
        }
    }
    free(seconds);
    train_workspace_destroy(w);
    model_destroy(&m);
    data_free(&ds);
    return 0;
}
