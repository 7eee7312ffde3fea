/*
 * manifest: where and how a run ran, recorded with its results.
 *
 * One "key: value" line each: mfres (version), build (compiler and flags),
 * kernels (the kernel path), blas (library and core), blas_threads, cpu (the
 * CPU models of the nodes), mpi (the MPI library), ranks, nodes, hosts,
 * slurm_job, command and started (UTC). Written to DIR/manifest.txt (one
 * block per start of the run, appended) and into every checkpoint and
 * snapshot (/checkpoint attribute "manifest"); `mfres info` prints it. A
 * restart on other kernels, another BLAS core or another build warns:
 * those change the last bits of the results.
 */
#ifndef MFRES_MANIFEST_H
#define MFRES_MANIFEST_H

#include <mpi.h>
#include <stddef.h>
#include <stdio.h>

/* The largest manifest kept (the host list is cut to fit). */
#define MANIFEST_MAX 8192

/* Gather the facts of this job (host names and CPU models from every rank)
 * and keep them as the manifest, the same text on every rank. Collective. */
void manifest_build(int argc, char **argv, MPI_Comm comm);

/* The manifest built, or "" (tools and tests that built none). */
const char *manifest_text(void);

/* A manifest's lines, as "  key          value", to out. */
void manifest_print(const char *text, FILE *out);

/* The bit-relevant facts (kernels, blas, build) of a stored manifest that
 * differ from this run's, as "kernels avx512 -> avx2; blas ..." in what.
 * Returns how many differ (0 when none, or when either lacks the key). */
int manifest_differences(const char *stored, char *what, size_t len);

#endif
