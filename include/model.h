/*
 * model: the distributed mean-field ResNet, layer by layer.
 *
 * Forward: X_{k+1} = X_k + h sum_m u sigma(w.X_k + b) over the particles of
 * the layer at position k; each rank sums its chunks and one MPI_Allreduce
 * per layer combines the drift. Backward: the exact discrete adjoint,
 * recomputing pre-activations from the stored X_k (never an n x M array),
 * with one MPI_Allreduce per layer for the adjoint increment. The particle
 * update is applied chunk by chunk inside the backward pass, right after the
 * chunk's contribution to the adjoint was computed from its old values, so
 * no gradient array the size of the particle state is ever needed.
 */
#ifndef MFRES_MODEL_H
#define MFRES_MODEL_H

#include <mpi.h>
#include <stdint.h>

#include "particles.h"

struct mf_share;

struct mf_config;

struct mf_model {
    struct mf_particles particles; /* this rank's share */
    int activation;                /* enum mf_activation */
    int architecture;              /* enum mf_architecture */
    int loss;                      /* enum mf_loss */
    double alpha;                  /* residual scale */
    double h;                      /* alpha / (L M) */
    int64_t d_out;                 /* outputs read from X_L */
    MPI_Comm comm;                 /* ranks sharing the particles */
    double *work;                  /* kernel workspace (of floats in mixed precision) */
    double *grad;                  /* one chunk's gradient tile: gu, gw, gb */
    double *chunk_sums;            /* one chunk's sums, the terms of acc */
    int64_t *acc;                  /* a pass's exact sums (exact.h) */
    int64_t sums_size;             /* doubles in chunk_sums */
    /* Mixed precision only (else NULL): the kernels' float inputs and
     * outputs, converted to and from doubles once per layer or chunk. */
    float *x32, *p32, *sums32;     /* X_k, p_{k+1} and one chunk's sums: sums_size each */
    float *grad32;                 /* the gradient tile as the kernels return it */
    double *theta;                 /* one chunk's particles in doubles, for the update */
    struct mf_share *share;        /* work sharing on the node (train.share_work); or NULL */
};

/* What the backward pass does with the gradient of each chunk. */
struct mf_update {
    int apply;           /* nonzero: theta -= lr (L M dE/dtheta + wd theta) + noise */
    double lr;           /* eta */
    double weight_decay; /* lambda */
    double temperature;  /* T: adds sqrt(2 eta T) xi */
    uint64_t seed;       /* Langevin noise stream */
    int64_t step;        /* noise counter */
    /* Optional copies of dE/dtheta for the owned particles, laid out like the
     * particle arrays (NULL: not wanted). */
    double *grad_u, *grad_w, *grad_b;
};

/* Allocate and initialise this rank's particles from cfg. Collective only
 * in that every rank of comm must call it. */
void model_create(struct mf_model *m, const struct mf_config *cfg, int64_t d_out,
                  MPI_Comm comm);
void model_destroy(struct mf_model *m);

/* Allocate now the buffers of the exact sums of a pass over `rows` samples
 * (5 rows x D values), which passes would otherwise allocate on first use:
 * an allocation that fails names the keys that size it. Not collective. */
void model_reserve(struct mf_model *m, int64_t rows);

/* ResNet forward pass on n samples. X holds slot k at X + k*slot_stride
 * (n x D each); slot 0 is the padded input. With slot_stride = n*D all L+1
 * states are kept (as the backward pass needs); with 0, X is advanced in
 * place to X_L. order[k] is the layer at position k (NULL: identity).
 * drift is n x D scratch. Collective. */
void model_forward(struct mf_model *m, int64_t n, double *X, int64_t slot_stride,
                   const int64_t *order, double *drift);

/* Shallow ensemble: out = X0 + h sum over all layers and particles of
 * f(X0; theta). Collective. */
void model_forward_shallow(struct mf_model *m, int64_t n, const double *X0, double *out);

/* Loss (1/n) sum_j l(z_j, y_j) of the outputs XL (n x D); with pL non-NULL
 * also p_L = dE/dX_L (n x D). Correct counts the right predictions
 * (cross_entropy; may be NULL). Not collective. */
double model_loss(const struct mf_model *m, int64_t n, const double *XL, const double *y,
                  double *pL, int64_t *correct);

/* Adjoint pass from pL over the states X of model_forward (all slots kept;
 * for the shallow architecture only slot 0 is read), with the chunk updates
 * of upd. P and dP are n x D scratch; P starts as a copy of pL. Returns the
 * sum over all particles of |L M dE/dtheta + lambda theta|^2, the squared
 * mean-field velocity (an exact sum, the same on every rank). Collective. */
double model_backward(struct mf_model *m, int64_t n, const double *X, const double *pL,
                      const int64_t *order, const struct mf_update *upd, double *P,
                      double *dP);

/* Copy samples x (n x d_in) into X (n x D), zero-padding the columns. */
void model_pad_input(const struct mf_model *m, int64_t n, int64_t d_in, const double *x,
                     double *X);

#endif
