/*
 * train: the step loop (see train.h).
 *
 * Step k draws its batch and layer order from (train seed, k), runs the
 * forward pass keeping the L+1 states of the batch, and the backward pass,
 * which updates the particles as it goes. On log steps the observables are
 * evaluated first, at the state after k updates; the final row k = steps
 * runs one more backward pass without update for its velocity.
 *
 * State k is saved (snapshot, checkpoint, or on a stop request) between the
 * forward and the backward pass of step k: only then is its loss known to be
 * finite while the particles are still those after k updates. A checkpoint
 * of step k holds the rows of steps before k; a restart recomputes the rest.
 *
 * Memory beyond the particles: (L+5) B x D for the batch pass and a few
 * n x D arrays for the observables; never anything of size B x M.
 */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "checkpoint.h"
#include "comm.h"
#include "config.h"
#include "data.h"
#include "log.h"
#include "model.h"
#include "outputs.h"
#include "rng.h"
#include "rundir.h"
#include "share.h"
#include "stop.h"
#include "timer.h"

void train_batch_indices(const struct mf_config *cfg, int64_t n_train, int64_t step,
                         int64_t *idx, int64_t *scratch)
{
    int64_t batch = cfg->train.batch;
    if (batch == 0) {
        for (int64_t i = 0; i < n_train; i++)
            idx[i] = i;
        return;
    }
    /* The first `batch` draws of a Fisher-Yates shuffle of scratch (the
     * identity): without replacement. idx keeps the swap partners, then the
     * swaps are undone in reverse, which leaves scratch the identity again:
     * O(batch) work per step, not O(n_train). */
    uint64_t bits[4];
    for (int64_t i = 0; i < batch; i++) {
        if (i % 4 == 0)
            rng_bits4((uint64_t)cfg->train.seed, RNG_BATCH, (uint64_t)step, (uint64_t)i / 4, 0, 0,
                      bits);
        int64_t j = i + (int64_t)rng_below(bits[i % 4], (uint64_t)(n_train - i));
        int64_t t = scratch[i];
        scratch[i] = scratch[j];
        scratch[j] = t;
        idx[i] = j;
    }
    for (int64_t i = batch - 1; i >= 0; i--) {
        int64_t j = idx[i], drawn = scratch[i]; /* later swaps never touched slot i */
        scratch[i] = scratch[j];
        scratch[j] = drawn;
        idx[i] = drawn;
    }
}

void train_layer_order(const struct mf_config *cfg, int64_t step, int64_t *order)
{
    if (cfg->train.order == MF_ORDER_SHUFFLE) {
        rng_permutation((uint64_t)cfg->train.seed, RNG_ORDER, (uint64_t)step, cfg->model.layers,
                        order);
    } else {
        for (int64_t k = 0; k < cfg->model.layers; k++)
            order[k] = k;
    }
}

/* Buffers of one run, allocated once. */
struct train_workspace {
    int64_t B;      /* rows of the batch pass */
    double *X;      /* [L+1][B][D] states of the batch */
    double *drift;  /* [B][D] */
    double *pL;     /* [B][D] */
    double *P, *dP; /* [B][D] adjoint and its increment */
    double *y;      /* [B][y_dim] targets of the batch */
    int64_t *idx;   /* [B] batch indices */
    int64_t *perm;  /* [n_train] the identity, scratch for sampling */
    int64_t *order; /* [L] layer order */
    int64_t ne;     /* rows of the evaluation buffers: max(n_train, n_test) */
    double *E0, *E, *Es, *Edrift; /* [ne][D] input, ResNet state, shallow output, scratch */
    int64_t probes;               /* the first test samples, whose outputs are kept */
    double *probe_out;            /* [probes][d_out] outputs at the last observation */
};

static void workspace_alloc(struct train_workspace *w, const struct mf_config *cfg,
                            const struct mf_dataset *ds)
{
    const int64_t D = cfg->model.dim, L = cfg->model.layers;
    const int64_t n = ds->train.n;
    w->B = cfg->train.batch ? cfg->train.batch : n;
    w->X = xmalloc_for("the batch's states ((model.layers + 1) x train.batch x model.dim "
                       "doubles)", (size_t)((L + 1) * w->B * D), sizeof(double));
    w->drift = xmalloc((size_t)(w->B * D) * sizeof(double));
    w->pL = xmalloc((size_t)(w->B * D) * sizeof(double));
    w->P = xmalloc((size_t)(w->B * D) * sizeof(double));
    w->dP = xmalloc((size_t)(w->B * D) * sizeof(double));
    w->y = xmalloc((size_t)(w->B * ds->train.y_dim) * sizeof(double));
    w->idx = xmalloc((size_t)w->B * sizeof(int64_t));
    w->perm = xmalloc((size_t)n * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++)
        w->perm[i] = i; /* the identity train_batch_indices expects */
    w->order = xmalloc((size_t)L * sizeof(int64_t));
    w->ne = n > ds->test.n ? n : ds->test.n;
    const char *what = "the evaluation's states (4 x the larger of data.samples and "
                       "data.test_samples x model.dim doubles)";
    w->E0 = xmalloc_for(what, (size_t)(w->ne * D), sizeof(double));
    w->E = xmalloc_for(what, (size_t)(w->ne * D), sizeof(double));
    w->Es = xmalloc_for(what, (size_t)(w->ne * D), sizeof(double));
    w->Edrift = xmalloc_for(what, (size_t)(w->ne * D), sizeof(double));
    w->probes = cfg->data.probes < ds->test.n ? cfg->data.probes : ds->test.n;
    w->probe_out = xcalloc((size_t)(w->probes * ds->d_out) + 1, sizeof(double));
}

static void workspace_free(struct train_workspace *w)
{
    void *all[] = {w->X, w->drift, w->pL, w->P, w->dP, w->y, w->idx,
                   w->perm, w->order, w->E0, w->E, w->Es, w->Edrift, w->probe_out};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        free(all[i]);
}

/* Forward pass of step k on its batch; returns the batch loss. */
static double batch_forward(const struct mf_config *cfg, const struct mf_dataset *ds,
                            struct mf_model *m, struct train_workspace *w, int64_t k)
{
    const struct mf_samples *tr = &ds->train;
    const int64_t D = cfg->model.dim, B = w->B, nd = B * D;

    timer_start(TIMER_FORWARD);
    train_batch_indices(cfg, tr->n, k, w->idx, w->perm);
    train_layer_order(cfg, k, w->order);
    for (int64_t j = 0; j < B; j++) {
        int64_t s = w->idx[j];
        model_pad_input(m, 1, tr->d_in, tr->x + s * tr->d_in, w->X + j * D);
        memcpy(w->y + j * tr->y_dim, tr->y + s * tr->y_dim, (size_t)tr->y_dim * sizeof(double));
    }
    double *out;
    if (cfg->model.architecture == MF_ARCH_SHALLOW) {
        out = w->X + nd;
        model_forward_shallow(m, B, w->X, out);
    } else {
        model_forward(m, B, w->X, nd, w->order, w->drift);
        out = w->X + cfg->model.layers * nd;
    }
    double loss = model_loss(m, B, out, w->y, w->pL, NULL);
    timer_stop(TIMER_FORWARD);
    return loss;
}

/* Backward pass of step k after batch_forward, updating the particles when
 * apply is set; returns the squared velocity summed over all particles. */
static double batch_backward(const struct mf_config *cfg, struct mf_model *m,
                             struct train_workspace *w, int64_t k, int apply)
{
    timer_start(TIMER_BACKWARD);
    struct mf_update upd = {
        .apply = apply,
        .lr = cfg->train.lr,
        .weight_decay = cfg->train.weight_decay,
        .temperature = cfg->train.temperature,
        .seed = (uint64_t)cfg->train.seed,
        .step = k,
    };
    double vv = model_backward(m, w->B, w->X, w->pL, w->order, &upd, w->P, w->dP);
    timer_stop(TIMER_BACKWARD);
    return vv;
}

/* Loss (and correct predictions) of the architecture's output on a set;
 * with gap non-NULL also the shallow gap. Leaves X_0 in E0. */
static double evaluate(struct mf_model *m, const struct mf_samples *s, struct train_workspace *w,
                       double *gap, int64_t *correct)
{
    const int64_t D = m->particles.dim, nd = s->n * D;
    const int shallow = m->architecture == MF_ARCH_SHALLOW;
    model_pad_input(m, s->n, s->d_in, s->x, w->E0);
    if (!shallow || gap) {
        memcpy(w->E, w->E0, (size_t)nd * sizeof(double));
        model_forward(m, s->n, w->E, 0, NULL, w->Edrift);
    }
    if (shallow || gap)
        model_forward_shallow(m, s->n, w->E0, w->Es);
    if (gap) {
        double num = 0, den = 0;
        for (int64_t j = 0; j < s->n; j++) {
            double a = 0, c = 0;
            for (int64_t i = 0; i < D; i++) {
                double xl = w->E[j * D + i];
                a += (xl - w->Es[j * D + i]) * (xl - w->Es[j * D + i]);
                c += (xl - w->E0[j * D + i]) * (xl - w->E0[j * D + i]);
            }
            num += sqrt(a);
            den += sqrt(c);
        }
        *gap = den > 0 ? num / den : 0.0;
    }
    return model_loss(m, s->n, shallow ? w->Es : w->E, s->y, NULL, correct);
}

static void observe(const struct mf_config *cfg, const struct mf_dataset *ds, struct mf_model *m,
                    struct train_workspace *w, struct mf_observables *o)
{
    timer_start(TIMER_EVAL);
    o->loss = evaluate(m, &ds->train, w, &o->shallow_gap, NULL);
    o->test_loss = NAN;
    o->test_accuracy = NAN;
    if (ds->test.n > 0) {
        int64_t correct;
        o->test_loss = evaluate(m, &ds->test, w, NULL, &correct);
        if (cfg->train.loss == MF_LOSS_CROSS_ENTROPY)
            o->test_accuracy = (double)correct / (double)ds->test.n;
        /* The probes are the first test samples: their outputs are the first
         * rows of the pass just made. */
        const double *XL = m->architecture == MF_ARCH_SHALLOW ? w->Es : w->E;
        const int64_t D = cfg->model.dim;
        for (int64_t j = 0; j < w->probes; j++)
            memcpy(w->probe_out + j * m->d_out, XL + j * D, (size_t)m->d_out * sizeof(double));
    }
    timer_stop(TIMER_EVAL);
}

struct train_workspace *train_workspace_create(const struct mf_config *cfg,
                                               const struct mf_dataset *ds)
{
    struct train_workspace *w = xmalloc(sizeof *w);
    workspace_alloc(w, cfg, ds);
    return w;
}

void train_workspace_destroy(struct train_workspace *w)
{
    workspace_free(w);
    free(w);
}

double train_step(const struct mf_config *cfg, const struct mf_dataset *ds, struct mf_model *m,
                  struct train_workspace *w, int64_t k)
{
    double loss = batch_forward(cfg, ds, m, w, k);
    batch_backward(cfg, m, w, k, 1);
    return loss;
}

void train_evaluate(const struct mf_config *cfg, const struct mf_dataset *ds, struct mf_model *m,
                    struct mf_observables *o)
{
    struct train_workspace w;
    workspace_alloc(&w, cfg, ds);
    model_reserve(m, w.ne);
    observe(cfg, ds, m, &w, o);
    workspace_free(&w);
}

/* A metrics.tsv row: step, time and the history's columns. A failed write
 * (a full disk) is reported once; the rows are kept in the checkpoints,
 * from which a restart rewrites metrics.tsv. */
static void write_row(FILE *f, const struct mf_observables *o)
{
    const int failed_before = ferror(f);
    fprintf(f, "%lld\t%.17g", (long long)o->step, o->time);
    for (int i = 0; i < HISTORY_COLUMNS; i++)
        fprintf(f, "\t%.17g", history_column(o, i));
    fputc('\n', f);
    if (fflush(f) != 0 && !failed_before)
        log_warn("cannot write metrics.tsv: %s (its rows are kept in the checkpoints, and a "
                 "restart rewrites it)", strerror(errno));
}

/* seconds as h:mm:ss into buf[32]. */
static const char *hms(double seconds, char buf[32])
{
    const long long s = seconds > 0 && seconds < 1e12 ? (long long)(seconds + 0.5) : 0;
    snprintf(buf, 32, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    return buf;
}

static void progress(const struct mf_observables *o, int64_t steps, double elapsed)
{
    char eta[32];
    log_info("[%8.1f s] step %lld/%lld  loss %.3e  test %.3e  |v| %.2e  %.3g s/step  ETA %s",
             elapsed, (long long)o->step, (long long)steps, o->loss, o->test_loss, o->grad_norm,
             o->seconds_per_step, hms(o->seconds_per_step * (double)(steps - o->step), eta));
}

/* The heartbeat between evaluated rows: k steps done, at `rate` steps per
 * second over the last stretch. */
static void heartbeat(int64_t k, int64_t steps, double rate, double elapsed)
{
    char eta[32];
    log_info("[%8.1f s] step %lld/%lld  %.3g steps/s  ETA %s", elapsed, (long long)k,
             (long long)steps, rate, hms(rate > 0 ? (double)(steps - k) / rate : 0, eta));
}

/* Write a checkpoint or snapshot of the state after `step` updates.
 * Returns the seconds the write took. */
static double save_state(struct mf_run *run, enum checkpoint_kind kind, int64_t step)
{
    const struct mf_config *cfg = run->cfg;
    char path[MF_PATH_MAX + 64];
    timer_start(TIMER_OUTPUT);
    rundir_path(run->dir, kind, step, path, sizeof path);
    double seconds = checkpoint_write(path, kind, cfg, run->ds, run->model, &run->history, step);
    if (kind == CHECKPOINT_FULL && comm_rank(run->model->comm) == 0) {
        int64_t bytes = cfg->model.layers * cfg->model.width * (2 * cfg->model.dim + 1) * 8;
        log_info("checkpoint %s: %.3g GB in %.2f s (%.3g GB/s)", path, bytes / 1e9, seconds,
                 bytes / 1e9 / seconds);
    }
    timer_stop(TIMER_OUTPUT);
    return seconds;
}

/* Write a checkpoint of the state after `step` updates, then remove the
 * oldest beyond checkpoint_keep (never the one the run started from).
 * Returns the seconds the write took. */
static double save_checkpoint(struct mf_run *run, int64_t step)
{
    const double seconds = save_state(run, CHECKPOINT_FULL, step);
    if (comm_rank(run->model->comm) == 0)
        rundir_prune(run->dir, run->cfg->output.checkpoint_keep, run->kept_step);
    return seconds;
}

/* Open metrics.tsv and write its header and the rows before start. */
static FILE *open_metrics(const struct mf_run *run)
{
    char path[MF_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.tsv", run->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        log_fatal("cannot write %s", path);
    fputs("step\ttime", f);
    for (int i = 0; i < HISTORY_COLUMNS; i++)
        fprintf(f, "\t%s", history_column_names[i]);
    fputc('\n', f);
    for (int64_t i = 0; i < run->history.count; i++)
        write_row(f, &run->history.rows[i]);
    return f;
}

/* Report divergence at a step; returns exit status 4. */
static int diverged(int root, int64_t step)
{
    if (root)
        fprintf(stderr, "mfres: diverged at step %lld: the loss or the gradient is NaN or Inf "
                        "(try a smaller train.lr); the last checkpoint is kept\n",
                (long long)step);
    return MF_EXIT_DIVERGED;
}

static void balance_summary(const struct mf_model *m, const struct balance *b)
{
    double lo, mean, hi;
    int largest;
    comm_stats((double)m->particles.count, m->comm, &lo, &mean, &hi, &largest);
    log_info("load balance: %lld moves, %lld particles per layer moved in all; shares now "
             "%.0f to %.0f particles per layer (rank %d)",
             (long long)b->moves, (long long)b->moved, lo, hi, largest);
}

static void share_summary(const struct mf_model *m)
{
    double computed, foreign;
    share_totals(m->share, m->comm, &computed, &foreign);
    log_info("work sharing: %.0f of %.0f chunk evaluations (%.1f%%) by another rank of the "
             "chunk's node",
             foreign, computed, computed > 0 ? 100 * foreign / computed : 0.0);
}

int train_run(struct mf_run *run, struct mf_observables *final)
{
    const struct mf_config *cfg = run->cfg;
    const struct mf_dataset *ds = run->ds;
    struct mf_model *m = run->model;
    const int64_t steps = cfg->train.steps;
    const int64_t ckpt_every = cfg->output.checkpoint_every;
    const int64_t snap_every = cfg->output.snapshot_every;
    const double n_particles = (double)cfg->model.layers * (double)cfg->model.width;
    const int root = comm_rank(m->comm) == 0;
    struct train_workspace w;
    FILE *metrics = NULL;
    struct mf_outputs *outputs = NULL;
    int status = 0;

    /* Rows at or after the restart step are recomputed below. */
    while (run->history.count > 0 && run->history.rows[run->history.count - 1].step >= run->start)
        run->history.count--;
    timer_start(TIMER_TOTAL);
    workspace_alloc(&w, cfg, ds);
    model_reserve(m, w.B > w.ne ? w.B : w.ne);
    if (run->history.count == 0)
        run->history.out_size = w.probes * m->d_out;
    if (run->history.out_size != w.probes * m->d_out)
        log_fatal("the history holds %lld outputs per row, not %lld probes x %lld",
                  (long long)run->history.out_size, (long long)w.probes, (long long)m->d_out);
    if (root && run->dir) {
        metrics = open_metrics(run);
        outputs = outputs_open(run->dir, cfg, ds, &run->history);
    }
    if (run->dir && snap_every && run->start == 0)
        save_state(run, CHECKPOINT_SNAPSHOT, 0);

    double t_start = comm_wtime(), step_seconds = 0, slowest_step = 0, save_seconds = 0;
    double last_checkpoint = t_start, last_line = t_start;
    int64_t steps_since_row = 0, last_line_step = run->start;
    struct mf_observables o = {0};
    struct balance balance = {0};
    const int64_t balance_every = comm_size(m->comm) > 1 ? cfg->train.balance_every : 0;
    for (int64_t k = run->start; k <= steps; k++) {
        const int last = k == steps;
        const int log_now = last || k % cfg->output.log_every == 0;
        if (log_now) {
            o.step = k;
            o.time = (double)k * cfg->train.lr;
            observe(cfg, ds, m, &w, &o);
        }
        double t0 = comm_wtime(), busy0 = balance_clock();
        double batch_loss = batch_forward(cfg, ds, m, &w, k);
        balance.busy += balance_clock() - busy0;
        /* One agreement per step: whether the loss is finite (the state is
         * the same on every rank, the check costs nothing more), and
         * whether to stop. */
        enum { NOT_FINITE = 1, SIGNALLED = 2, OUT_OF_TIME = 4, CHECKPOINT_DUE = 8 };
        const int may_save = run->dir && k > run->start && !last;
        int flags = isfinite(batch_loss) && (!log_now || isfinite(o.loss)) ? 0 : NOT_FINITE;
        if (may_save) {
            double elapsed = comm_wtime() - run->started;
            if (cfg->output.max_time > 0 &&
                elapsed + 2 * slowest_step + save_seconds >= cfg->output.max_time)
                flags |= OUT_OF_TIME;
            if (stop_requested())
                flags |= SIGNALLED;
            if (root && cfg->output.checkpoint_minutes > 0 && /* rank 0's clock decides */
                comm_wtime() - last_checkpoint >= 60 * cfg->output.checkpoint_minutes)
                flags |= CHECKPOINT_DUE;
        }
        flags = comm_or(flags, m->comm);
        if (flags & NOT_FINITE) {
            status = diverged(root, k);
            break;
        }

        /* State k has a finite loss: the one place where it may be saved,
         * before the backward pass updates it. */
        if (may_save) {
            const int stop = flags & (SIGNALLED | OUT_OF_TIME);
            if (snap_every && k % snap_every == 0)
                save_state(run, CHECKPOINT_SNAPSHOT, k);
            if (stop || (flags & CHECKPOINT_DUE) || (ckpt_every && k % ckpt_every == 0)) {
                save_seconds = save_checkpoint(run, k);
                last_checkpoint = comm_wtime();
            }
            if (stop) {
                if (root)
                    fprintf(stderr, "mfres: stopped at step %lld (%s); checkpoint written, "
                                    "continue with --restart auto\n",
                            (long long)k, flags & SIGNALLED ? "signal" : "max_time reached");
                status = MF_EXIT_STOPPED;
                break;
            }
        }

        busy0 = balance_clock();
        double vv = batch_backward(cfg, m, &w, k, !last);
        balance.busy += balance_clock() - busy0;
        if (!last) {
            double dt = comm_wtime() - t0;
            step_seconds += dt;
            slowest_step = dt > slowest_step ? dt : slowest_step;
            steps_since_row++;
        }
        if (log_now) {
            timer_start(TIMER_OUTPUT);
            o.grad_norm = sqrt(vv / n_particles);
            o.seconds_per_step = steps_since_row ? step_seconds / (double)steps_since_row : 0.0;
            history_append(&run->history, &o, w.probe_out);
            if (metrics)
                write_row(metrics, &o);
            if (outputs)
                outputs_append(outputs, &o, w.probe_out);
            if (root)
                progress(&o, steps, comm_wtime() - t_start);
            last_line = comm_wtime(), last_line_step = k;
            step_seconds = 0;
            steps_since_row = 0;
            timer_stop(TIMER_OUTPUT);
        }
        const double now = comm_wtime();
        const int row_next = k + 1 == steps || (k + 1) % cfg->output.log_every == 0;
        if (root && !last && !row_next && cfg->output.progress_seconds > 0 &&
            now - last_line >= cfg->output.progress_seconds) {
            heartbeat(k + 1, steps, (double)(k + 1 - last_line_step) / (now - last_line),
                      now - t_start);
            last_line = now, last_line_step = k + 1;
        }
        if (!isfinite(vv)) { /* an exact sum over all ranks: the same on each */
            status = diverged(root, k);
            break;
        }
        if (balance_every && !last && (k + 1 - run->start) % balance_every == 0) {
            timer_start(TIMER_BALANCE);
            balance_particles(&m->particles, &balance, m->comm);
            timer_stop(TIMER_BALANCE);
        }
    }
    if (balance_every)
        balance_summary(m, &balance);
    if (m->share)
        share_summary(m);
    if (status == 0 && run->dir) {
        if (snap_every)
            save_state(run, CHECKPOINT_SNAPSHOT, steps);
        save_checkpoint(run, steps);
    }
    if (metrics)
        fclose(metrics);
    outputs_close(outputs);
    timer_stop(TIMER_TOTAL);
    if (final)
        *final = o;
    workspace_free(&w);
    return status;
}
