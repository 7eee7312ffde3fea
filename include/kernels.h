/*
 * kernels: the model's arithmetic on one chunk of particles.
 *
 * Plain arrays in, plain arrays out: no MPI, no files, no global state. The
 * n samples are rows of X (row-major n x D); the chunk's cm particles are
 * rows of U and W (cm x D) and entries of bias. For D <= 8 with tanh or
 * ReLU, on the avx512 path, the kernels are fused vector loops; otherwise
 * products go through BLAS DGEMM (kernels.c explains both). Either way the
 * n rows are processed in blocks of at most MF_ROW_BLOCK, so
 * pre-activations live only in the workspace, never as an n x M array. The
 * result for a chunk depends only on the inputs, the same on every rank.
 * Sums over particles are returned unscaled: the caller multiplies by h or
 * alpha.
 */
#ifndef MFRES_KERNELS_H
#define MFRES_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Sample rows per block inside a kernel call, at most (see kernels_row_block). */
#define MF_ROW_BLOCK 128

/* Sample rows per block of the DGEMM path at dimension dim: MF_ROW_BLOCK,
 * or fewer where a block's products (rows x MF_CHUNK x dim multiply-adds
 * each) would just exceed 10^6, the size up to which OpenBLAS runs them on
 * its AVX-512 cores in small-matrix kernels that skip packing: the largest
 * multiple of 8 within it, if that is at least 64 rows (61 < dim <= 122).
 * The same on every rank and machine. */
int64_t kernels_row_block(int dim);

/* Values (doubles, or floats for the _f32 kernels) of workspace a kernel
 * call needs for chunks of up to cm particles. */
int64_t kernels_workspace(int64_t cm);

/* s = sigma(a), ds = sigma'(a) elementwise; ds may be NULL. s may be a (in
 * place); ds must not overlap a or s. */
void kernels_activate(int activation, int64_t n, const double *a, double *s, double *ds);

/* Forward drift of one chunk, accumulated:
 *   drift[j] += sum_m u_m sigma(w_m . X[j] + b_m)        (j < n, m < cm) */
void kernels_forward(int activation, int64_t n, int dim, const double *X, int64_t cm,
                     const double *U, const double *W, const double *bias, double *drift,
                     double *work);

/* Backward pass of one chunk, with a_jm = w_m . X[j] + b_m and P = p_{l+1}:
 *   dP[j] += sum_m w_m sigma'(a_jm) (u_m . P[j])   (accumulated; dP may be NULL)
 *   gu[m]  = sum_j sigma(a_jm) P[j]
 *   gw[m]  = sum_j sigma'(a_jm) (u_m . P[j]) X[j]
 *   gb[m]  = sum_j sigma'(a_jm) (u_m . P[j])
 * gu, gw are cm x D and gb has cm entries; all three are overwritten. */
void kernels_backward(int activation, int64_t n, int dim, const double *X, const double *P,
                      int64_t cm, const double *U, const double *W, const double *bias,
                      double *dP, double *gu, double *gw, double *gb, double *work);

/* The same three in single precision, for model.precision = mixed: every
 * argument a float, the arithmetic in floats (sums over a chunk's particles
 * or a block's samples included); tanh within 4e-7 relative of libm's. */
void kernels_activate_f32(int activation, int64_t n, const float *a, float *s, float *ds);
void kernels_forward_f32(int activation, int64_t n, int dim, const float *X, int64_t cm,
                         const float *U, const float *W, const float *bias, float *drift,
                         float *work);
void kernels_backward_f32(int activation, int64_t n, int dim, const float *X, const float *P,
                          int64_t cm, const float *U, const float *W, const float *bias,
                          float *dP, float *gu, float *gw, float *gb, float *work);

/* ---- Kernel paths ----
 * The binary holds the kernels compiled for several instruction sets (on
 * x86-64: avx512, avx2 and generic, the baseline of any x86-64 CPU); the
 * widest one that this CPU has is used, unless kernels_choose picks another.
 * Paths agree to rounding (about 1e-16 relative), not to the bit: a run's
 * bits are reproducible for one path. */
struct exact_format;
struct kernel_ops_f32 {
    void (*activate)(int activation, int64_t n, const float *a, float *s, float *ds);
    void (*forward)(int activation, int64_t n, int dim, const float *X, int64_t cm,
                    const float *U, const float *W, const float *bias, float *drift,
                    float *work);
    void (*backward)(int activation, int64_t n, int dim, const float *X, const float *P,
                     int64_t cm, const float *U, const float *W, const float *bias, float *dP,
                     float *gu, float *gw, float *gb, float *work);
};
struct kernel_path {
    const char *name;
    void (*activate)(int activation, int64_t n, const double *a, double *s, double *ds);
    void (*forward)(int activation, int64_t n, int dim, const double *X, int64_t cm,
                    const double *U, const double *W, const double *bias, double *drift,
                    double *work);
    void (*backward)(int activation, int64_t n, int dim, const double *X, const double *P,
                     int64_t cm, const double *U, const double *W, const double *bias,
                     double *dP, double *gu, double *gw, double *gb, double *work);
    /* exact_add (exact.h), whose limb loops are the other hot code */
    void (*exact_add)(const struct exact_format *f, int64_t *acc, const double *x, int64_t n);
    const struct kernel_ops_f32 *f32; /* the same path's single-precision kernels */
};

/* The files compiled once per path (the Makefile's PATH_SOURCES: kernels.c,
 * also as kernels_f32 with MF_REAL_FLOAT, and exact.c) get the path's name
 * as MF_KERNEL_PATH and name what they compile per path
 * KERNEL_PATH_FN(name), e.g. exact_add_avx2. What does not depend on
 * the path is compiled in the generic build alone, under MF_KERNEL_COMMON. */
#define KERNEL_PATH_CAT_(name, path) name##_##path
#define KERNEL_PATH_CAT(name, path) KERNEL_PATH_CAT_(name, path)
#define KERNEL_PATH_FN(name) KERNEL_PATH_CAT(name, MF_KERNEL_PATH)

/* The paths built into this binary, widest first, NULL-terminated. */
extern const struct kernel_path *const kernel_paths[];

/* The names of the paths built, " avx512 avx2 generic", into buf. */
const char *kernels_path_names(char *buf, size_t len);

/* Whether this CPU (and its operating system) can run the path. */
int kernels_runnable(const struct kernel_path *path);

/* Use the path named `name`, or with "auto" or NULL the widest this CPU runs.
 * Returns 0, or -1 with a message (an unknown name, or one this CPU cannot
 * run, with the CPU's instruction sets) in err. */
int kernels_choose(const char *name, char *err, size_t errlen);

/* The path in use (chosen on first use if kernels_choose was not called). */
const struct kernel_path *kernels_path(void);

/* The instruction sets the whole binary was compiled to use (a -march in
 * CFLAGS), checked against the CPU at start; "" for the architecture's
 * baseline, the default build, which runs on any CPU of it. */
const char *kernels_build_target(void);

/* This CPU's instruction sets among those the paths and compilers use, e.g.
 * "sse3 ssse3 sse4.1 sse4.2 avx avx2 fma"; into buf (at least 160 bytes). */
const char *kernels_cpu_isa(char *buf, size_t len);

#endif
