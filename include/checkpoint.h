/*
 * checkpoint: the evolving measure in shared HDF5 files (H5MD 1.1 layout),
 * written and read collectively by all ranks with MPI-IO.
 *
 * A checkpoint is a complete state: particles, step, configuration, the
 * training and test data and the observables so far; a run restarted from
 * one, on any number of ranks, continues as if it had never stopped. A
 * snapshot holds the measure only (optionally every k-th particle of each
 * layer) and the observables, for analysis. Each rank's particles are one
 * regular hyperslab of the layer-major global arrays, so any rank count can
 * write or read its share in one call. Files are written under PATH.tmp,
 * marked complete = 1 last, synced and renamed into place: a crash at any
 * moment leaves every file under a final name whole.
 *
 * Layout:
 *   /h5md                   version = [1, 1]; author/name; creator/name, version
 *   /parameters             one attribute per configuration key; config (INI text)
 *   /parameters/data        x_train, y_train, x_test, y_test      (checkpoints)
 *   /particles/blocks/box   dimension = 2D+1, boundary = "none" x (2D+1)
 *   /particles/blocks/layer int32 [N];  id: int64 [N] (global id l M + m)
 *   /particles/blocks/u|w   step [1], time [1], value [1][N][D]
 *   /particles/blocks/b     step [1], time [1], value [1][N]
 *   /observables/NAME       step [T], time [T], value [T]
 *   /checkpoint             kind, step, time, stride, ranks, version, manifest, rng,
 *                           complete
 *   every dataset           attribute checksum (h5_checksum of its elements)
 */
#ifndef MFRES_CHECKPOINT_H
#define MFRES_CHECKPOINT_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "manifest.h"
#include "rundir.h"

struct mf_dataset;
struct mf_history;
struct mf_model;

/* What a file says about itself. */
struct checkpoint_header {
    int kind;               /* enum checkpoint_kind */
    int64_t step;           /* updates done */
    double time;            /* mean-field time */
    int64_t stride;         /* every stride-th particle of each layer */
    int ranks;              /* ranks that wrote it */
    char version[128];      /* mfres version that wrote it */
    char manifest[MANIFEST_MAX]; /* where and how it was written (manifest.h); "" if none */
    struct mf_config cfg;   /* resolved configuration stored in the file */
};

/* Write a checkpoint (stride 1, with data) or a snapshot (with
 * cfg->output.snapshot_stride, without data) of the state after `step`
 * updates. A failure to write aborts the job (the previous files stay
 * whole). Returns the seconds taken. Collective. */
double checkpoint_write(const char *path, enum checkpoint_kind kind, const struct mf_config *cfg,
                        const struct mf_dataset *ds, const struct mf_model *m,
                        const struct mf_history *history, int64_t step);

/* Check that every node sees path (shared_fs_check_file), that it is a
 * complete, self-consistent mfres file (rank 0 reads its metadata) whose
 * every dataset matches its checksum (all ranks read a share of it), and
 * read its header. Returns 0, or -1 with "checkpoint 'PATH': problem" in
 * err, the same on every rank. Nothing is kept open. Collective. */
int checkpoint_check(const char *path, struct checkpoint_header *hdr, char *err, size_t errlen,
                     MPI_Comm comm);

/* Read this rank's particles (for the partition m was created with), and
 * the data sets and observables (read by rank 0 and broadcast) of a file
 * checkpoint_check accepted; ds and history may be NULL. Returns the
 * seconds taken (slowest rank). Collective. */
double checkpoint_read(const char *path, struct mf_dataset *ds, struct mf_model *m,
                     struct mf_history *history);

/* The observables stored in a file checkpoint_check accepted. Not collective. */
void checkpoint_read_history(const char *path, struct mf_history *history);

/* The newest checkpoint in run_dir/checkpoints that checkpoint_check
 * accepts into path and its header into hdr ("" when there is none; the
 * others are skipped with a warning saying why). Returns the number of
 * checkpoint files seen, usable or not, or -1 with a message in err when
 * the folder exists but cannot be listed. Collective. */
int checkpoint_find_latest(const char *run_dir, char *path, size_t len,
                           struct checkpoint_header *hdr, char *err, size_t errlen,
                           MPI_Comm comm);

/* The number of checkpoint files in run_dir/checkpoints, unread; -1 with a
 * message in err when the folder exists but cannot be listed. Collective. */
int checkpoint_count(const char *run_dir, char *err, size_t errlen, MPI_Comm comm);

#endif
