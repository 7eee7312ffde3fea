/*
 * outputs: a run's outputs.h5, the network's function on fixed probe inputs
 * over training time.
 *
 * The probes are the first data.probes test samples. At every logged step
 * the file gains one row: step, time, loss, test loss, test accuracy and the
 * outputs z(x) = X_L[0:d_out] on every probe. The outputs are the first rows
 * of the test set's forward pass that the test loss needs anyway, so
 * recording them costs no extra pass. The rows also live in every checkpoint
 * (/observables/output), and on a restart the file is rebuilt from the
 * checkpoint's rows (written under a temporary name, then renamed), so it
 * never has duplicate or missing rows, whatever happened to the old file.
 *
 * Layout (serial HDF5, written by rank 0 only, flushed after every row):
 *   /                 attrs creator = "mfres", version, config (resolved INI text)
 *   /probes/x         [P][d_in] the probe inputs;  /probes/y  [P][d_out] or [P]
 *   /step             [T] int64;  /time, /loss, /test_loss, /test_accuracy  [T]
 *   /output           [T][P][d_out]
 * The [T] datasets are chunked and extendible along T.
 */
#ifndef MFRES_OUTPUTS_H
#define MFRES_OUTPUTS_H

#include <stdint.h>
#include <stdio.h>

struct mf_config;
struct mf_dataset;
struct mf_history;
struct mf_observables;

struct mf_outputs;

/* Create run_dir/outputs.h5 holding the rows of history (replacing any
 * older file atomically) and keep it open for appending. Rank 0 only. */
struct mf_outputs *outputs_open(const char *run_dir, const struct mf_config *cfg,
                                const struct mf_dataset *ds, const struct mf_history *history);

/* Print a summary of an outputs.h5 file (rows, steps, probes, losses) to
 * out (for `mfres info`). Returns 0, or -1 when path is not such a file.
 * Not collective. */
int outputs_describe(const char *path, FILE *out);

/* Append one row; out holds probes x d_out values. Flushes the file. */
void outputs_append(struct mf_outputs *o, const struct mf_observables *row, const double *out);

void outputs_close(struct mf_outputs *o);

#endif
