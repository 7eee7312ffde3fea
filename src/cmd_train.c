/*
 * cmd_train: `mfres train` and `mfres config` (see commands.h).
 *
 * train reads as: parse the command line and the configuration (rank 0
 * reads the file, every rank parses its text), agree that all ranks
 * succeeded, then (a fresh run, or a restart whose configuration agrees
 * with its checkpoint) set up the run directory (checked to be the same on
 * every node), the data and the particles, train, report, clean up.
 */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "checkpoint.h"
#include "comm.h"
#include "config.h"
#include "data.h"
#include "h5.h"
#include "history.h"
#include "kernels.h"
#include "log.h"
#include "manifest.h"
#include "model.h"
#include "particles.h"
#include "plan.h"
#include "rundir.h"
#include "shared_fs.h"
#include "train.h"
#include "version.h"

/* The command line of `train`. */
struct train_args {
    const char *config;  /* CONFIG.ini */
    const char *restart; /* NULL, "auto" or a checkpoint file */
    int ranks, nodes;    /* config --ranks R --nodes N: plan for them (0: no plan) */
};

/* The configuration file as rank 0 reads it, parsed by every rank: all
 * ranks run the same configuration even when the file differs between
 * nodes (edited while the job starts, or on a node-local file system), and
 * the file is opened once. Returns 0, or -1 with err on every rank alike.
 * Collective. */
static int read_config_file(struct mf_config *cfg, const char *path, char *err, size_t errlen,
                            MPI_Comm comm)
{
    char *text = comm_rank(comm) == 0 ? config_load_file(path, err, errlen) : NULL;
    if (comm_agree(comm_rank(comm) != 0 || text, err, errlen, comm) != 0)
        return -1;
    long bytes = text ? (long)strlen(text) + 1 : 0;
    comm_bcast(&bytes, sizeof bytes, 0, comm);
    if (!text)
        text = xmalloc((size_t)bytes);
    comm_bcast(text, bytes, 0, comm);
    const int status = config_read_string(cfg, text, path, err, errlen);
    free(text);
    return status;
}

/* Parse `train` arguments and read the configuration with its overrides,
 * unresolved. Returns 0, or -1 with err, on every rank alike. Collective. */
static int read_config(int argc, char **argv, struct train_args *args, struct mf_config *cfg,
                       char *err, size_t errlen, MPI_Comm comm)
{
    memset(args, 0, sizeof *args);
    config_defaults(cfg);
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(argv[1], "config") && (!strcmp(arg, "--ranks") || !strcmp(arg, "--nodes"))) {
            char *end = NULL;
            const long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (!end || *end || v < 1 || v > 1 << 24)
                return snprintf(err, errlen, "%s needs a positive integer (see mfres --help)",
                                arg),
                       -1;
            *(!strcmp(arg, "--ranks") ? &args->ranks : &args->nodes) = (int)v;
            i++;
        } else if (!strcmp(arg, "--set") || !strcmp(arg, "--out") || !strcmp(arg, "--restart")) {
            if (i + 1 >= argc || !argv[i + 1][0])
                return snprintf(err, errlen, "%s needs a value (see mfres --help)", arg), -1;
            if (!strcmp(arg, "--restart"))
                args->restart = argv[i + 1];
            if (!strcmp(arg, "--restart") && strlen(args->restart) > MF_MPIIO_PATH_MAX)
                return snprintf(err, errlen, "--restart: a path of %zu characters; a file "
                                "opened with MPI-IO may have at most %d (Open MPI's OMPIO "
                                "aborts on longer ones): use a relative path or a shorter link",
                                strlen(args->restart), MF_MPIIO_PATH_MAX),
                       -1;
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
        return snprintf(err, errlen, "%s needs a configuration file (see mfres --help)",
                        argv[1]),
               -1;
    if (read_config_file(cfg, args->config, err, errlen, comm) != 0)
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
        if (!strcmp(argv[i], "--restart") || !strcmp(argv[i], "--ranks") ||
            !strcmp(argv[i], "--nodes"))
            i++;
    }
    if (args->nodes && !args->ranks)
        return snprintf(err, errlen, "--nodes needs --ranks"), -1;
    return 0;
}

/* Read the data file on rank 0 and broadcast it, so that a job of any size
 * opens it once (not once per rank on a shared file system). Returns 0, or
 * -1 with err, on every rank alike. Collective. */
static int read_data_file(const char *path, struct mf_data_file *file, char *err,
                          size_t errlen, MPI_Comm comm)
{
    int status = comm_rank(comm) == 0 ? data_read_file(path, file, err, errlen) : 0;
    comm_bcast(&status, sizeof status, 0, comm);
    if (status != 0) {
        comm_bcast(err, (long)errlen, 0, comm);
        return -1;
    }
    comm_bcast(&file->shape, sizeof file->shape, 0, comm);
    const struct mf_data_shape *s = &file->shape;
    const long x_count = (long)(s->rows * s->input_dim);
    const long y_count = (long)(s->rows * (s->labels ? 1 : s->output_dim));
    if (comm_rank(comm) != 0) {
        file->x = xmalloc((size_t)x_count * sizeof(double));
        file->y = xmalloc((size_t)y_count * sizeof(double));
    }
    comm_bcast(file->x, x_count * (long)sizeof(double), 0, comm);
    comm_bcast(file->y, y_count * (long)sizeof(double), 0, comm);
    return 0;
}

/* Resolve a fresh run's configuration, reading its data file if any.
 * Collective. */
static int resolve_fresh(struct mf_config *cfg, struct mf_data_file *file, char *err,
                         size_t errlen, MPI_Comm comm)
{
    if (cfg->data.kind == MF_DATA_FILE && cfg->data.file[0] &&
        read_data_file(cfg->data.file, file, err, errlen, comm) != 0)
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
        return log_file_error(err, errlen, "checkpoint", path, "the configuration conflicts: %s",
                              why);
    if (hdr->step > cfg->train.steps)
        return snprintf(err, errlen, "checkpoint '%s' is at step %lld, beyond train.steps = %lld",
                        path, (long long)hdr->step, (long long)cfg->train.steps),
               -1;
    return 0;
}

/* 1 when each node's memory holds its ranks' share of the run (plan.h),
 * checked by one rank per node; else 0 with the message in err. Collective. */
static int fits_on_nodes(const struct mf_config *cfg, char *err, size_t errlen, MPI_Comm comm)
{
    int here;
    const int leader = comm_node_leader(comm, &here);
    double nodes = leader;
    comm_sum(&nodes, 1, comm);
    struct plan plan;
    plan_estimate(cfg, comm_size(comm), (int)nodes, &plan);
    char host[64] = "?";
    gethostname(host, sizeof host - 1);
    char source[128];
    const double memory = plan_job_memory(source, sizeof source);
    const int ok =
        !leader || plan_check_memory(&plan, here, memory, host, source, err, errlen) == 0;
    return comm_agree(ok, err, errlen, comm) == 0;
}

static void print_banner(const struct mf_config *cfg, const struct mf_model *m, int ranks)
{
    const struct mf_particles *p = &m->particles;
    double n = (double)p->layers * (double)p->width;
    log_info("mfres %s (%s)", mfres_version, mfres_compiler);
    log_info("ranks %d, kernels %s, BLAS %s with %d thread(s) per rank, %d particles per "
             "chunk", ranks, kernels_path()->name, blas_name(), blas_threads(), MF_CHUNK);
    log_info("model L = %lld, M = %lld, D = %d, %s, %s, %s precision; %lld particles, %.3g MB "
             "of state per rank",
             (long long)p->layers, (long long)p->width, p->dim,
             config_activation_name(cfg->model.activation),
             cfg->model.architecture == MF_ARCH_SHALLOW ? "shallow" : "resnet",
             config_precision_name(cfg->model.precision), (long long)(p->layers * p->width),
             (double)particles_value_size(p) * (2 * p->dim + 1) * n / ranks / 1e6);
    log_info("data %s: %lld train, %lld test samples, d_in = %lld, d_out = %lld",
             config_data_kind_name(cfg->data.kind), (long long)cfg->data.samples,
             (long long)cfg->data.test_samples, (long long)cfg->data.input_dim,
             (long long)cfg->data.output_dim);
    if (comm_rank(m->comm) == 0)
        blas_warn_generic();
}

int cmd_train(int argc, char **argv, MPI_Comm comm)
{
    const double started = comm_wtime();
    struct train_args args;
    struct mf_config cfg;
    struct mf_data_file file = {0};
    struct checkpoint_header hdr;
    char err[MF_ERR_MAX] = "", restart[MF_PATH_MAX + 64] = "";

    int status = read_config(argc, argv, &args, &cfg, err, sizeof err, comm);
    if (status == 0)
        status = h5_set_access(cfg.output.file_locking, cfg.output.mpio_hints, err, sizeof err);
    comm_agree_or_exit(status == 0, err, MF_EXIT_USAGE, comm);
    /* Each file is verified once: --restart auto opens the newest usable
     * checkpoint (and its header) while looking for it. */
    const int automatic = args.restart && !strcmp(args.restart, "auto");
    int seen = 0;
    if (automatic)
        seen = checkpoint_find_latest(cfg.output.dir, restart, sizeof restart, &hdr, err,
                                      sizeof err, comm);
    else if (args.restart)
        snprintf(restart, sizeof restart, "%s", args.restart);
    else
        seen = checkpoint_count(cfg.output.dir, err, sizeof err, comm);
    if (seen < 0) {
        status = -1; /* a run directory that cannot be listed: never "no checkpoints" */
    } else if (!args.restart && seen) {
        snprintf(err, sizeof err,
                 "run directory '%s' already holds checkpoints: continue it with --restart "
                 "auto, or choose another --out",
                 cfg.output.dir);
        status = -1;
    } else if (automatic && !restart[0] && seen) {
        snprintf(err, sizeof err,
                 "none of the %d checkpoints in '%s/checkpoints' is usable (see the warnings "
                 "above)",
                 seen, cfg.output.dir);
        status = -1;
    } else if (restart[0]) {
        status = (!automatic && checkpoint_check(restart, &hdr, err, sizeof err, comm)) ||
                 resolve_restart(&cfg, restart, &hdr, err, sizeof err);
    } else {
        status = resolve_fresh(&cfg, &file, err, sizeof err, comm);
    }
    comm_agree_or_exit(status == 0, err, MF_EXIT_USAGE, comm);

    comm_agree_or_exit(fits_on_nodes(&cfg, err, sizeof err, comm), err, MF_EXIT_USAGE, comm);
    struct mf_dataset ds = {.d_out = cfg.data.output_dim,
                            .labels = cfg.train.loss == MF_LOSS_CROSS_ENTROPY};
    struct mf_model model;
    struct mf_run run = {.cfg = &cfg, .ds = &ds, .model = &model, .dir = cfg.output.dir,
                         .kept_step = -1, .started = started};
    model_create(&model, &cfg, ds.d_out, comm);
    double read_seconds = 0;
    if (restart[0]) {
        read_seconds = checkpoint_read(restart, &ds, &model, &run.history);
        run.start = hdr.step;
        snprintf(err, sizeof err, "checkpoint '%s': particle values that are not finite (NaN "
                 "or Inf)", restart);
        comm_agree_or_exit(particles_finite(&model.particles), err, MF_EXIT_USAGE, comm);
    } else {
        data_build(&cfg, &file, &ds);
        data_file_free(&file);
    }

    /* Only now, with the whole input valid (a checkpoint read and checked),
     * touch the run directory. */
    status = comm_rank(comm) == 0 ? rundir_create(&cfg, err, sizeof err) : 0;
    comm_agree_or_exit(status == 0, err, MF_EXIT_RUNTIME, comm);
    status = shared_fs_check_dir(cfg.output.dir, err, sizeof err, comm);
    comm_agree_or_exit(status == 0, err, MF_EXIT_RUNTIME, comm);
    manifest_build(argc, argv, comm);
    if (comm_rank(comm) == 0)
        rundir_append_manifest(cfg.output.dir, manifest_text());
    print_banner(&cfg, &model, comm_size(comm));
    if (restart[0]) {
        double gb = 8e-9 * (double)(cfg.model.layers * cfg.model.width * (2 * cfg.model.dim + 1));
        log_info("restarting from %s (step %lld, written by %d ranks); read %.3g GB of "
                 "particles in %.2f s (%.3g GB/s)",
                 restart, (long long)hdr.step, hdr.ranks, gb, read_seconds, gb / read_seconds);
        char changed[2048];
        if (manifest_differences(hdr.manifest, changed, sizeof changed) > 0 &&
            comm_rank(comm) == 0)
            log_warn("this run differs from the one that wrote the checkpoint in what sets the "
                     "last bits (%s): it goes on, but may end in other bits than an "
                     "uninterrupted run", changed);
    }

    if (restart[0] && hdr.step == cfg.train.steps) {
        log_info("the run is already complete at step %lld", (long long)hdr.step);
        status = MF_EXIT_OK;
    } else {
        if (restart[0]) {
            /* The checkpoints after the start belong to another continuation
             * (or were skipped as damaged): moved aside, so that pruning and
             * --restart auto see this run's states only. */
            int64_t moved = 0;
            if (comm_rank(comm) == 0 &&
                (moved = rundir_supersede(cfg.output.dir, hdr.step, err, sizeof err)) > 0)
                log_info("moved the %lld checkpoints after step %lld to %s/checkpoints/"
                         "superseded-*: this run continues from step %lld instead",
                         (long long)moved, (long long)hdr.step, cfg.output.dir,
                         (long long)hdr.step);
            comm_agree_or_exit(moved >= 0, err, MF_EXIT_RUNTIME, comm);
            run.kept_step = hdr.step;
        }
        status = train_run(&run, NULL);
        comm_report_timers(stdout, comm);
    }
    log_info("run directory: %s", cfg.output.dir);

    history_free(&run.history);
    model_destroy(&model);
    data_free(&ds);
    return status;
}

int cmd_config(int argc, char **argv, MPI_Comm comm)
{
    struct train_args args;
    struct mf_config cfg;
    struct mf_data_file file = {0};
    char err[MF_ERR_MAX] = "";
    int status = read_config(argc, argv, &args, &cfg, err, sizeof err, comm);
    if (status == 0)
        status = resolve_fresh(&cfg, &file, err, sizeof err, comm);
    comm_agree_or_exit(status == 0, err, MF_EXIT_USAGE, comm);
    data_file_free(&file);
    struct plan plan;
    if (args.ranks) {
        char host[64] = "?";
        gethostname(host, sizeof host - 1);
        plan_estimate(&cfg, args.ranks, args.nodes ? args.nodes : 1, &plan);
        status = plan_check_memory(&plan, plan.ranks_per_node, plan_node_memory(), host,
                                   "its memory", err, sizeof err);
        comm_agree_or_exit(status == 0, err, MF_EXIT_USAGE, comm);
    }
    if (comm_rank(comm) == 0) {
        config_write(&cfg, stdout);
        fflush(stdout);
        if (args.ranks)
            plan_print(&cfg, &plan, plan_probe_step(&cfg, args.ranks), stdout);
    }
    return MF_EXIT_OK;
}
