/*
 * blas: the BLAS library this process runs (any CBLAS: OpenBLAS, BLIS,
 * MKL, ...): its practical peak, which library and core it is, its threads,
 * and a warning when OpenBLAS chose the wrong core.
 *
 * The CBLAS header is <cblas.h>, or the one named by MF_CBLAS_HEADER
 * (e.g. -DMF_CBLAS_HEADER='<mkl_cblas.h>' in BLAS_CFLAGS).
 */
#ifndef MFRES_BLAS_H
#define MFRES_BLAS_H

#ifdef MF_CBLAS_HEADER
#include MF_CBLAS_HEADER
#else
#include <cblas.h>
#endif

/* GFLOP/s of a large square DGEMM on this process's BLAS threads: the
 * machine's practical peak, to compare the kernels with. Best of a few
 * repetitions of about `seconds` in all. */
double blas_dgemm_gflops(double seconds);
/* The same for SGEMM: the peak of the mixed-precision kernels. */
double blas_sgemm_gflops(double seconds);

/* The library as found at run time (by its own functions' names, so any
 * CBLAS links): "OpenBLAS core Haswell", "BLIS 0.9.0", "MKL" or "CBLAS". */
const char *blas_name(void);

/* Threads the BLAS uses in this process; 0 where the library does not say. */
int blas_threads(void);

/* Warns on stderr when OpenBLAS runs a generic core on a CPU with AVX2,
 * naming the OPENBLAS_CORETYPE value that fixes it (OpenBLAS 0.3.21 may pick
 * the generic "Prescott" core on CPUs it does not know, and run several times
 * slower). Returns whether it warned. */
int blas_warn_generic(void);

#endif
