/*
 * cmd_file: `mfres info` and `mfres eval` on a checkpoint or snapshot (see
 * commands.h).
 */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "comm.h"
#include "config.h"
#include "data.h"
#include "history.h"
#include "log.h"
#include "manifest.h"
#include "model.h"
#include "outputs.h"
#include "train.h"

/* Check FILE for info/eval; exits 2 on bad input. */
static void check_or_exit(int argc, char **argv, struct checkpoint_header *hdr, MPI_Comm comm)
{
    char err[MF_ERR_MAX] = "";
    int ok = argc == 3;
    if (!ok)
        snprintf(err, sizeof err, "%s needs one FILE.h5 (see mfres --help)", argv[1]);
    comm_agree_or_exit(ok, err, MF_EXIT_USAGE, comm);
    ok = checkpoint_check(argv[2], hdr, err, sizeof err, comm) == 0;
    comm_agree_or_exit(ok, err, MF_EXIT_USAGE, comm);
}

int cmd_info(int argc, char **argv, MPI_Comm comm)
{
    /* A run's outputs.h5 has a summary of its own. */
    int described = comm_rank(comm) == 0 && argc == 3 && outputs_describe(argv[2], stdout) == 0;
    comm_bcast(&described, sizeof described, 0, comm);
    if (described)
        return MF_EXIT_OK;
    struct checkpoint_header hdr;
    check_or_exit(argc, argv, &hdr, comm);
    if (comm_rank(comm) != 0)
        return MF_EXIT_OK;
    const struct mf_config *c = &hdr.cfg;
    struct mf_history h = {0};
    checkpoint_read_history(argv[2], &h);
    printf("file       %s\n", argv[2]);
    printf("kind       %s (complete), written by mfres %s on %d ranks\n",
           hdr.kind == CHECKPOINT_FULL ? "checkpoint" : "snapshot", hdr.version, hdr.ranks);
    printf("step       %lld of %lld, mean-field time %.6g\n", (long long)hdr.step,
           (long long)c->train.steps, hdr.time);
    printf("model      L = %lld, M = %lld, D = %lld, %s, %s, %s precision; %lld particles "
           "stored (stride %lld, %s)\n",
           (long long)c->model.layers, (long long)c->model.width, (long long)c->model.dim,
           config_activation_name(c->model.activation),
           c->model.architecture == MF_ARCH_SHALLOW ? "shallow" : "resnet",
           config_precision_name(c->model.precision),
           (long long)(c->model.layers * ((c->model.width + hdr.stride - 1) / hdr.stride)),
           (long long)hdr.stride,
           c->model.precision == MF_PRECISION_MIXED ? "float32" : "float64");
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
    if (hdr.manifest[0]) {
        printf("written on\n");
        manifest_print(hdr.manifest, stdout);
    }
    return MF_EXIT_OK;
}

int cmd_eval(int argc, char **argv, MPI_Comm comm)
{
    struct checkpoint_header hdr;
    check_or_exit(argc, argv, &hdr, comm);
    char err[MF_ERR_MAX];
    snprintf(err, sizeof err, "checkpoint '%s': a snapshot holds no data; eval needs a checkpoint",
             argv[2]);
    comm_agree_or_exit(hdr.kind == CHECKPOINT_FULL, err, MF_EXIT_USAGE, comm);
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
    return MF_EXIT_OK;
}
