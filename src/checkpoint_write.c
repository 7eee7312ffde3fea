/*
 * checkpoint_write: writing checkpoints and snapshots (see checkpoint.h).
 *
 * Every rank creates the same objects in the same order (HDF5 metadata
 * operations are collective) and writes attributes with the same values;
 * small datasets (configuration, data, observables) are written by rank 0
 * with the other ranks selecting nothing; particle datasets by all ranks,
 * each its hyperslab. Every dataset carries a checksum attribute (see
 * h5_checksum): rank 0 computes a small dataset's and broadcasts it; every
 * rank computes its rows' share of a particle dataset's, and the shares are
 * summed across ranks.
 *
 * The file is written as PATH.tmp and published by rundir_publish once
 * whole. Before it is created, rank 0 checks that its file system has room
 * for it (the values plus a margin for HDF5's metadata): a full disk is
 * reported once, cleanly, and every rank exits 1. A write that fails
 * nevertheless (another process filled the disk) cannot be agreed on:
 * HDF5's collective metadata flush diverges once one rank has failed, so
 * the rank that failed removes the partial file, says why ("no space left
 * on device" when the file system now lacks the room) and aborts the job.
 * Either way the checkpoints already written stay.
 */
#include "checkpoint.h"

#include <errno.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "comm.h"
#include "data.h"
#include "h5.h"
#include "history.h"
#include "log.h"
#include "manifest.h"
#include "model.h"
#include "rundir.h"
#include "shared_fs.h"
#include "version.h"

/* State of one file being written. */
struct writer {
    const char *path; /* final name, for messages */
    MPI_Comm comm;
    hid_t file;
    hid_t dxpl; /* collective transfers */
    int root;   /* this rank writes the small datasets */
    int64_t d_out; /* outputs per probe */
    const char *tmp, *dir; /* the file being written and its directory */
    uint64_t need;         /* bytes it needs */
};

/* Give up when an HDF5 call failed (see the opening comment). */
static noreturn void write_failed(const struct writer *w, const char *call);

static hid_t new_group(struct writer *w, hid_t loc, const char *name)
{
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5_TRY(g, write_failed, w);
    return g;
}

/* Fixed-length string type for text of this length (at least one byte). */
static hid_t string_type(size_t len)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, len > 0 ? len : 1);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    return t;
}

static void attr(struct writer *w, hid_t obj, const char *name, hid_t type, int n,
                 const void *value)
{
    hsize_t dims[1] = {(hsize_t)n};
    hid_t space = n ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5_TRY(a, write_failed, w);
    H5_TRY(H5Awrite(a, type, value), write_failed, w);
    H5Aclose(a);
    H5Sclose(space);
}

static void attr_int(struct writer *w, hid_t obj, const char *name, int64_t v)
{
    attr(w, obj, name, H5T_NATIVE_INT64, 0, &v);
}

static void attr_double(struct writer *w, hid_t obj, const char *name, double v)
{
    attr(w, obj, name, H5T_NATIVE_DOUBLE, 0, &v);
}

static void attr_text(struct writer *w, hid_t obj, const char *name, const char *text)
{
    hid_t t = string_type(strlen(text));
    attr(w, obj, name, t, 0, text);
    H5Tclose(t);
}

static void attr_checksum(struct writer *w, hid_t dataset, uint64_t sum)
{
    attr(w, dataset, "checksum", H5T_NATIVE_UINT64, 0, &sum);
}

/* A dataset of `rank` dims written whole by rank 0 (others select none). */
static void small_dataset(struct writer *w, hid_t loc, const char *name, hid_t type, int rank,
                          const hsize_t *dims, const void *data)
{
    hid_t space = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5_TRY(d, write_failed, w);
    hsize_t count = 1;
    for (int i = 0; i < rank; i++)
        count *= dims[i];
    if (count > 0) {
        hid_t mem = H5Scopy(space);
        if (!w->root) {
            H5Sselect_none(mem);
            H5Sselect_none(space);
        }
        H5_TRY(H5Dwrite(d, type, mem, space, w->dxpl, data), write_failed, w);
        H5Sclose(mem);
    }
    uint64_t sum = w->root ? h5_checksum(data, count, H5Tget_size(type), 0) : 0;
    comm_bcast(&sum, sizeof sum, 0, w->comm);
    attr_checksum(w, d, sum);
    H5Dclose(d);
    H5Sclose(space);
}

/* A [1][L*rows][width] (or [L*rows]) dataset written by every rank. */
static void shared_dataset(struct writer *w, hid_t loc, const char *name, hid_t type,
                           const struct h5_rows *s, int lead, const void *data)
{
    hsize_t dims[3];
    int rank = 0;
    if (lead)
        dims[rank++] = 1;
    dims[rank++] = s->layers * s->rows_per_layer;
    if (s->width)
        dims[rank++] = s->width;
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5_TRY(d, write_failed, w);
    hsize_t n = s->layers * s->count * (s->width ? s->width : 1);
    hsize_t mdims[1] = {n ? n : 1};
    hid_t mem = H5Screate_simple(1, mdims, NULL);
    if (!n)
        H5Sselect_none(mem);
    h5_select_rows(space, s, lead);
    H5_TRY(H5Dwrite(d, type, mem, space, w->dxpl, data), write_failed, w);
    const size_t size = H5Tget_size(type);
    const hsize_t row = s->width ? s->width : 1, block = s->count * row;
    uint64_t sum = 0;
    for (hsize_t l = 0; l < s->layers && block; l++)
        sum += h5_checksum((const char *)data + l * block * size, block, size,
                           (l * s->rows_per_layer + s->first) * row);
    attr_checksum(w, d, comm_sum_u64(sum, w->comm));
    H5Sclose(mem);
    H5Dclose(d);
    H5Sclose(space);
}

/* An H5MD time-dependent element with one sample: step [1], time [1],
 * value (of `type`: the particles' precision). */
static void particle_element(struct writer *w, hid_t blocks, const char *name,
                             const struct h5_rows *s, hid_t type, const void *values,
                             int64_t step, double time)
{
    hid_t g = new_group(w, blocks, name);
    hsize_t one = 1;
    small_dataset(w, g, "step", H5T_NATIVE_INT64, 1, &one, &step);
    small_dataset(w, g, "time", H5T_NATIVE_DOUBLE, 1, &one, &time);
    shared_dataset(w, g, "value", type, s, 1, values);
    H5Gclose(g);
}

/* Where config_attribute writes. */
struct attribute_target {
    struct writer *w;
    hid_t group;
};

static void config_attribute(void *ctx, const struct config_value *v)
{
    struct writer *w = ((struct attribute_target *)ctx)->w;
    hid_t group = ((struct attribute_target *)ctx)->group;
    char name[128];
    snprintf(name, sizeof name, "%s.%s", v->section, v->name);
    if (v->type == CONFIG_INT)
        attr_int(w, group, name, v->integer);
    else if (v->type == CONFIG_REAL)
        attr_double(w, group, name, v->real);
    else
        attr_text(w, group, name, v->text);
}

static void write_parameters(struct writer *w, const struct mf_config *cfg,
                             const struct mf_dataset *ds)
{
    hid_t g = new_group(w, w->file, "parameters");
    struct attribute_target target = {w, g};
    config_foreach(cfg, config_attribute, &target);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_write(cfg, f);
    fclose(f);
    hid_t t = string_type(len);
    small_dataset(w, g, "config", t, 0, NULL, text);
    H5Tclose(t);
    free(text);
    if (ds) {
        hid_t d = new_group(w, g, "data");
        const struct mf_samples *sets[2] = {&ds->train, &ds->test};
        const char *names[2][2] = {{"x_train", "y_train"}, {"x_test", "y_test"}};
        for (int i = 0; i < 2; i++) {
            hsize_t xd[2] = {(hsize_t)sets[i]->n, (hsize_t)sets[i]->d_in};
            hsize_t yd[2] = {(hsize_t)sets[i]->n, (hsize_t)sets[i]->y_dim};
            small_dataset(w, d, names[i][0], H5T_NATIVE_DOUBLE, 2, xd, sets[i]->x);
            small_dataset(w, d, names[i][1], H5T_NATIVE_DOUBLE, ds->labels ? 1 : 2, yd,
                          sets[i]->y);
        }
        H5Gclose(d);
    }
    H5Gclose(g);
}

static void write_observables(struct writer *w, const struct mf_history *h)
{
    hid_t g = new_group(w, w->file, "observables");
    hsize_t n = (hsize_t)h->count;
    int64_t *steps = xcalloc(n + 1, sizeof *steps);
    double *times = xcalloc(n + 1, sizeof *times), *values = xcalloc(n + 1, sizeof *values);
    for (hsize_t i = 0; i < n; i++)
        steps[i] = h->rows[i].step, times[i] = h->rows[i].time;
    for (int k = 0; k < HISTORY_COLUMNS; k++) {
        for (hsize_t i = 0; i < n; i++)
            values[i] = history_column(&h->rows[i], k);
        hid_t o = new_group(w, g, history_column_names[k]);
        small_dataset(w, o, "step", H5T_NATIVE_INT64, 1, &n, steps);
        small_dataset(w, o, "time", H5T_NATIVE_DOUBLE, 1, &n, times);
        small_dataset(w, o, "value", H5T_NATIVE_DOUBLE, 1, &n, values);
        H5Gclose(o);
    }
    if (h->out_size > 0) { /* the outputs on the probes: value [T][probes][d_out] */
        const hsize_t d_out = (hsize_t)w->d_out, dims[3] = {n, (hsize_t)h->out_size / d_out, d_out};
        hid_t o = new_group(w, g, "output");
        small_dataset(w, o, "step", H5T_NATIVE_INT64, 1, &n, steps);
        small_dataset(w, o, "time", H5T_NATIVE_DOUBLE, 1, &n, times);
        small_dataset(w, o, "value", H5T_NATIVE_DOUBLE, 3, dims, h->outputs);
        H5Gclose(o);
    }
    free(steps), free(times), free(values);
    H5Gclose(g);
}

/* The particles to write: every stride-th of each layer. With stride 1 the
 * particle arrays are used as they are (their [L][count][D] layout is the
 * rank's hyperslab); otherwise the chosen ones are copied. */
struct packed {
    struct h5_rows vec, scalar; /* u/w rows and b/layer/id rows */
    const void *u, *w, *b;
    char *copy; /* u, w and b when copied, else NULL */
    int32_t *layer;
    int64_t *id;
};

static void pack(const struct mf_particles *p, int64_t stride, struct packed *k)
{
    const int64_t D = p->dim;
    const int64_t per_layer = (p->width + stride - 1) / stride;
    const int64_t j0 = (p->first + stride - 1) / stride;
    const int64_t j1 = (p->first + p->count + stride - 1) / stride;
    const int64_t cnt = j1 - j0;
    k->vec = (struct h5_rows){(hsize_t)p->layers, (hsize_t)per_layer, (hsize_t)j0, (hsize_t)cnt,
                            (hsize_t)D};
    k->scalar = k->vec;
    k->scalar.width = 0;
    size_t n = (size_t)(p->layers * cnt);
    k->layer = xmalloc((n + 1) * sizeof(int32_t));
    k->id = xmalloc((n + 1) * sizeof(int64_t));
    k->copy = NULL;
    k->u = p->u, k->w = p->w, k->b = p->b;
    const size_t size = particles_value_size(p), vector = (size_t)D * size;
    char *u = NULL, *w = NULL, *b = NULL;
    if (stride > 1) {
        k->copy = xmalloc((n * (2 * (size_t)D + 1) + 1) * size);
        k->u = u = k->copy, k->w = w = u + n * vector, k->b = b = w + n * vector;
    }
    for (int64_t l = 0; l < p->layers; l++)
        for (int64_t j = j0; j < j1; j++) {
            int64_t src = l * p->count + (j * stride - p->first), dst = l * cnt + (j - j0);
            if (k->copy) {
                memcpy(u + (size_t)dst * vector, (char *)p->u + (size_t)src * vector, vector);
                memcpy(w + (size_t)dst * vector, (char *)p->w + (size_t)src * vector, vector);
                memcpy(b + (size_t)dst * size, (char *)p->b + (size_t)src * size, size);
            }
            k->layer[dst] = (int32_t)l;
            k->id[dst] = l * p->width + j * stride;
        }
}

static void packed_free(struct packed *k)
{
    free(k->copy), free(k->layer), free(k->id);
}

static void write_particles(struct writer *w, const struct mf_particles *p, int64_t stride,
                            int64_t step, double time)
{
    struct packed k;
    pack(p, stride, &k);
    hid_t parts = new_group(w, w->file, "particles");
    hid_t blocks = new_group(w, parts, "blocks");
    hid_t box = new_group(w, blocks, "box");
    int n = 2 * p->dim + 1;
    attr_int(w, box, "dimension", n);
    char *none = xcalloc((size_t)n, 4);
    for (int i = 0; i < n; i++)
        memcpy(none + 4 * i, "none", 4);
    hid_t t = string_type(4);
    attr(w, box, "boundary", t, n, none);
    H5Tclose(t);
    free(none);
    H5Gclose(box);
    shared_dataset(w, blocks, "layer", H5T_NATIVE_INT32, &k.scalar, 0, k.layer);
    shared_dataset(w, blocks, "id", H5T_NATIVE_INT64, &k.scalar, 0, k.id);
    const hid_t type = h5_float_type(particles_value_size(p));
    particle_element(w, blocks, "u", &k.vec, type, k.u, step, time);
    particle_element(w, blocks, "w", &k.vec, type, k.w, step, time);
    particle_element(w, blocks, "b", &k.scalar, type, k.b, step, time);
    H5Gclose(blocks);
    H5Gclose(parts);
    packed_free(&k);
}

static void write_h5md(struct writer *w, MPI_Comm comm)
{
    char author[128] = "unknown";
    const char *user = getenv("USER");
    if (user && *user)
        snprintf(author, sizeof author, "%s", user);
    comm_bcast(author, sizeof author, 0, comm); /* attributes must agree on all ranks */
    hid_t g = new_group(w, w->file, "h5md");
    const int version[2] = {1, 1};
    attr(w, g, "version", H5T_NATIVE_INT, 2, version);
    hid_t a = new_group(w, g, "author");
    attr_text(w, a, "name", author);
    H5Gclose(a);
    hid_t c = new_group(w, g, "creator");
    attr_text(w, c, "name", "mfres");
    attr_text(w, c, "version", mfres_version);
    H5Gclose(c);
    H5Gclose(g);
}

/* Bytes the file will take: its values, plus 64 KiB for HDF5's metadata
 * (about 40 KiB in practice). */
static uint64_t file_bytes(const struct mf_particles *p, int64_t stride,
                           const struct mf_dataset *ds, const struct mf_history *h)
{
    const uint64_t n = (uint64_t)(p->layers * ((p->width + stride - 1) / stride));
    uint64_t bytes = n * (uint64_t)(8 * (2 * p->dim + 1) + 12); /* u, w, b, layer, id */
    if (ds)
        bytes += 8 * (uint64_t)(ds->train.n * (ds->train.d_in + ds->train.y_dim) +
                                ds->test.n * (ds->test.d_in + ds->test.y_dim));
    bytes += (uint64_t)h->count * (24 * HISTORY_COLUMNS + 16 + 8 * (uint64_t)h->out_size);
    return bytes + (64 << 10);
}

/* 0 when the file system of dir has room for `need` bytes (a stale tmp
 * counts as room: it is replaced); else -1 with the message in err. */
static int check_space(const char *dir, const char *tmp, const char *path, uint64_t need,
                       char *err, size_t errlen)
{
    struct statvfs fs;
    if (statvfs(dir, &fs) != 0)
        return 0; /* cannot tell: the write will find out */
    uint64_t room = (uint64_t)(geteuid() == 0 ? fs.f_bfree : fs.f_bavail) * fs.f_frsize;
    struct stat st;
    if (stat(tmp, &st) == 0)
        room += (uint64_t)st.st_size;
    if (room >= need)
        return 0;
    snprintf(err, errlen, "no space left on device: '%s' needs about %llu bytes, %llu are free",
             path, (unsigned long long)need, (unsigned long long)room);
    return -1;
}

static noreturn void write_failed(const struct writer *w, const char *call)
{
    char err[MF_ERR_MAX];
    unlink(w->tmp);
    if (check_space(w->dir, w->tmp, w->path, w->need, err, sizeof err) == 0)
        snprintf(err, sizeof err, "writing '%s' failed: %s failed", w->path, call);
    fprintf(stderr, "mfres: error: %s (the partial file is removed; earlier checkpoints are "
                    "kept)\n", err);
    fflush(stderr);
    comm_abort(MF_EXIT_RUNTIME);
}

#ifdef MFRES_FAULT_INJECTION
/* Testing aid, compiled only into build/mfres-faults (see the Makefile):
 * SIGKILL this process half-way through writing `path` when the environment
 * variable MFRES_TEST_KILL_IN_WRITE holds its file name (e.g.
 * ckpt-00000020.h5), as a node failure would. The kill test uses it to hit
 * the write window deterministically. */
static void crash_point(const char *path)
{
    const char *target = getenv("MFRES_TEST_KILL_IN_WRITE");
    const char *base = strrchr(path, '/');
    if (target && !strcmp(target, base ? base + 1 : path))
        raise(SIGKILL);
}
#else
static void crash_point(const char *path) { (void)path; }
#endif

double checkpoint_write(const char *path, enum checkpoint_kind kind, const struct mf_config *cfg,
                        const struct mf_dataset *ds, const struct mf_model *m,
                        const struct mf_history *history, int64_t step)
{
    MPI_Comm comm = m->comm;
    double t0 = comm_wtime();
    const int full = kind == CHECKPOINT_FULL;
    const int64_t stride = full ? 1 : cfg->output.snapshot_stride;
    const double time = (double)step * cfg->train.lr;
    char tmp[MF_PATH_MAX + 96], dir[MF_PATH_MAX + 96];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;

    struct writer w = {.path = path, .comm = comm, .root = comm_rank(comm) == 0,
                       .d_out = m->d_out, .tmp = tmp, .dir = dir,
                       .need = file_bytes(&m->particles, stride, full ? ds : NULL, history)};
    char err[MF_ERR_MAX] = "";
    int ok = !w.root || rundir_mkdir(dir) == 0;
    if (!ok)
        snprintf(err, sizeof err, "cannot create directory '%s': %s", dir, strerror(errno));
    comm_agree_or_exit(ok, err, MF_EXIT_RUNTIME, comm);
    comm_agree_or_exit(shared_fs_check_dir(dir, err, sizeof err, comm) == 0, err,
                       MF_EXIT_RUNTIME, comm);
    ok = !w.root || check_space(dir, tmp, path, w.need, err, sizeof err) == 0;
#ifdef MFRES_FAULT_INJECTION
    ok |= getenv("MFRES_TEST_SKIP_SPACE_CHECK") != NULL; /* to test a write that runs out */
#endif
    comm_agree_or_exit(ok, err, MF_EXIT_RUNTIME, comm);

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = h5_parallel_fapl(comm);
    w.file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    snprintf(err, sizeof err, "cannot create '%s'", tmp);
    comm_agree_or_exit(h5_opened(w.file, tmp, comm), err, MF_EXIT_RUNTIME, comm);
    w.dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(w.dxpl, H5FD_MPIO_COLLECTIVE);

    write_h5md(&w, comm);
    write_parameters(&w, cfg, full ? ds : NULL);
    write_particles(&w, &m->particles, stride, step, time);
    write_observables(&w, history);
    crash_point(path);

    hid_t g = new_group(&w, w.file, "checkpoint");
    attr_text(&w, g, "kind", full ? "checkpoint" : "snapshot");
    attr_int(&w, g, "step", step);
    attr_double(&w, g, "time", time);
    attr_int(&w, g, "stride", stride);
    attr_int(&w, g, "ranks", comm_size(comm));
    attr_text(&w, g, "version", mfres_version);
    attr_text(&w, g, "manifest", manifest_text());
    attr_text(&w, g, "rng", "Philox4x64-10 keyed by (seed, purpose); every counter derives from "
                            "the step and particle ids, so the step is the whole state");
    attr_text(&w, g, "optimizer", "plain gradient steps: no state beyond the particles");
    H5_TRY(H5Fflush(w.file, H5F_SCOPE_GLOBAL), write_failed, &w);
    attr_int(&w, g, "complete", 1); /* last: a file without it is not a checkpoint */
    H5Gclose(g);
    H5Pclose(w.dxpl);
    H5_TRY(H5Fclose(w.file), write_failed, &w);

    /* Make the data durable, then give the file its name. */
    if (w.root && rundir_publish(tmp, path) != 0) {
        snprintf(err, sizeof err, "cannot move '%s' into place: %s (the file is removed)", tmp,
                 strerror(errno));
        unlink(tmp);
        ok = 0;
    }
    comm_agree_or_exit(ok, err, MF_EXIT_RUNTIME, comm);
    return comm_wtime() - t0;
}
