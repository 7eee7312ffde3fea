/*
 * plan: what a run will need, known before it is queued or allocates
 * anything: memory per rank and per node, the checkpoint size, and (from a
 * few steps of a scaled-down model on this CPU) the seconds per step and
 * the core-hours. `mfres config CONFIG --ranks R [--nodes N]` prints it;
 * `mfres train` refuses a run whose estimate exceeds a node's memory with
 * the same message, before any allocation.
 */
#ifndef MFRES_PLAN_H
#define MFRES_PLAN_H

#include <stdio.h>
#include <stddef.h>

struct mf_config;

/* Bytes, from the sizes of the arrays mfres allocates (src/README.md,
 * "Memory"). */
struct plan {
    int ranks, nodes, ranks_per_node; /* ranks_per_node: on the fullest node */
    double state;      /* particle state of one rank: 8 (2D + 1) L M / ranks */
    double buffers;    /* batch pass, evaluation, exact sums and data, per rank */
    double rank;       /* state + buffers + PLAN_RANK_BASE */
    double checkpoint; /* one checkpoint file */
};

/* What every rank holds besides its arrays (MPI, BLAS buffers, code), as
 * measured by `mfres bench` at small widths. */
#define PLAN_RANK_BASE (70.0 * 1048576)

/* The plan of a resolved configuration on `ranks` ranks over `nodes`
 * nodes. */
void plan_estimate(const struct mf_config *cfg, int ranks, int nodes, struct plan *p);

/* 0 when a node of node_memory bytes holds the share of `ranks_here` ranks;
 * else -1 with a message naming the sizes, the keys and where node_memory
 * came from (source). */
int plan_check_memory(const struct plan *p, int ranks_here, double node_memory,
                      const char *host, const char *source, char *err, size_t errlen);

/* This machine's memory in bytes (0 when unknown). */
double plan_node_memory(void);

/* The memory this job may use on this node: the machine's, or less when
 * Slurm says so (SLURM_MEM_PER_NODE, or SLURM_MEM_PER_CPU times
 * SLURM_CPUS_ON_NODE, as --mem and --mem-per-cpu set them); source says
 * which. Cgroup limits set otherwise are not read. */
double plan_job_memory(char *source, size_t len);

/* Seconds per training step of cfg on `ranks` ranks, from a few steps of
 * the same model with fewer particles on this process alone, scaled to
 * the particles per rank. Not collective. */
double plan_probe_step(const struct mf_config *cfg, int ranks);

/* The plan as INI comment lines ("; ..."), with the probe's time per step
 * and core-hours when step_seconds > 0. */
void plan_print(const struct mf_config *cfg, const struct plan *p, double step_seconds,
                FILE *out);

#endif
