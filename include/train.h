/*
 * train: the training loop, minibatch and layer-order schedules, the
 * observables, metrics.tsv and the progress line.
 *
 * Row k of the metrics reports the state after k updates: the full training
 * set's loss, the test loss and accuracy, the RMS mean-field velocity of the
 * batch gradient at that state, and the shallow gap; the network's outputs
 * on the probe inputs go with it into outputs.h5 and the checkpoints.
 */
#ifndef MFRES_TRAIN_H
#define MFRES_TRAIN_H

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

#include "history.h"

struct mf_config;
struct mf_dataset;
struct mf_model;

/* The batch of step k: n indices into the training set, keyed by (seed, k);
 * sampled without replacement; identity when batch = 0. scratch holds the
 * identity permutation of n_train entries, and is left so. */
void train_batch_indices(const struct mf_config *cfg, int64_t n_train, int64_t step,
                         int64_t *idx, int64_t *scratch);

/* The layer order of step k: identity or a permutation keyed by (seed, k). */
void train_layer_order(const struct mf_config *cfg, int64_t step, int64_t *order);

/* One training run. */
struct mf_run {
    const struct mf_config *cfg;
    const struct mf_dataset *ds;
    struct mf_model *model;
    const char *dir;           /* run directory; NULL: write no files (tests) */
    int64_t start;             /* updates already done: 0, or a checkpoint's step */
    int64_t kept_step;         /* a checkpoint pruning never removes: the restart's */
    struct mf_history history; /* rows before start (a checkpoint's), then ours */
    double started;            /* comm_wtime() at program start, for max_time */
};

/* Train from the model's current particles (after run->start updates) to
 * cfg->train.steps. With a run directory: writes metrics.tsv and outputs.h5
 * (rows of the history before start first), snapshots and checkpoints (one at the end
 * always), and stops cleanly on a signal or before max_time. Progress goes
 * to stdout. final receives the last row (may be NULL). Returns the exit
 * status: 0 finished, 3 stopped with a checkpoint written, 4 diverged.
 * Collective. */
int train_run(struct mf_run *run, struct mf_observables *final);

/* Buffers of the batch pass and the observables; opaque. */
struct train_workspace;

struct train_workspace *train_workspace_create(const struct mf_config *cfg,
                                               const struct mf_dataset *ds);
void train_workspace_destroy(struct train_workspace *w);

/* One training step k exactly as train_run takes it (batch, forward pass,
 * backward pass with the update); returns the batch loss. For benchmarks.
 * Collective. */
double train_step(const struct mf_config *cfg, const struct mf_dataset *ds, struct mf_model *m,
                  struct train_workspace *w, int64_t k);

/* Loss, test loss and accuracy, and shallow gap of the current particles
 * (step, time, grad_norm and seconds_per_step are left alone). Collective. */
void train_evaluate(const struct mf_config *cfg, const struct mf_dataset *ds, struct mf_model *m,
                    struct mf_observables *o);

#endif
