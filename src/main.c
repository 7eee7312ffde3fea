/*
 * mfres: mean-field ResNet particle simulator.
 *
 * main reads as: parse the command line and the configuration (every rank,
 * identically), agree that all ranks succeeded, set up the run directory,
 * the data and the particles, train, report, clean up.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "checkpoint.h"
#include "comm.h"
#include "config.h"
#include "data.h"
#include "kernels.h"
#include "log.h"
#include "model.h"
#include "particles.h"
#include "rundir.h"
#include "stop.h"
#include "timer.h"
#include "train.h"
#include "version.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mfres train CONFIG.ini [--set section.key=value]... [--out DIR]\n"
            "                  [--restart auto|FILE]\n"
            "       mfres config CONFIG.ini [train options]   print the resolved\n"
            "                               configuration (checks it; touches no file)\n"
            "       mfres info FILE.h5      summary of a checkpoint or snapshot\n"
            "       mfres bench [options]   speed report (mfres bench --help)\n"
            "       mfres eval FILE.h5      train and test loss of a checkpoint's particles\n"
            "       mfres --help | --version\n"
            "\n"
            "Trains a mean-field ResNet whose residual blocks are particles sharded over\n"
            "the MPI ranks (run with mpirun -n R). Progress goes to stdout; the run\n"
            "directory gets config.ini (resolved), metrics.tsv, outputs.h5 (the outputs\n"
            "on the probe inputs), checkpoints/ and snapshots/.\n"
            "\n"
            "options:\n"
            "  --set section.key=value  override one configuration key (repeatable)\n"
            "  --out DIR                run directory (same as --set output.dir=DIR)\n"
            "  --restart auto           continue from the newest complete checkpoint of the\n"
            "                           run directory, or start fresh if there is none\n"
            "  --restart FILE           continue from this checkpoint (any rank count)\n"
            "\n"
            "SIGTERM, SIGUSR1 and SIGINT write a checkpoint after the current step and\n"
            "exit 3; a second SIGINT stops at once.\n"
            "\n"
            "exit status: 0 finished, 1 runtime error, 2 usage, configuration or input\n"
            "             file error, 3 stopped by a signal or max_time (checkpoint\n"
            "             written), 4 diverged (NaN or Inf; the last checkpoint is kept)\n"
            "\n"
            "configuration keys (INI sections) and their defaults:\n");
    config_print_help(out);
}

/* Stop every rank with status if any rank failed; the lowest failing rank
 * prints its message. Collective. */
static void agree_or_exit(int ok, const char *message, int status, MPI_Comm comm)
{
    int first_bad = comm_first_failure(ok, comm);
    if (first_bad < 0)
        return;
    if (comm_rank(comm) == first_bad)
        fprintf(stderr, "mfres: error: %s\n", message);
    fflush(stderr);
    comm_finalize();
    exit(status);
}

/* The command line of `train`. */
struct train_args {
    const char *config;  /* CONFIG.ini */
    const char *restart; /* NULL, "auto" or a checkpoint file */
};

/* Parse `train` arguments and read the configuration with its overrides,
 * unresolved. Returns 0, or -1 with err. */
static int read_config(int argc, char **argv, struct train_args *args, struct mf_config *cfg,
                       char *err, size_t errlen)
{
    memset(args, 0, sizeof *args);
    config_defaults(cfg);
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--set") || !strcmp(arg, "--out") || !strcmp(arg, "--restart")) {
            if (i + 1 >= argc)
                return snprintf(err, errlen, "%s needs a value (see mfres --help)", arg), -1;
            if (!strcmp(arg, "--restart"))
                args->restart = argv[i + 1];
            i++;
        } else if (arg[0] == '-') {
            return snprintf(err, errlen, "unknown option '%s' (see mfres --help)", arg), -1;
        } else if (args->config) {
            return snprintf(err, errlen, "more than one configuration file ('%s', '%s')",
                            args->config, arg),
                   -1;
        } else {
            args->config = arg;
        }
    }
    if (!args->config)
        return snprintf(err, errlen, "train needs a configuration file (see mfres --help)"), -1;
    if (config_read_file(cfg, args->config, err, errlen) != 0)
        return -1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && config_set(cfg, argv[++i], err, errlen) != 0)
            return -1;
        if (!strcmp(argv[i], "--out")) {
            char assignment[MF_PATH_MAX + 16];
            snprintf(assignment, sizeof assignment, "output.dir=%s", argv[++i]);
            if (config_set(cfg, assignment, err, errlen) != 0)
                return -1;
        }
        if (!strcmp(argv[i], "--restart"))
            i++;
    }
    return 0;
}

/* Resolve a fresh run's configuration, reading its data file if any. */
static int resolve_fresh(struct mf_config *cfg, struct mf_data_file *file, char *err,
                         size_t errlen)
{
    if (cfg->data.kind == MF_DATA_FILE && cfg->data.file[0] &&
        data_read_file(cfg->data.file, file, err, errlen) != 0)
        return -1;
    return config_resolve(cfg, cfg->data.kind == MF_DATA_FILE ? &file->shape : NULL, err,
                          errlen);
}

/* Resolve the configuration of a restart against the checkpoint's: the data
 * come from the checkpoint, and every key but train.steps and [output] must
 * agree. */
static int resolve_restart(struct mf_config *cfg, const char *path,
                           const struct checkpoint_header *hdr, char *err, size_t errlen)
{
    const struct mf_config *stored = &hdr->cfg;
    if (hdr->kind != CHECKPOINT_FULL)
        return snprintf(err, errlen,
                        "checkpoint '%s': a snapshot (the measure only), not a checkpoint", path),
               -1;
    struct mf_data_shape shape = {
        .rows = stored->data.samples + stored->data.test_samples,
        .input_dim = stored->data.input_dim,
        .output_dim = stored->data.output_dim,
        .labels = stored->train.loss == MF_LOSS_CROSS_ENTROPY,
    };
    char why[MF_ERR_MAX / 2];
    if (config_resolve(cfg, &shape, err, errlen) != 0)
        return -1;
    if (config_compare_for_restart(cfg, stored, why, sizeof why) != 0)
        return snprintf(err, errlen, "configuration conflicts with checkpoint '%s': %s", path,
                        why),
               -1;
    if (hdr->step > cfg->train.steps)
        return snprintf(err, errlen, "checkpoint '%s' is at step %lld, beyond train.steps = %lld",
                        path, (long long)hdr->step, (long long)cfg->train.steps),
               -1;
    return 0;
}

static void print_banner(const struct mf_config *cfg, const struct mf_model *m, int ranks)
{
    const struct mf_particles *p = &m->particles;
    double n = (double)p->layers * (double)p->width;
    log_info("mfres %s (%s)", mfres_version, mfres_compiler);
    log_info("ranks %d, OpenBLAS core %s, %d particles per chunk", ranks, kernels_blas_core(),
             MF_CHUNK);
    log_info("model L = %lld, M = %lld, D = %d, %s, %s; %.3g particles, %.3g MB of state per "
             "rank",
             (long long)p->layers, (long long)p->width, p->dim,
             config_activation_name(cfg->model.activation),
             cfg->model.architecture == MF_ARCH_SHALLOW ? "shallow" : "resnet", n,
             8.0 * (2 * p->dim + 1) * n / ranks / 1e6);
    log_info("data %s: %lld train, %lld test samples, d_in = %lld, d_out = %lld",
             config_data_kind_name(cfg->data.kind), (long long)cfg->data.samples,
             (long long)cfg->data.test_samples, (long long)cfg->data.input_dim,
             (long long)cfg->data.output_dim);
    if (comm_rank(m->comm) == 0)
        kernels_warn_generic_blas();
}

static int cmd_train(int argc, char **argv, MPI_Comm comm)
{
    const double started = comm_wtime();
    struct train_args args;
    struct mf_config cfg;
    struct mf_data_file file = {0};
    struct checkpoint_header hdr;
    char err[MF_ERR_MAX] = "", restart[MF_PATH_MAX + 64] = "";

    int status = read_config(argc, argv, &args, &cfg, err, sizeof err);
    agree_or_exit(status == 0, err, EXIT_USAGE, comm);
    int seen = checkpoint_find_latest(cfg.output.dir, restart, sizeof restart, comm);
    if (args.restart && strcmp(args.restart, "auto"))
        snprintf(restart, sizeof restart, "%s", args.restart);
    if (!args.restart && seen) {
        snprintf(err, sizeof err,
                 "run directory '%s' already holds checkpoints: continue it with --restart "
                 "auto, or choose another --out",
                 cfg.output.dir);
        status = -1;
    } else if (args.restart && !restart[0] && seen) {
        snprintf(err, sizeof err,
                 "none of the %d checkpoints in '%s/checkpoints' is usable (see the warnings "
                 "above)",
                 seen, cfg.output.dir);
        status = -1;
    } else if (restart[0]) {
        status = checkpoint_open(restart, &hdr, err, sizeof err, comm) ||
                 resolve_restart(&cfg, restart, &hdr, err, sizeof err);
    } else {
        status = resolve_fresh(&cfg, &file, err, sizeof err);
    }
    agree_or_exit(status == 0, err, EXIT_USAGE, comm);

    /* Only now, with the whole input valid, touch the file system. */
    status = comm_rank(comm) == 0 ? rundir_create(&cfg, err, sizeof err) : 0;
    agree_or_exit(status == 0, err, EXIT_RUNTIME, comm);

    struct mf_dataset ds = {.d_out = cfg.data.output_dim,
                            .labels = cfg.train.loss == MF_LOSS_CROSS_ENTROPY};
    struct mf_model model;
    struct mf_run run = {.cfg = &cfg, .ds = &ds, .model = &model, .dir = cfg.output.dir,
                         .started = started};
    model_create(&model, &cfg, ds.d_out, comm);
    double read_seconds = 0;
    if (restart[0]) {
        read_seconds = checkpoint_read(restart, &ds, &model, &run.history);
        run.start = hdr.step;
    } else {
        data_build(&cfg, &file, &ds);
        data_file_free(&file);
    }
    print_banner(&cfg, &model, comm_size(comm));
    if (restart[0]) {
        double gb = 8e-9 * (double)(cfg.model.layers * cfg.model.width * (2 * cfg.model.dim + 1));
        log_info("restarting from %s (step %lld, written by %d ranks); read %.3g GB of "
                 "particles in %.2f s (%.3g GB/s)",
                 restart, (long long)hdr.step, hdr.ranks, gb, read_seconds, gb / read_seconds);
    }

    if (restart[0] && hdr.step == cfg.train.steps) {
        log_info("the run is already complete at step %lld", (long long)hdr.step);
        status = EXIT_OK;
    } else {
        status = train_run(&run, NULL);
        comm_report_timers(stdout, comm);
    }
    log_info("run directory: %s", cfg.output.dir);

    history_free(&run.history);
    model_destroy(&model);
    data_free(&ds);
    return status;
}

static int cmd_config(int argc, char **argv, MPI_Comm comm)
{
    struct train_args args;
    struct mf_config cfg;
    struct mf_data_file file = {0};
    char err[MF_ERR_MAX] = "";
    int status = read_config(argc, argv, &args, &cfg, err, sizeof err);
    if (status == 0)
        status = resolve_fresh(&cfg, &file, err, sizeof err);
    agree_or_exit(status == 0, err, EXIT_USAGE, comm);
    data_file_free(&file);
    if (comm_rank(comm) == 0)
        config_write(&cfg, stdout);
    return EXIT_OK;
}

/* Open FILE for info/eval; exits 2 on bad input. */
static void open_or_exit(int argc, char **argv, struct checkpoint_header *hdr, MPI_Comm comm)
{
    char err[MF_ERR_MAX] = "";
    int ok = argc == 3;
    if (!ok)
        snprintf(err, sizeof err, "%s needs one FILE.h5 (see mfres --help)", argv[1]);
    agree_or_exit(ok, err, EXIT_USAGE, comm);
    agree_or_exit(checkpoint_open(argv[2], hdr, err, sizeof err, comm) == 0, err, EXIT_USAGE,
                  comm);
}

static int cmd_info(int argc, char **argv, MPI_Comm comm)
{
    struct checkpoint_header hdr;
    open_or_exit(argc, argv, &hdr, comm);
    if (comm_rank(comm) != 0)
        return EXIT_OK;
    const struct mf_config *c = &hdr.cfg;
    struct mf_history h = {0};
    checkpoint_read_history(argv[2], &h);
    printf("file       %s\n", argv[2]);
    printf("kind       %s (complete), written by mfres %s on %d ranks\n",
           hdr.kind == CHECKPOINT_FULL ? "checkpoint" : "snapshot", hdr.version, hdr.ranks);
    printf("step       %lld of %lld, mean-field time %.6g\n", (long long)hdr.step,
           (long long)c->train.steps, hdr.time);
    printf("model      L = %lld, M = %lld, D = %lld, %s, %s; %lld particles stored (stride "
           "%lld)\n",
           (long long)c->model.layers, (long long)c->model.width, (long long)c->model.dim,
           config_activation_name(c->model.activation),
           c->model.architecture == MF_ARCH_SHALLOW ? "shallow" : "resnet",
           (long long)(c->model.layers * ((c->model.width + hdr.stride - 1) / hdr.stride)),
           (long long)hdr.stride);
    printf("data       %s: %lld train, %lld test samples\n", config_data_kind_name(c->data.kind),
           (long long)c->data.samples, (long long)c->data.test_samples);
    if (h.count > 0) {
        const struct mf_observables *first = &h.rows[0], *last = &h.rows[h.count - 1],
                                    *best = first;
        for (int64_t i = 0; i < h.count; i++)
            if (h.rows[i].loss < best->loss)
                best = &h.rows[i];
        printf("loss       %.4e at step %lld, %.4e at step %lld; min %.4e at step %lld "
               "(%lld rows)\n",
               first->loss, (long long)first->step, last->loss, (long long)last->step,
               best->loss, (long long)best->step, (long long)h.count);
    } else {
        printf("loss       no rows yet\n");
    }
    history_free(&h);
    return EXIT_OK;
}

static int cmd_eval(int argc, char **argv, MPI_Comm comm)
{
    struct checkpoint_header hdr;
    open_or_exit(argc, argv, &hdr, comm);
    char err[MF_ERR_MAX];
    snprintf(err, sizeof err, "checkpoint '%s': a snapshot holds no data; eval needs a checkpoint",
             argv[2]);
    agree_or_exit(hdr.kind == CHECKPOINT_FULL, err, EXIT_USAGE, comm);
    const struct mf_config *c = &hdr.cfg;
    struct mf_dataset ds = {.d_out = c->data.output_dim,
                            .labels = c->train.loss == MF_LOSS_CROSS_ENTROPY};
    struct mf_model model;
    struct mf_observables o = {.step = hdr.step, .time = hdr.time};
    model_create(&model, c, ds.d_out, comm);
    checkpoint_read(argv[2], &ds, &model, NULL);
    train_evaluate(c, &ds, &model, &o);
    log_info("file\t%s\nstep\t%lld\ntime\t%.17g\nranks\t%d\nloss\t%.17g\ntest_loss\t%.17g\n"
             "test_accuracy\t%.17g\nshallow_gap\t%.17g",
             argv[2], (long long)o.step, o.time, comm_size(comm), o.loss, o.test_loss,
             o.test_accuracy, o.shallow_gap);
    model_destroy(&model);
    data_free(&ds);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    /* Before anything else, so that a signal during start-up (MPI_Init, a
     * long checkpoint read) stops the run after its first step instead of
     * killing it. */
    if (argc > 1 && !strcmp(argv[1], "train"))
        stop_install();
    MPI_Comm comm = comm_init(&argc, &argv);
    log_set_rank(comm_rank(comm));
    int status = EXIT_OK;
    const char *cmd = argc > 1 ? argv[1] : "";
    if (!strcmp(cmd, "train")) {
        status = cmd_train(argc, argv, comm);
    } else if (!strcmp(cmd, "bench")) {
        status = bench_main(argc - 1, argv + 1, comm);
    } else if (!strcmp(cmd, "config")) {
        status = cmd_config(argc, argv, comm);
    } else if (!strcmp(cmd, "info")) {
        status = cmd_info(argc, argv, comm);
    } else if (!strcmp(cmd, "eval")) {
        status = cmd_eval(argc, argv, comm);
    } else if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        if (comm_rank(comm) == 0)
            usage(stdout);
    } else if (!strcmp(cmd, "--version")) {
        log_info("mfres %s\ncompiler: %s\nflags: %s", mfres_version, mfres_compiler,
                 mfres_cflags);
    } else {
        if (comm_rank(comm) == 0) {
            fprintf(stderr, "mfres: error: %s%s%s\n\n", *cmd ? "unknown command '" : "no command",
                    cmd, *cmd ? "'" : "");
            usage(stderr);
        }
        status = EXIT_USAGE;
    }
    comm_finalize();
    return status;
}
