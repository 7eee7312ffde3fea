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

#include "comm.h"
#include "config.h"
#include "data.h"
#include "kernels.h"
#include "log.h"
#include "model.h"
#include "particles.h"
#include "timer.h"
#include "train.h"
#include "version.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mfres train CONFIG.ini [--set section.key=value]... [--out DIR]\n"
            "       mfres --help | --version\n"
            "\n"
            "Trains a mean-field ResNet whose residual blocks are particles sharded over\n"
            "the MPI ranks (run with mpirun -n R). Progress goes to stdout; the run\n"
            "directory gets config.ini (resolved) and metrics.tsv.\n"
            "\n"
            "options:\n"
            "  --set section.key=value  override one configuration key (repeatable)\n"
            "  --out DIR                run directory (same as --set output.dir=DIR)\n"
            "\n"
            "exit status: 0 finished, 1 runtime error, 2 usage or configuration error,\n"
            "             4 diverged (NaN or Inf)\n"
            "\n"
            "configuration keys (INI sections) and their defaults:\n");
    config_print_help(out);
}

/* mkdir -p. Returns 0 or -1 with errno set. */
static int make_dirs(const char *path)
{
    char buf[MF_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return -1;
    return 0;
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

/* Parse `train` arguments and the configuration; false with err on error. */
static int load_config(int argc, char **argv, struct mf_config *cfg,
                       struct mf_data_file *file, char *err, size_t errlen)
{
    const char *path = NULL;
    config_defaults(cfg);
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--set") || !strcmp(arg, "--out")) {
            if (i + 1 >= argc)
                return snprintf(err, errlen, "%s needs a value (see mfres --help)", arg), 0;
        } else if (arg[0] == '-') {
            return snprintf(err, errlen, "unknown option '%s' (see mfres --help)", arg), 0;
        } else if (path) {
            return snprintf(err, errlen, "more than one configuration file ('%s', '%s')", path,
                            arg),
                   0;
        } else {
            path = arg;
            continue;
        }
        i++;
    }
    if (!path)
        return snprintf(err, errlen, "train needs a configuration file (see mfres --help)"), 0;
    if (config_read_file(cfg, path, err, errlen) != 0)
        return 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && config_set(cfg, argv[++i], err, errlen) != 0)
            return 0;
        if (!strcmp(argv[i], "--out")) {
            char assignment[MF_PATH_MAX + 16];
            snprintf(assignment, sizeof assignment, "output.dir=%s", argv[++i]);
            if (config_set(cfg, assignment, err, errlen) != 0)
                return 0;
        }
    }
    if (cfg->data.kind == MF_DATA_FILE && cfg->data.file[0] &&
        data_read_file(cfg->data.file, file, err, errlen) != 0)
        return 0;
    return config_resolve(cfg, cfg->data.kind == MF_DATA_FILE ? &file->shape : NULL, err,
                          errlen) == 0;
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
    const char *advice = kernels_blas_advice();
    if (advice && comm_rank(m->comm) == 0)
        log_warn("OpenBLAS uses the generic core '%s' on a CPU with AVX2; it may run several "
                 "times slower. Set OPENBLAS_CORETYPE=%s.",
                 kernels_blas_core(), advice);
}

static int cmd_train(int argc, char **argv, MPI_Comm comm)
{
    struct mf_config cfg;
    struct mf_data_file file = {0};
    char err[MF_ERR_MAX] = "";
    int rank = comm_rank(comm), ranks = comm_size(comm);

    int ok = load_config(argc, argv, &cfg, &file, err, sizeof err);
    agree_or_exit(ok, err, EXIT_USAGE, comm);

    /* Only now, with the whole input valid, touch the file system. */
    ok = 1;
    if (rank == 0) {
        char path[MF_PATH_MAX + 32];
        FILE *f = NULL;
        snprintf(path, sizeof path, "%s/config.ini", cfg.output.dir);
        if (make_dirs(cfg.output.dir) != 0 || !(f = fopen(path, "w"))) {
            snprintf(err, sizeof err, "cannot create run directory '%s': %s", cfg.output.dir,
                     strerror(errno));
            ok = 0;
        } else {
            fprintf(f, "; resolved configuration written by mfres %s\n", mfres_version);
            config_write(&cfg, f);
            ok = fclose(f) == 0;
            if (!ok)
                snprintf(err, sizeof err, "cannot write %s", path);
        }
    }
    agree_or_exit(ok, err, EXIT_RUNTIME, comm);

    struct mf_dataset ds;
    data_build(&cfg, &file, &ds);
    data_file_free(&file);
    struct mf_model model;
    model_create(&model, &cfg, ds.d_out, comm);
    print_banner(&cfg, &model, ranks);

    int status = train_run(&cfg, &ds, &model, cfg.output.dir, NULL);
    timer_report(stdout, comm);
    log_info("run directory: %s", cfg.output.dir);

    model_destroy(&model);
    data_free(&ds);
    return status;
}

int main(int argc, char **argv)
{
    MPI_Comm comm = comm_init(&argc, &argv);
    log_set_rank(comm_rank(comm));
    int status = EXIT_OK;
    const char *cmd = argc > 1 ? argv[1] : "";
    if (!strcmp(cmd, "train")) {
        status = cmd_train(argc, argv, comm);
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
