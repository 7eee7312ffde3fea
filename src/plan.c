/*
 * plan: what a run will need, before it runs (see plan.h).
 */
#include "plan.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "config.h"
#include "data.h"
#include "log.h"
#include "model.h"
#include "train.h"

void plan_estimate(const struct mf_config *cfg, int ranks, int nodes, struct plan *p)
{
    const double L = (double)cfg->model.layers, M = (double)cfg->model.width;
    const double D = (double)cfg->model.dim;
    const double n_train = (double)cfg->data.samples, n_test = (double)cfg->data.test_samples;
    const double B = cfg->train.batch ? (double)cfg->train.batch : n_train;
    const double n = n_train > n_test ? n_train : n_test;
    const double y = cfg->train.loss == MF_LOSS_CROSS_ENTROPY ? 1 : (double)cfg->data.output_dim;
    memset(p, 0, sizeof *p);
    p->ranks = ranks;
    p->nodes = nodes < 1 ? 1 : nodes > ranks ? ranks : nodes;
    p->ranks_per_node = (ranks + p->nodes - 1) / p->nodes;
    const int mixed = cfg->model.precision == MF_PRECISION_MIXED;
    const double value = mixed ? 4 : 8; /* bytes per particle value */
    p->state = value * (2 * D + 1) * L * M / ranks;
    p->buffers = 8 * ((L + 5) * B * D           /* the batch pass */
                      + 4 * n * D              /* the evaluation's states */
                      /* exact sums: a double and 4 limbs; 3 floats more in mixed */
                      + (mixed ? 6.5 : 5) * (n > B ? n : B) * D
                      + (n_train + n_test) * ((double)cfg->data.input_dim + y));
    p->rank = p->state + p->buffers + PLAN_RANK_BASE;
    p->checkpoint = L * M * (value * (2 * D + 1) + 12) +
                    8 * (n_train + n_test) * ((double)cfg->data.input_dim + y) + 65536;
}

static double gib(double bytes) { return bytes / 1073741824.0; }

int plan_check_memory(const struct plan *p, int ranks_here, double node_memory,
                      const char *host, const char *source, char *err, size_t errlen)
{
    const double node = ranks_here * p->rank;
    if (node_memory <= 0 || node <= node_memory)
        return 0;
    snprintf(err, errlen,
             "the run does not fit: about %.3g GiB per node (%d ranks x %.3g GiB: %.3g GiB of "
             "particle state, 8 (4 in mixed precision) (2 model.dim + 1) model.layers model.width "
             "bytes over %d ranks, "
             "and %.3g GiB of buffers and runtime), and %s has %.3g GiB (%s); spread it over "
             "more nodes, or lower model.width",
             gib(node), ranks_here, gib(p->rank), gib(p->state), p->ranks,
             gib(p->buffers + PLAN_RANK_BASE), host, gib(node_memory), source);
    return -1;
}

double plan_node_memory(void)
{
    const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : 0;
}

/* A positive integer from the environment, else 0. */
static double env_number(const char *name)
{
    const char *text = getenv(name);
    char *end = NULL;
    const double v = text ? strtod(text, &end) : 0;
    return end && end != text && !*end && v > 0 ? v : 0;
}

double plan_job_memory(char *source, size_t len)
{
    double memory = plan_node_memory();
    snprintf(source, len, "its memory");
    const double per_node = env_number("SLURM_MEM_PER_NODE"), per_cpu =
        env_number("SLURM_MEM_PER_CPU"), cpus = env_number("SLURM_CPUS_ON_NODE");
    if (per_node > 0 && per_node * 1048576 < memory) {
        memory = per_node * 1048576;
        snprintf(source, len, "the job's share, SLURM_MEM_PER_NODE = %.0f MiB", per_node);
    }
    if (per_cpu > 0 && cpus > 0 && per_cpu * cpus * 1048576 < memory) {
        memory = per_cpu * cpus * 1048576;
        snprintf(source, len, "the job's share, SLURM_MEM_PER_CPU = %.0f MiB x %.0f CPUs",
                 per_cpu, cpus);
    }
    return memory;
}

double plan_probe_step(const struct mf_config *cfg, int ranks)
{
    struct mf_config c = *cfg;
    const int64_t per_rank = (cfg->model.width + ranks - 1) / ranks;
    c.model.width = per_rank < 4096 ? per_rank : 4096;
    c.train.share_work = MF_SHARE_OFF;
    c.train.balance_every = 0;
    c.train.lr = 1e-3; /* keeps the state sane for any number of steps */
    struct mf_dataset ds;
    data_build(&c, NULL, &ds);
    struct mf_model m;
    model_create(&m, &c, ds.d_out, MPI_COMM_SELF);
    struct train_workspace *w = train_workspace_create(&c, &ds);
    train_step(&c, &ds, &m, w, 0); /* warm-up */
    double best = 1e300;
    for (int k = 1; k <= 3; k++) {
        const double t0 = comm_wtime();
        train_step(&c, &ds, &m, w, k);
        const double t = comm_wtime() - t0;
        best = t < best ? t : best;
    }
    train_workspace_destroy(w);
    model_destroy(&m);
    data_free(&ds);
    return best * (double)per_rank / (double)c.model.width;
}

void plan_print(const struct mf_config *cfg, const struct plan *p, double step_seconds,
                FILE *out)
{
    fprintf(out, "\n; plan for %d ranks on %d node(s), %d per node\n", p->ranks, p->nodes,
            p->ranks_per_node);
    fprintf(out, "; particles         %.6g (L = %lld, M = %lld)\n",
            (double)cfg->model.layers * (double)cfg->model.width, (long long)cfg->model.layers,
            (long long)cfg->model.width);
    fprintf(out, "; memory per rank   %.3g GiB (particle state %.3g, buffers %.3g, runtime "
            "%.3g)\n", gib(p->rank), gib(p->state), gib(p->buffers), gib(PLAN_RANK_BASE));
    fprintf(out, "; memory per node   %.3g GiB (this machine has %.3g GiB)\n",
            gib(p->ranks_per_node * p->rank), gib(plan_node_memory()));
    fprintf(out, "; checkpoint        %.3g GiB per file\n", gib(p->checkpoint));
    if (step_seconds > 0) {
        const double hours = step_seconds * (double)cfg->train.steps / 3600;
        fprintf(out, "; step              %.4g s (probed on this CPU, one rank per core; "
                "evaluations every output.log_every steps come on top)\n", step_seconds);
        fprintf(out, "; run               %.3g h of wall time, %.4g core-hours for %lld steps\n",
                hours, hours * p->ranks, (long long)cfg->train.steps);
    }
}
