/*
 * bench: `mfres bench`, the in-process speed report.
 *
 * Measures, in one process and on the same cores: the DGEMM peak of this
 * rank's BLAS, then real training steps (the same code path as `mfres
 * train`) at given L, M, D and B, and reports nominal GFLOP/s (12 B D M L
 * flops per step), the ratio to the peak, seconds per step (min, median,
 * max), peak resident memory per particle, and the share of the step spent
 * in MPI (min, mean, max over ranks and the slowest rank).
 */
#ifndef MFRES_BENCH_H
#define MFRES_BENCH_H

#include <mpi.h>

/* Run `mfres bench` with its options (argv[0] = "bench"). Returns the exit
 * status. Collective. */
int bench_main(int argc, char **argv, MPI_Comm comm);

#endif
