/*
 * model: forward pass, loss, adjoint pass and fused particle update across
 * layers and ranks (see model.h).
 *
 * Per layer, each chunk's sums (n x D: its share of the drift, or of the
 * adjoint's increment) are computed from zero in a fixed order, whatever
 * rank computes the chunk, and added to the rank's exact accumulator
 * (exact.h); one MPI_Allreduce over integers then adds the ranks'. A sum of
 * chunk sums that is exact does not depend on which rank held or computed
 * which chunk, so every layer's drift and adjoint, and so the whole
 * trajectory, are the same bits on any number of ranks, with or without
 * work sharing and load balancing. The last adjoint increment (p_0) is
 * never needed and is skipped, as is the adjoint of the shallow ensemble,
 * whose every block sees X_0 and p_L.
 */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "config.h"
#include "exact.h"
#include "kernels.h"
#include "log.h"
#include "share.h"
#include "timer.h"

void model_create(struct mf_model *m, const struct mf_config *cfg, int64_t d_out,
                  MPI_Comm comm)
{
    memset(m, 0, sizeof *m);
    m->comm = comm;
    m->activation = cfg->model.activation;
    m->architecture = cfg->model.architecture;
    m->loss = cfg->train.loss;
    m->alpha = cfg->model.alpha;
    m->h = cfg->model.alpha / ((double)cfg->model.layers * (double)cfg->model.width);
    m->d_out = d_out;
    const int share = cfg->train.share_work == MF_SHARE_NODE ||
                      (cfg->train.share_work == MF_SHARE_AUTO && cfg->train.balance_every == 0);
    const int D = (int)cfg->model.dim, precision = cfg->model.precision;
    if (share && comm_size(comm) > 1) {
        particles_layout(&m->particles, cfg->model.layers, cfg->model.width, D, precision,
                         comm_rank(comm), comm_size(comm));
        m->share = share_create(&m->particles, cfg->train.share_work == MF_SHARE_NODE, comm);
    }
    if (!m->share)
        particles_alloc(&m->particles, cfg->model.layers, cfg->model.width, D, precision,
                        comm_rank(comm), comm_size(comm));
    particles_init(&m->particles, cfg->init.u_std, cfg->init.w_std, cfg->init.b_std,
                   (uint64_t)cfg->init.seed, RNG_INIT);
    const size_t tile = (size_t)MF_CHUNK * (size_t)(2 * D + 1);
    m->work = xmalloc((size_t)kernels_workspace(MF_CHUNK) * sizeof(double));
    m->grad = xmalloc(tile * sizeof(double));
    if (precision == MF_PRECISION_MIXED) {
        m->grad32 = xmalloc(tile * sizeof(float));
        m->theta = xmalloc(tile * sizeof(double));
    }
}

static int mixed(const struct mf_model *m)
{
    return m->particles.precision == MF_PRECISION_MIXED;
}

void model_destroy(struct mf_model *m)
{
    particles_free(&m->particles);
    if (m->share)
        share_destroy(m->share);
    m->share = NULL;
    free(m->work);
    free(m->grad);
    free(m->chunk_sums);
    free(m->acc);
    free(m->x32);
    free(m->grad32);
    free(m->theta);
    m->work = m->grad = m->chunk_sums = m->theta = NULL;
    m->acc = NULL;
    m->x32 = m->p32 = m->sums32 = m->grad32 = NULL;
    m->sums_size = 0;
}

void model_pad_input(const struct mf_model *m, int64_t n, int64_t d_in, const double *x,
                     double *X)
{
    const int D = m->particles.dim;
    for (int64_t j = 0; j < n; j++) {
        memcpy(X + j * D, x + j * d_in, (size_t)d_in * sizeof *X);
        memset(X + j * D + d_in, 0, (size_t)(D - d_in) * sizeof *X);
    }
}

/* Room for the exact sums of `count` doubles (a double and EXACT_STATE's
 * limbs each), and in mixed precision their inputs' and terms' floats,
 * kept from pass to pass. */
static void reserve_sums(struct mf_model *m, int64_t count)
{
    if (count <= m->sums_size)
        return;
    const char *what = "the exact sums of a pass (5, or 6.5 in mixed precision, x the larger "
                       "of train.batch, data.samples and data.test_samples x model.dim 8-byte "
                       "values)";
    free(m->chunk_sums);
    free(m->acc);
    free(m->x32);
    m->chunk_sums = xmalloc_for(what, (size_t)count, sizeof *m->chunk_sums);
    m->acc = xmalloc_for(what, (size_t)exact_size(&EXACT_STATE, count), sizeof *m->acc);
    if (mixed(m)) {
        m->x32 = xmalloc_for(what, 3 * (size_t)count, sizeof *m->x32);
        m->p32 = m->x32 + count, m->sums32 = m->p32 + count;
    }
    m->sums_size = count;
}

void model_reserve(struct mf_model *m, int64_t rows)
{
    reserve_sums(m, rows * m->particles.dim);
}

/* Exact sums of `count` doubles, gathered chunk by chunk: sums_begin zeroes
 * the accumulator, chunk_sums hands out a zeroed buffer for one chunk's
 * sums, sums_add adds them, sums_end reduces over the ranks. */
static void sums_begin(struct mf_model *m, int64_t count)
{
    reserve_sums(m, count);
    memset(m->acc, 0, (size_t)exact_size(&EXACT_STATE, count) * sizeof *m->acc);
}

static double *chunk_sums(struct mf_model *m, int64_t count)
{
    memset(m->chunk_sums, 0, (size_t)count * sizeof *m->chunk_sums);
    return m->chunk_sums;
}

/* Doubles to floats and back (exactly). */
static void narrow(int64_t n, const double *x, float *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = (float)x[i];
}

static void widen(int64_t n, const float *x, double *y)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i];
}

static void sums_add(struct mf_model *m, int64_t count, int64_t *terms)
{
    exact_add(&EXACT_STATE, m->acc, m->chunk_sums, count);
    if (++*terms % (EXACT_TERMS / 2) == 0)
        exact_carry(&EXACT_STATE, m->acc, count);
}

static void sums_end(struct mf_model *m, int64_t count, double *out)
{
    exact_allreduce(&EXACT_STATE, m->acc, count, out, m->comm);
}

/* One pass over the groups of chunks of a layer (particles.h): this rank's
 * own, in order, or with work sharing whichever it claims on its node
 * (every group of the node exactly once over its ranks). */
struct pass {
    struct mf_model *m;
    int64_t next; /* next own group start, without sharing */
};

static struct pass pass_begin(struct mf_model *m, int steal)
{
    if (m->share)
        share_begin(m->share, steal);
    return (struct pass){m, 0};
}

static int pass_next(struct pass *ps, struct mf_group *g)
{
    const struct mf_particles *p = &ps->m->particles;
    if (ps->m->share)
        return share_next(ps->m->share, g);
    if (ps->next >= p->count)
        return 0;
    const int64_t end = ps->next + particles_group_size(p->count);
    *g = (struct mf_group){p, ps->next, end < p->count ? end : p->count};
    ps->next = end;
    return 1;
}

static void pass_end(struct pass *ps)
{
    if (ps->m->share)
        share_end(ps->m->share);
}

/* Add this rank's chunks' drift of layer l at X (n x D) to the sums. In
 * mixed precision the kernels read X as floats, converted here once, and
 * their float sums are converted back (exactly) for the exact sum. */
static void layer_drift(struct mf_model *m, int64_t l, int64_t n, const double *X,
                        int64_t *terms)
{
    const int D = m->particles.dim;
    const int64_t nd = n * D;
    if (mixed(m))
        narrow(nd, X, m->x32);
    struct pass ps = pass_begin(m, 1);
    struct mf_group g;
    while (pass_next(&ps, &g)) {
        for (int64_t i0 = g.i0; i0 < g.i1; i0 += MF_CHUNK) {
            const struct mf_chunk c = particles_chunk(g.owner, l, i0);
            if (mixed(m)) {
                memset(m->sums32, 0, (size_t)nd * sizeof *m->sums32);
                kernels_forward_f32(m->activation, n, D, m->x32, c.size, c.uf, c.wf, c.bf,
                                    m->sums32, (float *)m->work);
                widen(nd, m->sums32, m->chunk_sums);
            } else {
                kernels_forward(m->activation, n, D, X, c.size, c.u, c.w, c.b,
                                chunk_sums(m, nd), m->work);
            }
            sums_add(m, nd, terms);
        }
    }
    pass_end(&ps);
}

void model_forward(struct mf_model *m, int64_t n, double *X, int64_t slot_stride,
                   const int64_t *order, double *drift)
{
    const struct mf_particles *p = &m->particles;
    const int64_t nd = n * p->dim;
    for (int64_t k = 0; k < p->layers; k++) {
        double *Xk = X + k * slot_stride, *Xnext = Xk + slot_stride;
        int64_t terms = 0;
        sums_begin(m, nd);
        layer_drift(m, order ? order[k] : k, n, Xk, &terms);
        sums_end(m, nd, drift);
        for (int64_t i = 0; i < nd; i++)
            Xnext[i] = Xk[i] + m->h * drift[i];
    }
}

void model_forward_shallow(struct mf_model *m, int64_t n, const double *X0, double *out)
{
    const struct mf_particles *p = &m->particles;
    const int64_t nd = n * p->dim;
    int64_t terms = 0;
    sums_begin(m, nd);
    for (int64_t l = 0; l < p->layers; l++)
        layer_drift(m, l, n, X0, &terms);
    sums_end(m, nd, out);
    for (int64_t i = 0; i < nd; i++)
        out[i] = X0[i] + m->h * out[i];
}

double model_loss(const struct mf_model *m, int64_t n, const double *XL, const double *y,
                  double *pL, int64_t *correct)
{
    const int D = m->particles.dim;
    const int64_t K = m->d_out;
    double total = 0;
    int64_t right = 0;
    if (pL)
        memset(pL, 0, (size_t)(n * D) * sizeof *pL);
    for (int64_t j = 0; j < n; j++) {
        const double *z = XL + j * D;
        double *p = pL ? pL + j * D : NULL;
        if (m->loss == MF_LOSS_MSE) {
            for (int64_t k = 0; k < K; k++) {
                double e = z[k] - y[j * K + k];
                total += 0.5 * e * e;
                if (p)
                    p[k] = e / (double)n;
            }
        } else {
            int64_t label = (int64_t)y[j], best = 0;
            double zmax = z[0];
            for (int64_t k = 1; k < K; k++)
                if (z[k] > zmax)
                    zmax = z[k], best = k;
            double sum = 0;
            for (int64_t k = 0; k < K; k++)
                sum += exp(z[k] - zmax);
            total += zmax + log(sum) - z[label];
            right += best == label;
            if (p) {
                for (int64_t k = 0; k < K; k++)
                    p[k] = exp(z[k] - zmax) / sum / (double)n;
                p[label] -= 1.0 / (double)n;
            }
        }
    }
    if (correct)
        *correct = right;
    return total / (double)n;
}

/* One contiguous part (u, w or b) of a chunk: g = h raw is dE/dtheta, the
 * velocity v = L M g + wd theta, theta -= lr v when applying. Returns the
 * sum of v^2, kept in four partial sums so the loop vectorizes. */
static double update_part(const struct mf_model *m, const struct mf_update *upd, int64_t n,
                          double *theta, const double *raw, double *gout)
{
    const double h = m->h, lm = (double)m->particles.layers * (double)m->particles.width;
    const double wd = upd ? upd->weight_decay : 0.0;
    const double lr = upd && upd->apply ? upd->lr : 0.0;
    double vv[4] = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) {
            double v = lm * (h * raw[i + k]) + wd * theta[i + k];
            vv[k] += v * v;
            if (lr != 0.0)
                theta[i + k] -= lr * v;
        }
    for (; i < n; i++) {
        double v = lm * (h * raw[i]) + wd * theta[i];
        vv[0] += v * v;
        if (lr != 0.0)
            theta[i] -= lr * v;
    }
    if (gout)
        for (int64_t j = 0; j < n; j++)
            gout[j] = h * raw[j];
    return (vv[0] + vv[1]) + (vv[2] + vv[3]);
}

/* Langevin noise sqrt(2 lr T) xi on a chunk's updated particles. xi is keyed
 * by (step, layer, particle, component / 4), components in the order u, w, b:
 * the same on any rank count. */
static void add_noise(const struct mf_model *m, const struct mf_update *upd, int64_t l,
                      const struct mf_chunk *c)
{
    const int D = m->particles.dim;
    const double noise = sqrt(2.0 * upd->lr * upd->temperature);
    for (int64_t i = 0; i < c->size; i++) {
        double *theta[3] = {c->u + i * D, c->w + i * D, c->b + i};
        double z[4];
        int comp = 0;
        for (int part = 0; part < 3; part++)
            for (int k = 0; k < (part < 2 ? D : 1); k++, comp++) {
                if (comp % 4 == 0)
                    rng_normal4(upd->seed, RNG_NOISE, (uint64_t)upd->step, (uint64_t)l,
                                (uint64_t)(c->first + i), (uint64_t)comp / 4, z);
                theta[part][k] += noise * z[comp % 4];
            }
    }
}

/* Turn one chunk's raw sums into dE/dtheta, optionally copy it out, and
 * apply the update. Returns the chunk's sum of squared velocities. */
static double update_chunk(const struct mf_model *m, const struct mf_update *upd, int64_t l,
                           const struct mf_chunk *c, const double *gu, const double *gw,
                           const double *gb)
{
    const int D = m->particles.dim;
    const int64_t cm = c->size, at = c->offset;
    const int copy = upd && upd->grad_u; /* only in passes of own chunks */
    double vv = update_part(m, upd, cm * D, c->u, gu, copy ? upd->grad_u + at * D : NULL);
    vv += update_part(m, upd, cm * D, c->w, gw, copy ? upd->grad_w + at * D : NULL);
    vv += update_part(m, upd, cm, c->b, gb, copy ? upd->grad_b + at : NULL);
    if (upd && upd->apply && upd->temperature > 0)
        add_noise(m, upd, l, c);
    return vv;
}

/* One chunk's backward pass into the chunk sums (if want_dp) and the
 * gradient tile gu, gw, gb, then its update; returns its squared
 * velocities. In mixed precision the float results are converted to
 * doubles, and the chunk's particles too, updated in doubles and rounded
 * back to floats. */
static double backward_chunk(struct mf_model *m, int64_t n, const double *X, const double *P,
                             int want_dp, int64_t l, const struct mf_chunk *c,
                             const struct mf_update *upd)
{
    const int D = m->particles.dim;
    const int64_t nd = n * D, cm = c->size, tile = MF_CHUNK * D;
    double *gu = m->grad, *gw = gu + tile, *gb = gw + tile;
    if (!mixed(m)) {
        kernels_backward(m->activation, n, D, X, P, cm, c->u, c->w, c->b,
                         want_dp ? chunk_sums(m, nd) : NULL, gu, gw, gb, m->work);
        return update_chunk(m, upd, l, c, gu, gw, gb);
    }
    float *gu32 = m->grad32, *gw32 = gu32 + tile, *gb32 = gw32 + tile;
    if (want_dp)
        memset(m->sums32, 0, (size_t)nd * sizeof *m->sums32);
    kernels_backward_f32(m->activation, n, D, m->x32, m->p32, cm, c->uf, c->wf, c->bf,
                         want_dp ? m->sums32 : NULL, gu32, gw32, gb32, (float *)m->work);
    if (want_dp)
        widen(nd, m->sums32, m->chunk_sums);
    widen(cm * D, gu32, gu);
    widen(cm * D, gw32, gw);
    widen(cm, gb32, gb);
    struct mf_chunk wide = *c;
    wide.u = m->theta, wide.w = m->theta + cm * D, wide.b = m->theta + 2 * cm * D;
    widen(cm * D, c->uf, wide.u);
    widen(cm * D, c->wf, wide.w);
    widen(cm, c->bf, wide.b);
    const double vv = update_chunk(m, upd, l, &wide, gu, gw, gb);
    narrow(cm * D, wide.u, c->uf);
    narrow(cm * D, wide.w, c->wf);
    narrow(cm, wide.b, c->bf);
    return vv;
}

double model_backward(struct mf_model *m, int64_t n, const double *X, const double *pL,
                      const int64_t *order, const struct mf_update *upd, double *P,
                      double *dP)
{
    struct mf_particles *p = &m->particles;
    const int D = p->dim;
    const int64_t nd = n * D;
    const int shallow = m->architecture == MF_ARCH_SHALLOW;
    int64_t vv[EXACT_SCALAR_LIMBS + 1]; /* exact_size(&EXACT_SCALAR, 1) */
    memset(vv, 0, sizeof vv);
    memcpy(P, pL, (size_t)nd * sizeof *P);
    reserve_sums(m, nd);
    for (int64_t k = p->layers - 1; k >= 0; k--) {
        const int64_t l = order ? order[k] : k;
        const double *Xk = shallow ? X : X + k * nd;
        /* P = p_{k+1}; the increment to p_k is needed only above layer 0.
         * The sums are dP (n x D); the squared velocities have their own.
         * Gradients copied out are laid out per owned particle: such a pass
         * computes this rank's groups only. */
        const int want_dp = !shallow && k > 0;
        int64_t terms = 0;
        if (want_dp)
            sums_begin(m, nd);
        if (mixed(m) && (k == p->layers - 1 || !shallow)) {
            narrow(nd, Xk, m->x32);
            narrow(nd, P, m->p32);
        }
        struct pass ps = pass_begin(m, !(upd && upd->grad_u));
        struct mf_group g;
        while (pass_next(&ps, &g)) {
            for (int64_t i0 = g.i0; i0 < g.i1; i0 += MF_CHUNK) {
                const struct mf_chunk c = particles_chunk(g.owner, l, i0);
                const double chunk_vv = backward_chunk(m, n, Xk, P, want_dp, l, &c, upd);
                if (want_dp)
                    sums_add(m, nd, &terms);
                exact_add(&EXACT_SCALAR, vv, &chunk_vv, 1);
            }
        }
        pass_end(&ps);
        exact_carry(&EXACT_SCALAR, vv, 1); /* a layer's chunks are far fewer than 2^22 */
        if (want_dp) {
            sums_end(m, nd, dP);
            for (int64_t i = 0; i < nd; i++)
                P[i] += m->h * dP[i];
        }
    }
    double total;
    exact_allreduce(&EXACT_SCALAR, vv, 1, &total, m->comm);
    return total;
}
