/*
 * dump_step CONFIG.ini [section.key=value]...
 *
 * Runs one full-batch training step of the configured model on one rank and
 * prints everything an independent implementation needs to redo it: the
 * padded inputs, targets, layer order, initial particles, the loss, dE/dtheta
 * and the particles after the update. One array per line:
 *     name ndim d1 .. dn v1 v2 ...
 * Used by tests/integration/test_reference.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "config.h"
#include "data.h"
#include "log.h"
#include "model.h"
#include "train.h"

static void put(const char *name, int ndim, const int64_t *dims, const double *v)
{
    int64_t n = 1;
    printf("%s %d", name, ndim);
    for (int i = 0; i < ndim; i++) {
        printf(" %lld", (long long)dims[i]);
        n *= dims[i];
    }
    for (int64_t i = 0; i < n; i++)
        printf(" %.17g", v[i]);
    putchar('\n');
}

int main(int argc, char **argv)
{
    MPI_Comm comm = comm_init(&argc, &argv);
    char err[MF_ERR_MAX];
    struct mf_config cfg;
    config_defaults(&cfg);
    if (argc < 2 || comm_size(comm) != 1 || config_read_file(&cfg, argv[1], err, sizeof err))
        log_fatal("usage: dump_step CONFIG.ini [section.key=value]... on one rank (%s)",
                  argc < 2 ? "no config" : err);
    for (int i = 2; i < argc; i++)
        if (config_set(&cfg, argv[i], err, sizeof err))
            log_fatal("%s", err);
    if (config_resolve(&cfg, NULL, err, sizeof err))
        log_fatal("%s", err);
    cfg.train.batch = 0;

    struct mf_dataset ds;
    data_build(&cfg, NULL, &ds);
    struct mf_model m;
    model_create(&m, &cfg, ds.d_out, comm);
    const int64_t L = cfg.model.layers, M = cfg.model.width, D = cfg.model.dim, n = ds.train.n;
    const int64_t nd = n * D;
    double *X = xmalloc((size_t)((L + 1) * nd) * sizeof(double));
    double *drift = xmalloc((size_t)nd * sizeof(double)), *pL = xmalloc((size_t)nd * 8);
    double *P = xmalloc((size_t)nd * 8), *dP = xmalloc((size_t)nd * 8);
    double *gu = xmalloc((size_t)(L * M * D) * 8), *gw = xmalloc((size_t)(L * M * D) * 8);
    double *gb = xmalloc((size_t)(L * M) * 8);
    int64_t *order = xmalloc((size_t)L * sizeof(int64_t));
    train_layer_order(&cfg, 0, order);

    double scalars[] = {(double)cfg.model.alpha, (double)cfg.model.activation,
                        (double)cfg.train.loss, (double)cfg.model.architecture,
                        cfg.train.lr, cfg.train.weight_decay, (double)ds.d_out};
    int64_t ns = sizeof scalars / sizeof scalars[0];
    put("scalars", 1, &ns, scalars);
    double order_d[64];
    for (int64_t k = 0; k < L && k < 64; k++)
        order_d[k] = (double)order[k];
    put("order", 1, &L, order_d);
    model_pad_input(&m, n, ds.train.d_in, ds.train.x, X);
    put("x", 2, (int64_t[]){n, D}, X);
    put("y", 2, (int64_t[]){n, ds.train.y_dim}, ds.train.y);
    put("u", 3, (int64_t[]){L, M, D}, m.particles.u);
    put("w", 3, (int64_t[]){L, M, D}, m.particles.w);
    put("b", 2, (int64_t[]){L, M}, m.particles.b);

    double *out = X + L * nd;
    if (cfg.model.architecture == MF_ARCH_SHALLOW)
        model_forward_shallow(&m, n, X, out);
    else
        model_forward(&m, n, X, nd, order, drift);
    double loss = model_loss(&m, n, out, ds.train.y, pL, NULL);
    struct mf_update upd = {.apply = 1, .lr = cfg.train.lr,
                            .weight_decay = cfg.train.weight_decay, .grad_u = gu, .grad_w = gw,
                            .grad_b = gb};
    model_backward(&m, n, X, pL, order, &upd, P, dP);
    put("loss", 1, (int64_t[]){1}, &loss);
    put("grad_u", 3, (int64_t[]){L, M, D}, gu);
    put("grad_w", 3, (int64_t[]){L, M, D}, gw);
    put("grad_b", 2, (int64_t[]){L, M}, gb);
    put("u1", 3, (int64_t[]){L, M, D}, m.particles.u);
    put("w1", 3, (int64_t[]){L, M, D}, m.particles.w);
    put("b1", 2, (int64_t[]){L, M}, m.particles.b);

    free(X), free(drift), free(pL), free(P), free(dP), free(gu), free(gw), free(gb), free(order);
    model_destroy(&m);
    data_free(&ds);
    comm_finalize();
    return 0;
}
