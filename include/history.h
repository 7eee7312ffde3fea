/*
 * history: what a run records, row by row: the observables of the logged
 * states and the outputs on the probe inputs. train fills it, checkpoint
 * stores and restores it, and metrics.tsv and outputs.h5 are written from
 * it.
 */
#ifndef MFRES_HISTORY_H
#define MFRES_HISTORY_H

#include <stdint.h>

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

/* The per-row values besides step and time, in the order of metrics.tsv
 * and of the checkpoints' /observables: loss, test_loss, test_accuracy,
 * grad_norm, shallow_gap, seconds_per_step. */
#define HISTORY_COLUMNS 6
extern const char *const history_column_names[HISTORY_COLUMNS];
double history_column(const struct mf_observables *o, int column);
void history_set_column(struct mf_observables *o, int column, double value);

/* The observables rows of a run so far, in step order, with the network's
 * outputs on the probe inputs at each of them. */
struct mf_history {
    int64_t count;               /* rows */
    int64_t capacity;            /* allocated rows */
    struct mf_observables *rows; /* [count] */
    int64_t out_size;            /* outputs per row: data.probes x d_out (0: none) */
    double *outputs;             /* [count][out_size] */
};

/* Append a row and its out_size probe outputs (out may be NULL when
 * out_size is 0). */
void history_append(struct mf_history *h, const struct mf_observables *row,
                    const double *out);
void history_free(struct mf_history *h);

#endif
