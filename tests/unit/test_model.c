/*
 * Tests of model and train across ranks: the exact adjoint against central
 * finite differences, the update rule, Langevin noise, and results that do
 * not depend on the number of ranks (compared in-process against the same
 * run on MPI_COMM_SELF). Run with 1 to 4 ranks; small widths make ranks that
 * own no particle.
 */
#include "mpi_cmocka.h"

#include <string.h>

#include "comm.h"
#include "config.h"
#include "data.h"
#include "model.h"
#include "particles.h"
#include "train.h"

/* A resolved configuration with small generated data. */
static void small_config(struct mf_config *cfg, int kind, int loss, int64_t L, int64_t M)
{
    char err[MF_ERR_MAX];
    config_defaults(cfg);
    cfg->data.kind = kind;
    cfg->train.loss = loss;
    cfg->model.layers = L;
    cfg->model.width = M;
    cfg->data.samples = 9;
    cfg->data.test_samples = 5;
    cfg->model.dim = 3;
    cfg->init.b_std = 0.3;
    if (kind == MF_DATA_TEACHER)
        cfg->data.input_dim = 2, cfg->data.output_dim = 2;
    if (config_resolve(cfg, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
}

struct fixture {
    struct mf_config cfg;
    struct mf_dataset ds;
    struct mf_model m;
    int64_t n, D, L;
    double *X, *drift, *pL, *P, *dP;
    int64_t order[8];
};

static void fixture_init(struct fixture *f, MPI_Comm comm)
{
    data_build(&f->cfg, NULL, &f->ds);
    model_create(&f->m, &f->cfg, f->ds.d_out, comm);
    f->n = f->ds.train.n;
    f->D = f->cfg.model.dim;
    f->L = f->cfg.model.layers;
    size_t nd = (size_t)(f->n * f->D);
    f->X = xmalloc((size_t)(f->L + 1) * nd * sizeof(double));
    f->drift = xmalloc(nd * sizeof(double));
    f->pL = xmalloc(nd * sizeof(double));
    f->P = xmalloc(nd * sizeof(double));
    f->dP = xmalloc(nd * sizeof(double));
    train_layer_order(&f->cfg, 5, f->order);
}

static void fixture_free(struct fixture *f)
{
    free(f->X), free(f->drift), free(f->pL), free(f->P), free(f->dP);
    model_destroy(&f->m);
    data_free(&f->ds);
}

/* Loss of the whole training set; leaves the states in X and p_L in pL. */
static double loss_of(struct fixture *f)
{
    const int64_t nd = f->n * f->D;
    model_pad_input(&f->m, f->n, f->ds.train.d_in, f->ds.train.x, f->X);
    double *out = f->X + f->L * nd;
    if (f->m.architecture == MF_ARCH_SHALLOW)
        model_forward_shallow(&f->m, f->n, f->X, out);
    else
        model_forward(&f->m, f->n, f->X, nd, f->order, f->drift);
    return model_loss(&f->m, f->n, out, f->ds.train.y, f->pL, NULL);
}

/* Per-particle arrays shaped like the owned particles: gradients, copies. */
struct arrays {
    double *u, *w, *b;
};

static struct arrays arrays_alloc(const struct mf_particles *p)
{
    size_t n = (size_t)(p->layers * p->count);
    return (struct arrays){xcalloc(n * (size_t)p->dim + 1, sizeof(double)),
                           xcalloc(n * (size_t)p->dim + 1, sizeof(double)),
                           xcalloc(n + 1, sizeof(double))};
}

static void arrays_free(struct arrays *a) { free(a->u), free(a->w), free(a->b); }

/* Pointer to component k of particle (l, m) if this rank owns it. */
static double *param(struct mf_particles *p, int64_t l, int64_t m, int k)
{
    if (m < p->first || m >= p->first + p->count)
        return NULL;
    int64_t local = l * p->count + m - p->first;
    return k < p->dim ? &p->u[local * p->dim + k]
           : k < 2 * p->dim ? &p->w[local * p->dim + k - p->dim]
                            : &p->b[local];
}

static void check_gradient(int kind, int loss, int act, int arch, int order, int64_t M)
{
    struct fixture f;
    small_config(&f.cfg, kind, loss, 3, M);
    f.cfg.model.activation = act;
    f.cfg.model.architecture = arch;
    f.cfg.train.order = order;
    fixture_init(&f, MPI_COMM_WORLD);
    struct mf_particles *p = &f.m.particles;
    const int D = p->dim;
    struct arrays g = arrays_alloc(p);
    double *gu = g.u, *gw = g.w, *gb = g.b;
    struct mf_update upd = {.apply = 0, .grad_u = gu, .grad_w = gw, .grad_b = gb};
    loss_of(&f);
    model_backward(&f.m, f.n, f.X, f.pL, f.order, &upd, f.P, f.dP);

    /* Every component of a few particles per layer, chunk edges included. */
    const int64_t probe[] = {0, 1, M / 2, MF_CHUNK - 1, MF_CHUNK, M - 1};
    const double eps = 1e-5;
    double err2 = 0, norm2 = 0;
    for (int64_t l = 0; l < p->layers; l++)
        for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
            int64_t m = probe[i];
            if (m >= M || (i > 0 && m <= probe[i - 1]))
                continue;
            for (int k = 0; k < 2 * D + 1; k++) {
                double *theta = param(p, l, m, k), saved = theta ? *theta : 0;
                if (theta)
                    *theta = saved + eps;
                double ep = loss_of(&f);
                if (theta)
                    *theta = saved - eps;
                double em = loss_of(&f);
                if (!theta)
                    continue;
                *theta = saved;
                double fd = (ep - em) / (2 * eps);
                int64_t local = l * p->count + m - p->first;
                double g = k < D ? gu[local * D + k] : k < 2 * D ? gw[local * D + k - D] : gb[local];
                err2 += (fd - g) * (fd - g);
                norm2 += g * g;
                assert_close(fd, g, 1e-5, 1e-10);
            }
        }
    double sums[2] = {err2, norm2};
    comm_sum(sums, 2, MPI_COMM_WORLD);
    if (!(sqrt(sums[0]) < 1e-6 * sqrt(sums[1])))
        fail_msg("gradient relative error %.3g (act %d loss %d arch %d order %d)",
                 sqrt(sums[0] / sums[1]), act, loss, arch, order);
    arrays_free(&g);
    fixture_free(&f);
}

static void test_gradient_every_activation_and_loss(void **state)
{
    (void)state;
    for (int act = MF_ACT_TANH; act <= MF_ACT_SOFTPLUS; act++) {
        check_gradient(MF_DATA_TEACHER, MF_LOSS_MSE, act, MF_ARCH_RESNET, MF_ORDER_FIXED, 5);
        check_gradient(MF_DATA_SPIRALS, MF_LOSS_CROSS_ENTROPY, act, MF_ARCH_RESNET,
                       MF_ORDER_FIXED, 5);
    }
}

static void test_gradient_variants(void **state)
{
    (void)state;
    /* Several chunks, so several ranks own particles. */
    check_gradient(MF_DATA_TEACHER, MF_LOSS_MSE, MF_ACT_TANH, MF_ARCH_RESNET, MF_ORDER_SHUFFLE,
                   2 * MF_CHUNK + 3);
    check_gradient(MF_DATA_TEACHER, MF_LOSS_MSE, MF_ACT_SOFTPLUS, MF_ARCH_SHALLOW,
                   MF_ORDER_FIXED, 2 * MF_CHUNK + 3);
    check_gradient(MF_DATA_SPIRALS, MF_LOSS_CROSS_ENTROPY, MF_ACT_TANH, MF_ARCH_SHALLOW,
                   MF_ORDER_SHUFFLE, 7);
}

/* theta_new = theta - lr (L M dE/dtheta + lambda theta) at T = 0, and the
 * returned squared velocity is the sum of exactly those velocities. */
static void test_update_rule(void **state)
{
    (void)state;
    struct fixture f;
    small_config(&f.cfg, MF_DATA_TEACHER, MF_LOSS_MSE, 2, MF_CHUNK + 10);
    fixture_init(&f, MPI_COMM_WORLD);
    struct mf_particles *p = &f.m.particles;
    const int D = p->dim;
    const size_t own = (size_t)(p->layers * p->count);
    struct arrays g = arrays_alloc(p), start = arrays_alloc(p);
    double *gu = g.u, *gw = g.w, *gb = g.b, *u0 = start.u, *w0 = start.w, *b0 = start.b;
    if (own) {
        memcpy(u0, p->u, own * D * sizeof(double));
        memcpy(w0, p->w, own * D * sizeof(double));
        memcpy(b0, p->b, own * sizeof(double));
    }
    const double lr = 0.3, wd = 0.01, LM = (double)(p->layers * p->width);
    struct mf_update look = {.apply = 0, .weight_decay = wd, .grad_u = gu, .grad_w = gw,
                             .grad_b = gb};
    loss_of(&f);
    double vv = model_backward(&f.m, f.n, f.X, f.pL, f.order, &look, f.P, f.dP);
    struct mf_update step = {.apply = 1, .lr = lr, .weight_decay = wd};
    loss_of(&f);
    double vv2 = model_backward(&f.m, f.n, f.X, f.pL, f.order, &step, f.P, f.dP);
    assert_close(vv, vv2, 1e-14, 0);
    double expect = 0;
    for (size_t i = 0; i < own * D; i++) {
        double vu = LM * gu[i] + wd * u0[i], vw = LM * gw[i] + wd * w0[i];
        assert_close(p->u[i], u0[i] - lr * vu, 1e-14, 1e-15);
        assert_close(p->w[i], w0[i] - lr * vw, 1e-14, 1e-15);
        expect += vu * vu + vw * vw;
    }
    for (size_t i = 0; i < own; i++) {
        double vb = LM * gb[i] + wd * b0[i];
        assert_close(p->b[i], b0[i] - lr * vb, 1e-14, 1e-15);
        expect += vb * vb;
    }
    comm_sum(&expect, 1, MPI_COMM_WORLD); /* vv is over all particles */
    assert_close(vv, expect, 1e-12, 0);
    arrays_free(&g);
    arrays_free(&start);
    fixture_free(&f);
}

/* Copy of all owned particle values, to restore a state. */
struct saved {
    double *u, *w, *b;
    size_t nu, nb;
};

static void save(struct saved *s, const struct mf_particles *p, int restore)
{
    if (!restore) {
        s->nb = (size_t)(p->layers * p->count);
        s->nu = s->nb * (size_t)p->dim;
        s->u = xmalloc((s->nu + 1) * sizeof(double));
        s->w = xmalloc((s->nu + 1) * sizeof(double));
        s->b = xmalloc((s->nb + 1) * sizeof(double));
    }
    double *dst[3] = {s->u, s->w, s->b}, *src[3] = {p->u, p->w, p->b};
    size_t len[3] = {s->nu, s->nu, s->nb};
    for (int i = 0; i < 3; i++)
        if (len[i])
            memcpy(restore ? src[i] : dst[i], restore ? dst[i] : src[i], len[i] * sizeof(double));
}

/* At T > 0 the update adds sqrt(2 lr T) xi with xi standard normal. */
static void test_langevin_noise(void **state)
{
    (void)state;
    struct fixture f;
    small_config(&f.cfg, MF_DATA_TEACHER, MF_LOSS_MSE, 2, 3000);
    fixture_init(&f, MPI_COMM_WORLD);
    struct mf_particles *p = &f.m.particles;
    struct saved start, cold_end;
    const double lr = 0.01, T = 0.5;
    struct mf_update cold = {.apply = 1, .lr = lr};
    struct mf_update hot = {.apply = 1, .lr = lr, .temperature = T, .seed = 4, .step = 2};
    save(&start, p, 0);
    loss_of(&f);
    model_backward(&f.m, f.n, f.X, f.pL, f.order, &cold, f.P, f.dP);
    save(&cold_end, p, 0);
    save(&start, p, 1);
    loss_of(&f);
    model_backward(&f.m, f.n, f.X, f.pL, f.order, &hot, f.P, f.dP);
    double s[3] = {0, 0, 0};
    for (size_t i = 0; i < start.nu; i++) {
        double xi[2] = {p->u[i] - cold_end.u[i], p->w[i] - cold_end.w[i]};
        for (int k = 0; k < 2; k++)
            s[0] += xi[k], s[1] += xi[k] * xi[k], s[2] += 1;
    }
    comm_sum(s, 3, MPI_COMM_WORLD);
    double var = 2 * lr * T;
    assert_close(s[0] / s[2], 0.0, 0, 5 * sqrt(var / s[2]));
    assert_close(s[1] / s[2], var, 0, 5 * var * sqrt(2 / s[2]));
    for (struct saved *x = &start; x; x = x == &start ? &cold_end : NULL)
        free(x->u), free(x->w), free(x->b);
    fixture_free(&f);
}

/* Training on all ranks of this job equals training on this rank alone,
 * particles and observables bit for bit (the sums are exact), with
 * minibatches, shuffled layer order, Langevin noise and weight decay all
 * on. With skew, the
 * particles change rank halfway (all but one chunk per other rank onto rank
 * 0), as load balancing does; with share, the ranks share their work
 * (train.share_work = node: the chunks each rank computes vary from pass to
 * pass). */
static void check_rank_invariance(int arch, int64_t M, int skew, int share, int precision)
{
    struct mf_config cfg;
    small_config(&cfg, MF_DATA_TEACHER, MF_LOSS_MSE, 3, M);
    cfg.model.architecture = arch;
    cfg.model.precision = precision;
    cfg.data.samples = 40;
    cfg.train.batch = 16;
    cfg.train.order = MF_ORDER_SHUFFLE;
    cfg.train.temperature = 1e-5;
    cfg.train.weight_decay = 1e-3;
    cfg.train.lr = 0.5;
    cfg.train.steps = 25;
    cfg.output.log_every = 25;
    cfg.train.share_work = share ? MF_SHARE_NODE : MF_SHARE_OFF;
    struct mf_dataset ds;
    data_build(&cfg, NULL, &ds);
    struct mf_model all, alone;
    struct mf_observables o_all, o_alone;
    model_create(&all, &cfg, ds.d_out, MPI_COMM_WORLD);
    model_create(&alone, &cfg, ds.d_out, MPI_COMM_SELF);
    struct mf_run run_all = {.cfg = &cfg, .ds = &ds, .model = &all};
    struct mf_run run_alone = {.cfg = &cfg, .ds = &ds, .model = &alone};
    if (skew) {
        const int64_t chunks = (M + MF_CHUNK - 1) / MF_CHUNK;
        int64_t bounds[9] = {0};
        assert_true(test_ranks < 9 && chunks > test_ranks);
        for (int r = 1; r < test_ranks; r++)
            bounds[r] = (chunks - (test_ranks - r)) * MF_CHUNK;
        bounds[test_ranks] = M;
        cfg.train.steps = 12;
        assert_int_equal(train_run(&run_all, &o_all), 0);
        particles_repartition(&all.particles, bounds, MPI_COMM_WORLD);
        assert_int_equal(all.particles.first, bounds[test_rank]);
        run_all.start = 12;
        cfg.train.steps = 25;
    }
    assert_int_equal(train_run(&run_all, &o_all), 0);
    assert_int_equal(train_run(&run_alone, &o_alone), 0);
    assert_int_equal(run_all.history.count, 2); /* rows of steps 0 and 25 */
    history_free(&run_all.history);
    history_free(&run_alone.history);

    const double *obs_all[] = {&o_all.loss, &o_all.test_loss, &o_all.grad_norm,
                               &o_all.shallow_gap};
    const double *obs_alone[] = {&o_alone.loss, &o_alone.test_loss, &o_alone.grad_norm,
                                 &o_alone.shallow_gap};
    for (int i = 0; i < 4; i++)
        assert_true(*obs_all[i] == *obs_alone[i]);

    const struct mf_particles *p = &all.particles, *q = &alone.particles;
    const size_t D = (size_t)p->dim, size = particles_value_size(p);
    for (int64_t l = 0; l < p->layers; l++)
        for (int64_t i = 0; i < p->count; i++) {
            const size_t mine = (size_t)(l * p->count + i), ref = (size_t)(l * q->count + p->first + i);
            assert_memory_equal((char *)p->u + mine * D * size, (char *)q->u + ref * D * size,
                                D * size);
            assert_memory_equal((char *)p->w + mine * D * size, (char *)q->w + ref * D * size,
                                D * size);
            assert_memory_equal((char *)p->b + mine * size, (char *)q->b + ref * size, size);
        }
    /* The run moved the particles: the comparison is not of initial values. */
    struct mf_model fresh;
    model_create(&fresh, &cfg, ds.d_out, MPI_COMM_SELF);
    if (precision == MF_PRECISION_MIXED)
        assert_true(fabsf(fresh.particles.uf[0] - q->uf[0]) > 1e-6f);
    else
        assert_true(fabs(fresh.particles.u[0] - q->u[0]) > 1e-6);
    model_destroy(&fresh);
    model_destroy(&all);
    model_destroy(&alone);
    data_free(&ds);
}

static void test_rank_invariance(void **state)
{
    (void)state;
    const int d = MF_PRECISION_DOUBLE;
    check_rank_invariance(MF_ARCH_RESNET, 3 * MF_CHUNK + 17, 0, 0, d);
    check_rank_invariance(MF_ARCH_RESNET, MF_CHUNK + 1, 0, 0, d); /* 2 chunks: ranks with none */
    check_rank_invariance(MF_ARCH_SHALLOW, 2 * MF_CHUNK + 5, 0, 0, d);
    check_rank_invariance(MF_ARCH_RESNET, 8 * MF_CHUNK + 17, 1, 0, d);
    check_rank_invariance(MF_ARCH_RESNET, 8 * MF_CHUNK + 17, 0, 1, d);
    check_rank_invariance(MF_ARCH_SHALLOW, 3 * MF_CHUNK + 5, 0, 1, d);
    check_rank_invariance(MF_ARCH_RESNET, MF_CHUNK + 1, 0, 1, d);
}

/* The same in mixed precision: float particles and kernels, exact sums. */
static void test_rank_invariance_mixed(void **state)
{
    (void)state;
    const int mixed = MF_PRECISION_MIXED;
    check_rank_invariance(MF_ARCH_RESNET, 3 * MF_CHUNK + 17, 0, 0, mixed);
    check_rank_invariance(MF_ARCH_SHALLOW, 2 * MF_CHUNK + 5, 0, 0, mixed);
    check_rank_invariance(MF_ARCH_RESNET, 8 * MF_CHUNK + 17, 1, 0, mixed);
    check_rank_invariance(MF_ARCH_RESNET, 8 * MF_CHUNK + 17, 0, 1, mixed);
    check_rank_invariance(MF_ARCH_SHALLOW, 3 * MF_CHUNK + 5, 0, 1, mixed);
}

/* Mixed precision's gradients against the double path's, from the same
 * particles (the mixed model's floats, widened): within 1e-5 relative in
 * norm, and each component within 1e-5 of the largest. */
static void check_mixed_gradient(int kind, int loss, int act, int arch, int64_t M)
{
    struct fixture f[2];
    struct arrays g[2];
    for (int i = 0; i < 2; i++) {
        small_config(&f[i].cfg, kind, loss, 3, M);
        f[i].cfg.model.activation = act;
        f[i].cfg.model.architecture = arch;
        f[i].cfg.model.precision = i ? MF_PRECISION_MIXED : MF_PRECISION_DOUBLE;
        fixture_init(&f[i], MPI_COMM_WORLD);
        g[i] = arrays_alloc(&f[i].m.particles);
    }
    const struct mf_particles *p = &f[0].m.particles, *q = &f[1].m.particles;
    const int64_t n = p->layers * p->count, D = p->dim;
    for (int64_t i = 0; i < n * D; i++)
        p->u[i] = q->uf[i], p->w[i] = q->wf[i];
    for (int64_t i = 0; i < n; i++)
        p->b[i] = q->bf[i];
    for (int i = 0; i < 2; i++) {
        struct mf_update upd = {.grad_u = g[i].u, .grad_w = g[i].w, .grad_b = g[i].b};
        loss_of(&f[i]);
        model_backward(&f[i].m, f[i].n, f[i].X, f[i].pL, f[i].order, &upd, f[i].P, f[i].dP);
    }
    double sums[3] = {0, 0, 0}; /* error^2, norm^2, largest */
    for (int part = 0; part < 3; part++) {
        const double *a = part == 0 ? g[1].u : part == 1 ? g[1].w : g[1].b;
        const double *b = part == 0 ? g[0].u : part == 1 ? g[0].w : g[0].b;
        for (int64_t i = 0; i < (part < 2 ? n * D : n); i++) {
            sums[0] += (a[i] - b[i]) * (a[i] - b[i]);
            sums[1] += b[i] * b[i];
            sums[2] = fmax(sums[2], fabs(b[i]));
        }
    }
    comm_sum(sums, 2, MPI_COMM_WORLD);
    sums[2] = comm_max(sums[2], MPI_COMM_WORLD);
    if (!(sqrt(sums[0]) <= 1e-5 * sqrt(sums[1])) || !(sums[1] > 0))
        fail_msg("mixed gradient relative error %.3g (act %d loss %d arch %d)",
                 sqrt(sums[0] / sums[1]), act, loss, arch);
    for (int part = 0; part < 3; part++) {
        const double *a = part == 0 ? g[1].u : part == 1 ? g[1].w : g[1].b;
        const double *b = part == 0 ? g[0].u : part == 1 ? g[0].w : g[0].b;
        for (int64_t i = 0; i < (part < 2 ? n * D : n); i++)
            assert_close(a[i], b[i], 0, 1e-5 * sums[2]);
    }
    for (int i = 0; i < 2; i++) {
        arrays_free(&g[i]);
        fixture_free(&f[i]);
    }
}

static void test_gradient_mixed_precision(void **state)
{
    (void)state;
    for (int act = MF_ACT_TANH; act <= MF_ACT_SOFTPLUS; act++)
        check_mixed_gradient(MF_DATA_TEACHER, MF_LOSS_MSE, act, MF_ARCH_RESNET,
                             2 * MF_CHUNK + 3);
    check_mixed_gradient(MF_DATA_SPIRALS, MF_LOSS_CROSS_ENTROPY, MF_ACT_TANH, MF_ARCH_RESNET, 7);
    check_mixed_gradient(MF_DATA_TEACHER, MF_LOSS_MSE, MF_ACT_TANH, MF_ARCH_SHALLOW,
                         2 * MF_CHUNK + 3);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_gradient_every_activation_and_loss),
    cmocka_unit_test(test_gradient_variants),
    cmocka_unit_test(test_update_rule),
    cmocka_unit_test(test_langevin_noise),
    cmocka_unit_test(test_rank_invariance),
    cmocka_unit_test(test_rank_invariance_mixed),
    cmocka_unit_test(test_gradient_mixed_precision),
};
MPI_CMOCKA_MAIN(tests)
