/*
 * data: training and test sets, replicated on every rank.
 *
 * Generated kinds (teacher, sine, spirals) are drawn from counter-based
 * streams keyed by the data seed and the sample index, so every rank builds
 * the same set without communication. Kind = file reads an HDF5 file with
 * x [n][d_in] and either y [n][d_out] (regression) or integer labels y [n].
 */
#ifndef MFRES_DATA_H
#define MFRES_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* One set of samples. */
struct mf_samples {
    int64_t n;     /* number of samples */
    int64_t d_in;  /* columns of x */
    int64_t y_dim; /* columns of y: d_out for targets, 1 for class labels */
    double *x;     /* [n][d_in] */
    double *y;     /* [n][y_dim]; labels stored as exact small integers */
};

struct mf_dataset {
    struct mf_samples train;
    struct mf_samples test;
    int64_t d_out; /* outputs read from X_L: target columns or classes */
    int labels;    /* nonzero: y holds class labels (cross_entropy) */
};

/* Raw contents of a data file: all rows, before the train/test split. */
struct mf_data_file {
    struct mf_data_shape shape;
    double *x; /* [rows][input_dim] */
    double *y; /* [rows][output_dim], or [rows] labels */
};

/* Read a data file. Returns 0, or -1 with "data.file 'PATH': problem". */
int data_read_file(const char *path, struct mf_data_file *file, char *err, size_t errlen);
void data_file_free(struct mf_data_file *file);

/* Build the train and test sets of a resolved configuration (file: split the
 * rows of `file`, which may be NULL for generated kinds). Not collective. */
void data_build(const struct mf_config *cfg, const struct mf_data_file *file,
                struct mf_dataset *ds);
void data_free(struct mf_dataset *ds);

#endif
