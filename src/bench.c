/*
 * bench: the speed report (see bench.h).
 *
 * The model is built from the default configuration with the benchmark's
 * shape: teacher data of B samples in D dimensions, full batch, so every
 * step processes exactly B samples. Timings are per step, the slowest rank
 * counting (the step ends with collectives, so ranks finish together).
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "balance.h"
#include "blas.h"
#include "comm.h"
#include "config.h"
#include "data.h"
#include "kernels.h"
#include "log.h"
#include "model.h"
#include "share.h"
#include "timer.h"
#include "train.h"
#include "version.h"

struct bench_options {
    int64_t layers, width, dim, batch, steps;
    int64_t balance;    /* rebalance every k steps; 0 = off */
    int per_rank;       /* width is per rank: M = width x ranks (weak scaling) */
    int share, no_share; /* train.share_work = node, off (default auto) */
    int activation;     /* enum mf_activation */
    int precision;      /* enum mf_precision, or -1: both, alternating */
    const char *tsv;    /* append a TSV row here (NULL: none) */
    const char *label;  /* first TSV column */
    const char *waits;  /* write every reduction's waits here (NULL: none) */
};

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -n R mfres bench [--layers L] [--width M] [--per-rank] [--dim D]\n"
            "                   [--batch B] [--steps N] [--activation NAME] [--tsv FILE]\n"
            "                   [--label TEXT] [--balance K] [--share | --no-share]\n"
            "                   [--waits FILE] [--precision double|mixed|both]\n"
            "defaults: L = 8, M = 100000, D = 16, B = 256, N = 10, tanh, double. --per-rank\n"
            "makes M the width per rank (M x R in all: weak scaling). --tsv appends one row\n"
            "(with a header when the file is new). --balance K moves particles to the faster\n"
            "ranks every K steps, as train.balance_every does (its time counts in the\n"
            "steps).\n"
            "The ranks of a node compute each other's chunks when done with theirs\n"
            "(work sharing) unless --balance is given, as train.share_work = auto does;\n"
            "--share insists on it (train.share_work = node), --no-share turns it off.\n"
            "--waits writes each rank's wait before every reduction of the timed steps.\n"
            "--precision both measures double and mixed precision three times each,\n"
            "alternating, each with a fresh model, reports each one's fastest run and their\n"
            "ratio (the peak RSS then is the process's over all six; run one precision for\n"
            "its own).\n");
}

/* The defaults with key set to value by the configuration's own parser, so
 * that a choice is checked and named as in a configuration file; 0 or -1
 * with err. */
static int probe_key(struct mf_config *probe, const char *key, const char *value, char *err,
                     size_t errlen)
{
    char assignment[96];
    config_defaults(probe);
    snprintf(assignment, sizeof assignment, "%s=%.60s", key, value);
    return config_set(probe, assignment, err, errlen);
}

/* Parse options; 0 or -1 with err. */
static int parse(int argc, char **argv, struct bench_options *o, char *err, size_t errlen)
{
    *o = (struct bench_options){.layers = 8, .width = 100000, .dim = 16, .batch = 256,
                                .steps = 10, .activation = MF_ACT_TANH, .label = "bench",
                                .precision = MF_PRECISION_DOUBLE};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t *field = !strcmp(a, "--layers") ? &o->layers
                         : !strcmp(a, "--width") ? &o->width
                         : !strcmp(a, "--dim")   ? &o->dim
                         : !strcmp(a, "--batch") ? &o->batch
                         : !strcmp(a, "--steps") ? &o->steps
                         : !strcmp(a, "--balance") ? &o->balance
                                                   : NULL;
        int *flag = !strcmp(a, "--per-rank") ? &o->per_rank
                    : !strcmp(a, "--share")  ? &o->share
                    : !strcmp(a, "--no-share") ? &o->no_share
                                             : NULL;
        if (flag) {
            *flag = 1;
            continue;
        }
        if (!field && strcmp(a, "--tsv") && strcmp(a, "--label") && strcmp(a, "--activation") &&
            strcmp(a, "--waits") && strcmp(a, "--precision"))
            return snprintf(err, errlen, "bench: unknown option '%s'", a), -1;
        if (!v)
            return snprintf(err, errlen, "bench: %s needs a value", a), -1;
        i++;
        if (!strcmp(a, "--tsv")) {
            o->tsv = v;
        } else if (!strcmp(a, "--waits")) {
            o->waits = v;
        } else if (!strcmp(a, "--label")) {
            o->label = v;
        } else if (!strcmp(a, "--activation")) {
            struct mf_config probe;
            if (probe_key(&probe, "model.activation", v, err, errlen) != 0)
                return -1;
            o->activation = probe.model.activation;
        } else if (!strcmp(a, "--precision") && !strcmp(v, "both")) {
            o->precision = -1;
        } else if (!strcmp(a, "--precision")) {
            struct mf_config probe;
            if (probe_key(&probe, "model.precision", v, err, errlen) != 0)
                return -1;
            o->precision = probe.model.precision;
        } else {
            char *end;
            errno = 0;
            *field = strtoll(v, &end, 10);
            if (*end || end == v || errno || *field < 1) /* errno: beyond int64 */
                return snprintf(err, errlen, "bench: %s needs a positive integer, not '%s'", a, v),
                       -1;
        }
    }
    if (o->share && o->no_share)
        return snprintf(err, errlen, "bench: --share and --no-share exclude each other"), -1;
    if (o->precision < 0 && o->waits)
        return snprintf(err, errlen, "bench: --waits takes one precision, not both"), -1;
    return 0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A per-rank value over the ranks: min, mean, max and the rank of the max. */
struct spread {
    double min, mean, max;
    int at;
};

static struct spread over_ranks(double value, MPI_Comm comm)
{
    struct spread s;
    comm_stats(value, comm, &s.min, &s.mean, &s.max, &s.at);
    return s;
}

/* What the timed steps measured, reduced over ranks. */
struct measured {
    int64_t n;         /* timed steps */
    double *seconds;   /* per step, the slowest rank's time, sorted */
    double *fraction;  /* per step, the mean over ranks of the ratio to the peak, sorted */
    struct spread peak;                /* each rank's median DGEMM peak, GFLOP/s */
    struct spread activation;          /* each rank's best ns per activation value */
    struct spread mpi, wait, reduce;   /* shares of the step time */
    struct spread share;               /* particles per layer owned at the end */
    double rss;                        /* the largest peak RSS, bytes */
    struct spread pss;                 /* PSS at the end, bytes; -1 where unknown */
    struct balance balance;            /* what load balancing moved */
    double shared;                     /* chunks computed by another rank; -1: no sharing */
    struct comm_wait_log waits;        /* with --waits: this rank's waits */
    double *all_waits;                 /* and on rank 0 every rank's, [rank][call] */
};

/* This process's proportional set size now, in bytes: a shared page counts
 * divided by the number of processes that map it, so with work sharing the
 * ranks' figures add up to the node's memory, where each rank's RSS counts
 * the pages of other ranks' particles that it touched in full. -1 where
 * Linux's /proc/self/smaps_rollup is missing. */
static double pss_bytes(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f)
        return -1;
    char line[256];
    double kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Pss: %lf kB", &kib) == 1)
            break;
    fclose(f);
    return kib < 0 ? -1 : kib * 1024.0;
}

/* The activation's best time per value, in ns: kernels_activate (sigma
 * alone; its _f32 twin in mixed precision) over 4096 values in [-4, 4],
 * which stay in the core's L1 and L2, repeated for about `seconds`. */
static double activation_ns(int activation, int precision, double seconds)
{
    enum { N = 4096 };
    double *a = xmalloc(2 * N * sizeof *a), *s = a + N;
    float *af = xmalloc(2 * N * sizeof *af), *sf = af + N;
    for (int i = 0; i < N; i++)
        af[i] = (float)(a[i] = 8.0 * (i + 0.5) / N - 4.0);
    double best = 1e300, spent = 0;
    for (int rep = 0; rep < 10000 && (rep < 20 || spent < seconds); rep++) {
        const double t0 = comm_wtime();
        if (precision == MF_PRECISION_MIXED)
            kernels_activate_f32(activation, N, af, sf, NULL);
        else
            kernels_activate(activation, N, a, s, NULL);
        const double dt = comm_wtime() - t0;
        spent += dt;
        best = dt < best ? dt : best;
    }
    free(a);
    free(af);
    return best / N * 1e9;
}

/* The GEMM peak of the run's precision: DGEMM, or SGEMM in mixed. */
static double gemm_peak(int precision)
{
    return precision == MF_PRECISION_MIXED ? blas_sgemm_gflops(0.2) : blas_dgemm_gflops(0.2);
}

/* The GEMM peak is measured between the steps, on the same core: a shared
 * machine's clock and neighbours drift over seconds, and each step is
 * compared with the peak measured just before and after it. */
static void measure(const struct bench_options *o, const struct mf_config *cfg,
                    const struct mf_dataset *ds, struct mf_model *m, struct train_workspace *w,
                    struct measured *r)
{
    const MPI_Comm comm = m->comm;
    const int ranks = comm_size(comm);
    const int64_t n = o->steps;
    train_step(cfg, ds, m, w, 0); /* warm-up: first touches, BLAS buffers */
    *r = (struct measured){.n = n};
    r->seconds = xmalloc((size_t)(3 * n + 1) * sizeof *r->seconds);
    r->fraction = r->seconds + n;
    double *peaks = r->fraction + n;
    const double flops_per_rank = 12.0 * (double)o->batch * (double)cfg->model.dim *
                                  (double)cfg->model.width * (double)cfg->model.layers / ranks;
    if (o->waits) {
        r->waits.capacity = n * (4 * cfg->model.layers + 16); /* 2L - 1 per step, and margin */
        r->waits.wait = xmalloc((size_t)r->waits.capacity * sizeof *r->waits.wait);
    }
    comm_time_waits(1, o->waits ? &r->waits : NULL);
    timer_reset_all();
    double step_total = 0;
    const int precision = cfg->model.precision;
    peaks[0] = gemm_peak(precision);
    const double activation = activation_ns(o->activation, precision, 0.05);
    for (int64_t k = 0; k < n; k++) {
        comm_barrier(comm);
        double t0 = comm_wtime(), busy0 = balance_clock();
        train_step(cfg, ds, m, w, k + 1);
        r->balance.busy += balance_clock() - busy0;
        if (o->balance && (k + 1) % o->balance == 0)
            balance_particles(&m->particles, &r->balance, comm);
        r->seconds[k] = comm_max(comm_wtime() - t0, comm);
        step_total += r->seconds[k];
        peaks[k + 1] = gemm_peak(precision);
        r->fraction[k] = flops_per_rank / r->seconds[k] / 1e9 / (0.5 * (peaks[k] + peaks[k + 1]));
    }
    const double mpi = timer_seconds(TIMER_MPI), wait = timer_seconds(TIMER_MPI_WAIT);
    comm_time_waits(0, NULL);
    const double after = activation_ns(o->activation, precision, 0.05);
    r->activation = over_ranks(after < activation ? after : activation, comm);
    if (o->waits) {
        r->all_waits = comm_rank(comm) == 0
                           ? xmalloc((size_t)(ranks * r->waits.n) * sizeof *r->all_waits)
                           : NULL;
        comm_gather(r->waits.wait, r->waits.n, r->all_waits, 0, comm);
    }
    comm_sum(r->fraction, (long)n, comm); /* the mean over ranks of each step's ratio */
    for (int64_t k = 0; k < n; k++)
        r->fraction[k] /= ranks;
    qsort(r->fraction, (size_t)n, sizeof *r->fraction, compare_doubles);
    qsort(r->seconds, (size_t)n, sizeof *r->seconds, compare_doubles);
    qsort(peaks, (size_t)(n + 1), sizeof *peaks, compare_doubles);
    r->peak = over_ranks(peaks[n / 2], comm); /* the median of this rank's n + 1 */
    r->mpi = over_ranks(mpi / step_total, comm);
    r->wait = over_ranks(wait / step_total, comm);
    r->reduce = over_ranks((mpi - wait) / step_total, comm);
    r->share = over_ranks((double)m->particles.count, comm);
    r->shared = -1;
    if (m->share) {
        double computed, foreign;
        share_totals(m->share, comm, &computed, &foreign);
        r->shared = foreign / computed;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r->rss = comm_max((double)ru.ru_maxrss * 1024.0, comm);
    r->pss = over_ranks(pss_bytes(), comm);
}

static void measured_free(struct measured *r)
{
    free(r->seconds);
    free(r->waits.wait);
    free(r->all_waits);
    *r = (struct measured){0};
}

/* The --waits file, one row per reduction: the step, the reduction within
 * it, then each rank's wait in seconds. Returns how many reductions in a row,
 * on average, the same rank arrived last (waited least). Rank 0 only. */
static double write_waits(FILE *f, const char *path, int ranks, int64_t steps,
                          const struct measured *r)
{
    const long n = r->waits.n, per_step = n / steps;
    fprintf(f, "step\treduction");
    for (int q = 0; q < ranks; q++)
        fprintf(f, "\twait_%d", q);
    fprintf(f, "\n");
    long runs = 0;
    int previous_last = -1;
    for (long i = 0; i < n; i++) {
        fprintf(f, "%ld\t%ld", i / per_step + 1, i % per_step);
        int last = 0;
        for (int q = 0; q < ranks; q++) {
            const double w = r->all_waits[q * n + i];
            fprintf(f, "\t%.17g", w); /* exact: readers find the same last rank */
            if (w < r->all_waits[last * n + i])
                last = q;
        }
        fprintf(f, "\n");
        runs += last != previous_last;
        previous_last = last;
    }
    if (fclose(f) != 0)
        log_fatal("bench: cannot write %s", path);
    return runs ? (double)n / (double)runs : 0;
}

/* Rank 0's output files, opened before the run so that a bad path fails at
 * once. */
struct outputs {
    FILE *tsv, *waits;
};

/* Open path (if not NULL) with mode; 0, or -1 with err. */
static int open_output(const char *path, const char *mode, FILE **f, char *err, size_t errlen)
{
    *f = path ? fopen(path, mode) : NULL;
    if (path && !*f)
        return snprintf(err, errlen, "bench: cannot write %s: %s", path, strerror(errno)), -1;
    return 0;
}

/* The table on stdout and, with --tsv, one row. Rank 0 only. */
static void report(const struct bench_options *o, const struct mf_config *cfg, int ranks,
                   const struct measured *r, struct outputs *out)
{
    const int64_t n = r->n;
    const double L = (double)cfg->model.layers, M = (double)cfg->model.width;
    const double D = (double)cfg->model.dim, B = (double)o->batch;
    const int mixed = cfg->model.precision == MF_PRECISION_MIXED;
    const char *gemm = mixed ? "SGEMM" : "DGEMM";
    const double local = L * r->share.max; /* the largest share */
    const double state = local * (mixed ? 4.0 : 8.0) * (2.0 * D + 1.0);
    const double median = r->seconds[n / 2], fraction = r->fraction[n / 2];
    const double gflops = 12.0 * B * D * M * L / median / 1e9;
    /* Core time per sample x particle x layer: the figure of merit at small
     * D, where the activations (not counted in the nominal flops) weigh. */
    const double ns = median * ranks / (B * M * L) * 1e9;
    /* Its lower bound on this core, for this design (activations
     * recomputed, not stored): two activations (forward, and again in the
     * backward) at the probe's best speed, and the multiply-adds of the
     * products at the GEMM peak of the precision: 7 D per sample and
     * particle, 6 D in the first layer (no adjoint increment there). */
    const double multiply_adds = (7.0 - 1.0 / L) * D;
    const double bound = 2 * r->activation.mean + 2 * multiply_adds / r->peak.mean;
    printf("mfres bench %s, %d ranks, kernels %s, BLAS %s, %d BLAS thread(s) per rank\n",
           mfres_version, ranks, kernels_path()->name, blas_name(), blas_threads());
    printf("model L = %.0f, M = %.0f (%.0f per rank), D = %.0f, B = %.0f, %s, %s precision; "
           "%lld steps\n",
           L, M, M / ranks, D, B, config_activation_name(o->activation),
           config_precision_name(cfg->model.precision), (long long)n);
    printf("  %s peak per rank      %8.2f GFLOP/s (min %.2f, max %.2f; medians of %lld "
           "between the steps)\n",
           gemm, r->peak.mean, r->peak.min, r->peak.max, (long long)n + 1);
    printf("  step, nominal            %8.2f GFLOP/s in all, %.2f per rank\n", gflops,
           gflops / ranks);
    printf("  core time per sample x particle x layer %.3f ns (12 D = %.0f nominal flops and "
           "two activations)\n",
           ns, 12 * D);
    printf("  bound (activations recomputed in the backward): two activations at %.3f ns and "
           "%.4g multiply-adds at the %s peak, %.3f ns; the step takes %.2f times that\n",
           r->activation.mean, multiply_adds, gemm, bound, ns / bound);
    printf("  step / %s peak        %8.1f %% median (min %.1f %%, max %.1f %%; each step "
           "against the peak around it)\n",
           gemm, 100 * fraction, 100 * r->fraction[0], 100 * r->fraction[n - 1]);
    printf("  seconds per step         %8.4f median (min %.4f, max %.4f)\n", median,
           r->seconds[0], r->seconds[n - 1]);
    printf("  peak RSS per rank        %8.1f MiB (state %.1f MiB; %.1f bytes per particle, "
           "state %.0f)%s\n",
           r->rss / 1048576, state / 1048576, r->rss / local, state / local,
           o->precision < 0 ? "; the process's, both precisions" : "");
    printf("  RSS / (1.25 state + 64 MiB) %5.2f\n", r->rss / (1.25 * state + 64 * 1048576.0));
    if (r->pss.min >= 0)
        printf("  PSS per rank at the end  %8.1f MiB max (%.1f bytes per particle; %.1f MiB "
               "over all ranks)\n",
               r->pss.max / 1048576, r->pss.max / local, r->pss.mean * ranks / 1048576);
    printf("  time in MPI              %8.1f %% mean (min %.1f %%, max %.1f %% on rank %d)\n",
           100 * r->mpi.mean, 100 * r->mpi.min, 100 * r->mpi.max, r->mpi.at);
    printf("    waiting for other ranks%8.1f %% mean (max %.1f %% on rank %d)\n",
           100 * r->wait.mean, 100 * r->wait.max, r->wait.at);
    printf("    reductions             %8.1f %% mean (max %.1f %% on rank %d)\n",
           100 * r->reduce.mean, 100 * r->reduce.max, r->reduce.at);
    if (o->balance)
        printf("  load balance             every %lld steps: %lld moves, %lld particles per "
               "layer moved; shares %.0f to %.0f per layer\n",
               (long long)o->balance, (long long)r->balance.moves, (long long)r->balance.moved,
               r->share.min, r->share.max);
    if (r->shared >= 0)
        printf("  work sharing             %.1f %% of the chunk evaluations by another rank of "
               "the node\n",
               100 * r->shared);
    if (out->waits) {
        const double run = write_waits(out->waits, o->waits, ranks, n, r);
        if (ranks > 1)
            printf("  last rank to arrive      the same for %.1f reductions in a row on average "
                   "(%.1f if random)\n",
                   run, ranks / (ranks - 1.0));
        printf("  waits                    %ld reductions per rank in %s\n", r->waits.n,
               o->waits);
    }
    fflush(stdout);
    FILE *f = out->tsv;
    if (!f)
        return;
    /* dgemm_gflops holds the peak of the run's precision (SGEMM in mixed) */
    if (ftell(f) == 0)
        fprintf(f, "label\tranks\tlayers\twidth\tdim\tbatch\tsteps\tdgemm_gflops\t"
                   "step_gflops\tpeak_fraction\tseconds_median\tseconds_min\t"
                   "seconds_max\trss_bytes\tstate_bytes\tmpi_fraction_mean\t"
                   "mpi_fraction_max\tmpi_wait_fraction_max\t"
                   "mpi_reduce_fraction_max\tpss_bytes\tns_per_unit\tactivation_ns\t"
                   "bound_ns\tprecision\n");
    fprintf(f, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%lld\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t%.6g\t"
               "%.0f\t%.0f\t%.6g\t%.6g\t%.6g\t%.6g\t%.0f\t%.6g\t%.6g\t%.6g\t%s\n",
            o->label, ranks, L, M, D, B, (long long)n, r->peak.mean, gflops, fraction, median,
            r->seconds[0], r->seconds[n - 1], r->rss, state, r->mpi.mean, r->mpi.max,
            r->wait.max, r->reduce.max, r->pss.min >= 0 ? r->pss.max : -1, ns,
            r->activation.mean, bound, config_precision_name(cfg->model.precision));
}

int bench_main(int argc, char **argv, MPI_Comm comm)
{
    struct bench_options o;
    char err[MF_ERR_MAX] = "";
    const int rank = comm_rank(comm), ranks = comm_size(comm);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (rank == 0)
                bench_usage(stdout);
            return MF_EXIT_OK;
        }
    const int parsed = parse(argc, argv, &o, err, sizeof err) == 0;
    struct outputs out = {NULL, NULL};
    int ok = parsed;
    if (ok && rank == 0)
        ok = open_output(o.tsv, "a", &out.tsv, err, sizeof err) == 0 &&
             open_output(o.waits, "w", &out.waits, err, sizeof err) == 0;
    if (comm_first_failure(ok, comm) >= 0) {
        if (rank == 0) {
            fprintf(stderr, "mfres: error: %s\n", err);
            if (!parsed)
                bench_usage(stderr);
            if (out.tsv)
                fclose(out.tsv);
        }
        return 2;
    }
    if (rank == 0)
        blas_warn_generic(); /* before the minutes a slow core would take */

    struct mf_config cfg;
    config_defaults(&cfg);
    cfg.model.layers = o.layers;
    cfg.model.width = o.per_rank ? o.width * ranks : o.width;
    cfg.model.dim = o.dim;
    cfg.model.activation = o.activation;
    cfg.train.share_work = o.share ? MF_SHARE_NODE : o.no_share ? MF_SHARE_OFF : MF_SHARE_AUTO;
    cfg.train.balance_every = o.balance;
    cfg.data.input_dim = o.dim;
    cfg.data.samples = o.batch;
    cfg.data.test_samples = 0;
    cfg.train.lr = 1e-3; /* small: the state stays sane for any number of steps */
    if (config_resolve(&cfg, NULL, err, sizeof err) != 0) { /* the same on every rank */
        if (rank == 0)
            fprintf(stderr, "mfres: error: bench: %s\n", err);
        return MF_EXIT_USAGE;
    }

    /* One precision, or both: three runs each, alternating, each keeping
     * its fastest (the least median step). */
    const int both = o.precision < 0, rounds = both ? 3 : 1;
    struct measured best[2] = {{0}};
    for (int round = 0; round < rounds; round++)
        for (int i = 0; i < 1 + both; i++) {
            cfg.model.precision = both ? i : o.precision;
            struct mf_dataset ds;
            data_build(&cfg, NULL, &ds);
            struct mf_model m;
            model_create(&m, &cfg, ds.d_out, comm);
            struct train_workspace *w = train_workspace_create(&cfg, &ds);
            struct measured r;
            measure(&o, &cfg, &ds, &m, w, &r);
            train_workspace_destroy(w);
            model_destroy(&m);
            data_free(&ds);
            if (round == 0 || r.seconds[r.n / 2] < best[i].seconds[best[i].n / 2]) {
                measured_free(&best[i]);
                best[i] = r;
            } else {
                measured_free(&r);
            }
        }
    for (int i = 0; i < 1 + both && rank == 0; i++) {
        cfg.model.precision = both ? i : o.precision;
        report(&o, &cfg, ranks, &best[i], &out);
    }
    if (both && rank == 0) {
        const double ratio = best[0].seconds[best[0].n / 2] / best[1].seconds[best[1].n / 2];
        printf("mixed precision: %.2f times as fast per step as double (medians; the fastest "
               "of 3 alternating runs each)\n", ratio);
    }
    for (int i = 0; i < 2; i++)
        measured_free(&best[i]);
    if (out.tsv && fclose(out.tsv) != 0)
        log_fatal("bench: cannot write %s", o.tsv);
    return 0;
}
