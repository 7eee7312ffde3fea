/*
 * train: the training loop, minibatch and layer-order schedules, the
 * observables, metrics.tsv and the progress line.
 *
 * Row k of the metrics reports the state after k updates: the full training
 * set's loss, the test loss and accuracy, the RMS mean-field velocity of the
 * batch gradient at that state, and the shallow gap.
 */
#ifndef MFRES_TRAIN_H
#define MFRES_TRAIN_H

#include <mpi.h>
#include <stdint.h>
#include <stdio.h>

struct mf_config;
struct mf_dataset;
struct mf_model;

/* Observables at one state of the particles. */
struct mf_observables {
    int64_t step;
    double time;          /* mean-field time: step * lr */
    double loss;          /* full training set */
    double test_loss;     /* NaN without test samples */
    double test_accuracy; /* cross_entropy only; NaN otherwise */
    double grad_norm;     /* RMS over particles of |L M dE/dtheta + lambda theta| */
    double shallow_gap;   /* mean |X_L - X_shallow| / mean |X_L - X_0| */
    double seconds_per_step;
};

/* The batch of step k: n indices into the training set, keyed by (seed, k);
 * sampled without replacement; identity when batch = 0. scratch holds
 * n_train entries. */
void train_batch_indices(const struct mf_config *cfg, int64_t n_train, int64_t step,
                         int64_t *idx, int64_t *scratch);

/* The layer order of step k: identity or a permutation keyed by (seed, k). */
void train_layer_order(const struct mf_config *cfg, int64_t step, int64_t *order);

/* Train from the model's current particles for cfg->train.steps updates,
 * writing metrics.tsv into run_dir (rank 0; none when run_dir is NULL) and
 * progress to stdout.
 * final receives the observables of the last state (may be NULL).
 * Returns the exit status: 0 finished, 4 diverged. Collective. */
int train_run(const struct mf_config *cfg, const struct mf_dataset *ds, struct mf_model *m,
              const char *run_dir, struct mf_observables *final);

#endif
