/*
 * blas: the BLAS library this process runs (OpenBLAS): its practical peak,
 * its threads and core, and a warning when the core is the wrong one.
 */
#ifndef MFRES_BLAS_H
#define MFRES_BLAS_H

/* GFLOP/s of a large square DGEMM on this process's BLAS threads: the
 * machine's practical peak, to compare the kernels with. Best of a few
 * repetitions of about `seconds` in all. */
double blas_dgemm_gflops(double seconds);

/* Threads OpenBLAS uses in this process. */
int blas_threads(void);

/* The BLAS core OpenBLAS chose, e.g. "Haswell". */
const char *blas_core(void);

/* Warns on stderr when OpenBLAS runs a generic core on a CPU with AVX2,
 * naming the OPENBLAS_CORETYPE value that fixes it (OpenBLAS 0.3.21 may pick
 * the generic "Prescott" core on CPUs it does not know, and run several times
 * slower). Returns whether it warned. */
int blas_warn_generic(void);

#endif
