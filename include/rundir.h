/*
 * rundir: the layout of a run directory and the file-system steps on it.
 *
 *   DIR/config.ini                 the resolved configuration (rundir_create)
 *   DIR/manifest.txt               where and how each start ran (manifest.h)
 *   DIR/metrics.tsv, outputs.h5    written by train and outputs
 *   DIR/checkpoints/ckpt-%08d.h5   complete states, by step
 *   DIR/snapshots/snap-%08d.h5     the measure only
 *   DIR/job.log                    the job scripts' output
 *
 * Files are written under a temporary name and published with
 * rundir_publish (fsync, rename, fsync of the directory), so a crash leaves
 * every file under a final name whole. Nothing here is collective: rank 0
 * does the file-system work and the callers agree on the outcome.
 */
#ifndef MFRES_RUNDIR_H
#define MFRES_RUNDIR_H

#include <stddef.h>
#include <stdint.h>

struct mf_config;

/* The two kinds of state file. */
enum checkpoint_kind { CHECKPOINT_FULL, CHECKPOINT_SNAPSHOT };

/* The file of a checkpoint or snapshot of `step`. */
void rundir_path(const char *run_dir, enum checkpoint_kind kind, int64_t step, char *path,
                 size_t len);

/* mkdir -p run_dir and write its config.ini. Returns 0, or -1 with
 * "cannot create run directory 'DIR': reason" in err. */
int rundir_create(const struct mf_config *cfg, char *err, size_t errlen);

/* Append a manifest (manifest.h) to run_dir/manifest.txt, after a line
 * "# start"; warns when it cannot. */
void rundir_append_manifest(const char *run_dir, const char *text);

/* mkdir of one directory that may exist. Returns 0 or -1 with errno. */
int rundir_mkdir(const char *dir);

/* Make tmp durable, rename it to path and make the rename durable. Returns
 * 0 or -1 with errno. */
int rundir_publish(const char *tmp, const char *path);

/* Steps of the checkpoint files in run_dir/checkpoints, newest first
 * (*steps is allocated; free it). Temporary files are not listed. Only a
 * missing folder means none; a folder that cannot be listed (EACCES, EIO,
 * ENOTDIR, a failed readdir) returns -1 with errno. */
int64_t rundir_checkpoints(const char *run_dir, int64_t **steps);

/* A restart from the state of `step` abandons the checkpoints after it
 * (another continuation, or damaged files that were skipped): move them,
 * not delete them, into run_dir/checkpoints/superseded-TIME/, so that
 * neither pruning nor --restart auto mistakes them for this run's states.
 * Returns how many moved, or -1 with a message in err. */
int64_t rundir_supersede(const char *run_dir, int64_t step, char *err, size_t errlen);

/* Remove all but the newest `keep` checkpoints, never the one of step
 * `start` (the state the run restarted from); warns on failure. */
void rundir_prune(const char *run_dir, int64_t keep, int64_t start);

#endif
