/*
 * checkpoint: collective HDF5 files of the measure (see checkpoint.h).
 *
 * Writing: every rank creates the same objects in the same order (HDF5
 * metadata operations are collective) and writes attributes with the same
 * values; small datasets (configuration, data, observables) are written by
 * rank 0 with the other ranks selecting nothing; particle datasets by all
 * ranks, each its hyperslab. Any HDF5 failure while writing aborts the job:
 * the file being written is only a temporary one.
 *
 * Reading: rank 0 validates a file serially and broadcasts the verdict, so
 * bad files are reported once, cleanly, before any collective read starts.
 */
#include "checkpoint.h"

#include <errno.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "data.h"
#include "h5.h"
#include "history.h"
#include "log.h"
#include "model.h"
#include "rundir.h"
#include "version.h"

/* ---- writing ---- */

/* State of one file being written. */
struct writer {
    const char *path; /* final name, for messages */
    hid_t file;
    hid_t dxpl; /* collective transfers */
    int root;   /* this rank writes the small datasets */
    int64_t d_out; /* outputs per probe */
};

/* Abort the job when an HDF5 call failed. */
#define CHECK(w, call)                                                                         \
    do {                                                                                       \
        if ((call) < 0)                                                                        \
            log_fatal("writing '%s': %s failed", (w)->path, #call);                            \
    } while (0)

static hid_t new_group(struct writer *w, hid_t loc, const char *name)
{
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(w, g);
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
    CHECK(w, a);
    CHECK(w, H5Awrite(a, type, value));
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

/* A dataset of `rank` dims written whole by rank 0 (others select none). */
static void small_dataset(struct writer *w, hid_t loc, const char *name, hid_t type, int rank,
                          const hsize_t *dims, const void *data)
{
    hid_t space = rank ? H5Screate_simple(rank, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(w, d);
    hsize_t count = 1;
    for (int i = 0; i < rank; i++)
        count *= dims[i];
    if (count > 0) {
        hid_t mem = H5Scopy(space);
        if (!w->root) {
            H5Sselect_none(mem);
            H5Sselect_none(space);
        }
        CHECK(w, H5Dwrite(d, type, mem, space, w->dxpl, data));
        H5Sclose(mem);
    }
    H5Dclose(d);
    H5Sclose(space);
}

/* The rows of a layer-major array [L][rows_per_layer][width] that this rank
 * holds: rows [first, first + count) of every layer. */
struct share {
    hsize_t layers, rows_per_layer, first, count, width;
};

/* Select the rank's share in a file space of dims [lead][L*rows][width]
 * (lead = 0: no leading time dimension; width = 0: no trailing one). */
static void select_share(hid_t space, const struct share *s, int lead)
{
    if (s->count == 0 || s->layers == 0) {
        H5Sselect_none(space);
        return;
    }
    hsize_t start[3], stride[3], count[3], block[3];
    int r = 0;
    if (lead)
        start[r] = 0, stride[r] = 1, count[r] = 1, block[r] = 1, r++;
    start[r] = s->first, stride[r] = s->rows_per_layer, count[r] = s->layers,
    block[r] = s->count, r++;
    if (s->width)
        start[r] = 0, stride[r] = 1, count[r] = 1, block[r] = s->width, r++;
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, stride, count, block);
}

/* A [1][L*rows][width] (or [L*rows]) dataset written by every rank. */
static void shared_dataset(struct writer *w, hid_t loc, const char *name, hid_t type,
                           const struct share *s, int lead, const void *data)
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
    CHECK(w, d);
    hsize_t n = s->layers * s->count * (s->width ? s->width : 1);
    hsize_t mdims[1] = {n ? n : 1};
    hid_t mem = H5Screate_simple(1, mdims, NULL);
    if (!n)
        H5Sselect_none(mem);
    select_share(space, s, lead);
    CHECK(w, H5Dwrite(d, type, mem, space, w->dxpl, data));
    H5Sclose(mem);
    H5Dclose(d);
    H5Sclose(space);
}

/* An H5MD time-dependent element with one sample: step [1], time [1], value. */
static void particle_element(struct writer *w, hid_t blocks, const char *name,
                             const struct share *s, const double *values, int64_t step,
                             double time)
{
    hid_t g = new_group(w, blocks, name);
    hsize_t one = 1;
    small_dataset(w, g, "step", H5T_NATIVE_INT64, 1, &one, &step);
    small_dataset(w, g, "time", H5T_NATIVE_DOUBLE, 1, &one, &time);
    shared_dataset(w, g, "value", H5T_NATIVE_DOUBLE, s, 1, values);
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
    struct share vec, scalar; /* u/w rows and b/layer/id rows */
    const double *u, *w, *b;
    double *copy; /* u, w and b when copied, else NULL */
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
    k->vec = (struct share){(hsize_t)p->layers, (hsize_t)per_layer, (hsize_t)j0, (hsize_t)cnt,
                            (hsize_t)D};
    k->scalar = k->vec;
    k->scalar.width = 0;
    size_t n = (size_t)(p->layers * cnt);
    k->layer = xmalloc((n + 1) * sizeof(int32_t));
    k->id = xmalloc((n + 1) * sizeof(int64_t));
    k->copy = NULL;
    k->u = p->u, k->w = p->w, k->b = p->b;
    if (stride > 1) {
        k->copy = xmalloc((n * (2 * D + 1) + 1) * sizeof(double));
        k->u = k->copy, k->w = k->copy + n * D, k->b = k->copy + 2 * n * D;
    }
    for (int64_t l = 0; l < p->layers; l++)
        for (int64_t j = j0; j < j1; j++) {
            int64_t src = l * p->count + (j * stride - p->first), dst = l * cnt + (j - j0);
            if (k->copy) {
                memcpy(k->copy + dst * D, p->u + src * D, (size_t)D * sizeof(double));
                memcpy(k->copy + (n + dst) * D, p->w + src * D, (size_t)D * sizeof(double));
                k->copy[2 * n * D + dst] = p->b[src];
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
    particle_element(w, blocks, "u", &k.vec, k.u, step, time);
    particle_element(w, blocks, "w", &k.vec, k.w, step, time);
    particle_element(w, blocks, "b", &k.scalar, k.b, step, time);
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

static hid_t parallel_fapl(MPI_Comm comm)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL);
    H5Pset_all_coll_metadata_ops(fapl, 1);
    H5Pset_coll_metadata_write(fapl, 1);
    H5Pset_file_locking(fapl, 0, 1); /* locks fail on many parallel file systems */
    return fapl;
}

/* Testing aid: SIGKILL this process half-way through writing `path` when the
 * environment variable `name` holds its file name (e.g. ckpt-00000020.h5),
 * as a node failure would. The kill test uses it to hit the write window
 * deterministically. */
static void crash_point(const char *path, const char *name)
{
    const char *target = getenv(name);
    const char *base = strrchr(path, '/');
    if (target && !strcmp(target, base ? base + 1 : path))
        raise(SIGKILL);
}

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

    struct writer w = {.path = path, .root = comm_rank(comm) == 0, .d_out = m->d_out};
    int ok = !w.root || rundir_mkdir(dir) == 0;
    comm_fatal_unless(ok, comm, "cannot create directory '%s': %s", dir, strerror(errno));

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = parallel_fapl(comm);
    w.file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (w.file < 0)
        log_fatal("cannot create '%s'", tmp);
    w.dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(w.dxpl, H5FD_MPIO_COLLECTIVE);

    write_h5md(&w, comm);
    write_parameters(&w, cfg, full ? ds : NULL);
    write_particles(&w, &m->particles, stride, step, time);
    write_observables(&w, history);
    crash_point(path, "MFRES_TEST_KILL_IN_WRITE");

    hid_t g = new_group(&w, w.file, "checkpoint");
    attr_text(&w, g, "kind", full ? "checkpoint" : "snapshot");
    attr_int(&w, g, "step", step);
    attr_double(&w, g, "time", time);
    attr_int(&w, g, "stride", stride);
    attr_int(&w, g, "ranks", comm_size(comm));
    attr_text(&w, g, "version", mfres_version);
    attr_text(&w, g, "rng", "Philox4x64-10 keyed by (seed, purpose); every counter derives from "
                            "the step and particle ids, so the step is the whole state");
    attr_text(&w, g, "optimizer", "plain gradient steps: no state beyond the particles");
    CHECK(&w, H5Fflush(w.file, H5F_SCOPE_GLOBAL));
    attr_int(&w, g, "complete", 1); /* last: a file without it is not a checkpoint */
    H5Gclose(g);
    H5Pclose(w.dxpl);
    CHECK(&w, H5Fclose(w.file));

    /* Make the data durable, then give the file its name. */
    ok = !w.root || rundir_publish(tmp, path) == 0;
    comm_fatal_unless(ok, comm, "cannot move '%s' into place: %s", tmp, strerror(errno));
    return comm_wtime() - t0;
}

/* ---- reading ---- */

static int read_attr(hid_t loc, const char *obj, const char *name, hid_t type, void *out)
{
    if (H5Aexists_by_name(loc, obj, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t a = H5Aopen_by_name(loc, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0)
        return -1;
    herr_t s = H5Aread(a, type, out);
    H5Aclose(a);
    return s < 0 ? -1 : 0;
}

/* Text attribute into buf (NUL-terminated); -1 when absent. */
static int read_attr_text(hid_t loc, const char *obj, const char *name, char *buf, size_t len)
{
    if (H5Aexists_by_name(loc, obj, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t a = H5Aopen_by_name(loc, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    int status = -1;
    size_t size = H5Tget_size(t);
    if (H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) && size < len) {
        memset(buf, 0, len);
        status = H5Aread(a, t, buf) < 0 ? -1 : 0;
    }
    H5Tclose(t);
    H5Aclose(a);
    return status;
}

/* Dimensions of a dataset; its rank, or -1 when it does not exist. */
static int dataset_dims(hid_t file, const char *name, hsize_t dims[3])
{
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0)
        return -1;
    hid_t s = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(s);
    if (rank > 3)
        rank = -1;
    else if (rank > 0)
        H5Sget_simple_extent_dims(s, dims, NULL);
    H5Sclose(s);
    H5Dclose(d);
    return rank;
}

/* Check that a dataset exists with exactly these dimensions. */
static int expect_dims(hid_t file, const char *path, const char *name, int rank,
                       const hsize_t *want, char *err, size_t errlen)
{
    hsize_t dims[3] = {0};
    int r = dataset_dims(file, name, dims);
    if (r < 0)
        return log_file_error(err, errlen, "checkpoint", path, "no dataset '%s'", name);
    int same = r == rank;
    for (int i = 0; same && i < rank; i++)
        same = dims[i] == want[i];
    if (same)
        return 0;
    char have[96] = "", need[96] = "";
    for (int i = 0; i < r; i++)
        snprintf(have + strlen(have), sizeof have - strlen(have), "[%llu]",
                 (unsigned long long)dims[i]);
    for (int i = 0; i < rank; i++)
        snprintf(need + strlen(need), sizeof need - strlen(need), "[%llu]",
                 (unsigned long long)want[i]);
    return log_file_error(err, errlen, "checkpoint", path, "dataset '%s' has shape %s, expected %s",
                          name, r ? have : "[] (scalar)", need);
}

/* The stored INI text, malloc'ed; NULL when missing. */
static char *read_config_text(hid_t file)
{
    if (H5Lexists(file, "parameters", H5P_DEFAULT) <= 0 ||
        H5Lexists(file, "parameters/config", H5P_DEFAULT) <= 0)
        return NULL;
    hid_t d = H5Dopen2(file, "parameters/config", H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    char *text = NULL;
    if (H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t)) {
        size_t size = H5Tget_size(t);
        text = xcalloc(size + 1, 1);
        if (H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, text) < 0) {
            free(text);
            text = NULL;
        }
    }
    H5Tclose(t);
    H5Dclose(d);
    return text;
}

/* Serial validation on one rank: the whole verdict on a file. */
static int validate(const char *path, struct checkpoint_header *hdr, char *err, size_t errlen)
{
    char why[MF_ERR_MAX / 2];
    memset(hdr, 0, sizeof *hdr);
    hid_t file = h5_open_read(path, why, sizeof why);
    if (file < 0)
        return log_file_error(err, errlen, "checkpoint", path, "%s", why);

    int status = -1;
    char creator[64], kind[32], label[MF_PATH_MAX + 64];
    int version[2] = {0, 0};
    int64_t complete = 0;
    char *text = NULL;
    if (H5Lexists(file, "h5md", H5P_DEFAULT) <= 0 ||
        read_attr_text(file, "h5md/creator", "name", creator, sizeof creator) != 0) {
        log_file_error(err, errlen, "checkpoint", path, "not an mfres file (no /h5md/creator)");
        goto out;
    }
    if (strcmp(creator, "mfres")) {
        log_file_error(err, errlen, "checkpoint", path, "not an mfres file (written by '%s')",
                       creator);
        goto out;
    }
    if (read_attr(file, "h5md", "version", H5T_NATIVE_INT, version) != 0 || version[0] != 1 ||
        version[1] != 1) {
        log_file_error(err, errlen, "checkpoint", path, "H5MD version %d.%d, expected 1.1",
                       version[0], version[1]);
        goto out;
    }
    if (H5Lexists(file, "checkpoint", H5P_DEFAULT) <= 0 ||
        read_attr(file, "checkpoint", "complete", H5T_NATIVE_INT64, &complete) != 0 ||
        complete != 1) {
        log_file_error(err, errlen, "checkpoint", path,
                       "incomplete (no complete = 1 in /checkpoint)");
        goto out;
    }
    if (read_attr_text(file, "checkpoint", "kind", kind, sizeof kind) != 0 ||
        read_attr(file, "checkpoint", "step", H5T_NATIVE_INT64, &hdr->step) != 0 ||
        read_attr(file, "checkpoint", "time", H5T_NATIVE_DOUBLE, &hdr->time) != 0 ||
        read_attr(file, "checkpoint", "stride", H5T_NATIVE_INT64, &hdr->stride) != 0 ||
        read_attr(file, "checkpoint", "ranks", H5T_NATIVE_INT, &hdr->ranks) != 0 ||
        read_attr_text(file, "checkpoint", "version", hdr->version, sizeof hdr->version) != 0) {
        log_file_error(err, errlen, "checkpoint", path,
                       "/checkpoint lacks kind, step, time, stride, ranks or version");
        goto out;
    }
    hdr->kind = strcmp(kind, "snapshot") ? CHECKPOINT_FULL : CHECKPOINT_SNAPSHOT;
    if (!(text = read_config_text(file))) {
        log_file_error(err, errlen, "checkpoint", path, "no configuration (/parameters/config)");
        goto out;
    }
    snprintf(label, sizeof label, "%s:/parameters/config", path);
    config_defaults(&hdr->cfg);
    if (config_read_string(&hdr->cfg, text, label, err, errlen) != 0)
        goto out;
    const struct mf_config *c = &hdr->cfg;
    const hsize_t L = (hsize_t)c->model.layers, D = (hsize_t)c->model.dim;
    if (hdr->stride < 1 || c->model.width < 1 || D < 1) {
        log_file_error(err, errlen, "checkpoint", path,
                       "stored stride, width or dim is not positive");
        goto out;
    }
    const hsize_t N = L * (hsize_t)((c->model.width + hdr->stride - 1) / hdr->stride);
    const hsize_t vec[3] = {1, N, D}, one = 1;
    if (expect_dims(file, path, "particles/blocks/u/value", 3, vec, err, errlen) ||
        expect_dims(file, path, "particles/blocks/w/value", 3, vec, err, errlen) ||
        expect_dims(file, path, "particles/blocks/b/value", 2, vec, err, errlen) ||
        expect_dims(file, path, "particles/blocks/layer", 1, &N, err, errlen) ||
        expect_dims(file, path, "particles/blocks/id", 1, &N, err, errlen) ||
        expect_dims(file, path, "particles/blocks/u/step", 1, &one, err, errlen))
        goto out;
    hsize_t rows[3] = {0};
    if (dataset_dims(file, "observables/loss/value", rows) != 1) {
        log_file_error(err, errlen, "checkpoint", path, "no dataset 'observables/loss/value'");
        goto out;
    }
    for (int k = 0; k < HISTORY_COLUMNS; k++) {
        char name[96];
        const char *parts[3] = {"step", "time", "value"};
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "observables/%s/%s", history_column_names[k], parts[i]);
            if (expect_dims(file, path, name, 1, rows, err, errlen))
                goto out;
        }
    }
    if (c->data.probes > 0) {
        const hsize_t out[3] = {rows[0], (hsize_t)c->data.probes, (hsize_t)c->data.output_dim};
        if (expect_dims(file, path, "observables/output/value", 3, out, err, errlen) ||
            expect_dims(file, path, "observables/output/step", 1, rows, err, errlen))
            goto out;
    }
    if (hdr->kind == CHECKPOINT_FULL) {
        const int labels = c->train.loss == MF_LOSS_CROSS_ENTROPY;
        const hsize_t n[2] = {(hsize_t)c->data.samples, (hsize_t)c->data.test_samples};
        const char *names[2][2] = {{"parameters/data/x_train", "parameters/data/y_train"},
                                   {"parameters/data/x_test", "parameters/data/y_test"}};
        for (int i = 0; i < 2; i++) {
            hsize_t xd[2] = {n[i], (hsize_t)c->data.input_dim};
            hsize_t yd[2] = {n[i], (hsize_t)c->data.output_dim};
            if (expect_dims(file, path, names[i][0], 2, xd, err, errlen) ||
                expect_dims(file, path, names[i][1], labels ? 1 : 2, yd, err, errlen))
                goto out;
        }
        if (hdr->stride != 1) {
            log_file_error(err, errlen, "checkpoint", path, "a checkpoint with stride %lld",
                           (long long)hdr->stride);
            goto out;
        }
    }
    status = 0;
out:
    free(text);
    H5Fclose(file);
    return status;
}

int checkpoint_open(const char *path, struct checkpoint_header *hdr, char *err, size_t errlen,
                    MPI_Comm comm)
{
    int status = 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (comm_rank(comm) == 0)
        status = validate(path, hdr, err, errlen);
    comm_bcast(&status, sizeof status, 0, comm);
    comm_bcast(hdr, sizeof *hdr, 0, comm);
    comm_bcast(err, (long)errlen, 0, comm);
    return status;
}

/* Read a whole dataset of doubles (all ranks the same). */
static void read_all(hid_t file, const char *name, hid_t dxpl, double *out, const char *path)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0 || H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, dxpl, out) < 0)
        log_fatal("reading '%s' from '%s' failed", name, path);
    H5Dclose(d);
}

/* Read this rank's share of a particle dataset into out. */
static void read_share(hid_t file, const char *name, hid_t dxpl, const struct share *s,
                       double *out, const char *path)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0)
        log_fatal("reading '%s' from '%s' failed", name, path);
    hid_t space = H5Dget_space(d);
    hsize_t n = s->layers * s->count * (s->width ? s->width : 1);
    hsize_t mdims[1] = {n ? n : 1};
    hid_t mem = H5Screate_simple(1, mdims, NULL);
    if (!n)
        H5Sselect_none(mem);
    select_share(space, s, 1);
    if (H5Dread(d, H5T_NATIVE_DOUBLE, mem, space, dxpl, out) < 0)
        log_fatal("reading '%s' from '%s' failed", name, path);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(d);
}

static void read_history_from(hid_t file, hid_t dxpl, struct mf_history *h, const char *path)
{
    hsize_t dims[3] = {0};
    dataset_dims(file, "observables/loss/value", dims);
    const hsize_t n = dims[0];
    int64_t *steps = xcalloc(n + 1, sizeof *steps);
    double *times = xcalloc(n + 1, sizeof *times), *values = xcalloc(n + 1, sizeof *values);
    struct mf_observables *rows = xcalloc(n + 1, sizeof *rows);
    for (int k = 0; k < HISTORY_COLUMNS; k++) {
        char name[96];
        snprintf(name, sizeof name, "observables/%s/value", history_column_names[k]);
        if (n)
            read_all(file, name, dxpl, values, path);
        for (hsize_t i = 0; i < n; i++)
            history_set_column(&rows[i], k, values[i]);
    }
    if (n) {
        hid_t d = H5Dopen2(file, "observables/loss/step", H5P_DEFAULT);
        if (d < 0 || H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, dxpl, steps) < 0)
            log_fatal("reading observables from '%s' failed", path);
        H5Dclose(d);
        read_all(file, "observables/loss/time", dxpl, times, path);
    }
    hsize_t odims[3] = {0, 0, 0};
    double *outputs = NULL;
    if (H5Lexists(file, "observables/output", H5P_DEFAULT) > 0 &&
        dataset_dims(file, "observables/output/value", odims) == 3) {
        outputs = xcalloc(odims[0] * odims[1] * odims[2] + 1, sizeof *outputs);
        if (n)
            read_all(file, "observables/output/value", dxpl, outputs, path);
    }
    h->count = 0;
    h->out_size = (int64_t)(odims[1] * odims[2]);
    for (hsize_t i = 0; i < n; i++) {
        rows[i].step = steps[i];
        rows[i].time = times[i];
        history_append(h, &rows[i], outputs ? outputs + i * h->out_size : NULL);
    }
    free(steps), free(times), free(values), free(rows), free(outputs);
}

void checkpoint_read_history(const char *path, struct mf_history *history)
{
    char why[MF_ERR_MAX / 2];
    hid_t file = h5_open_read(path, why, sizeof why);
    if (file < 0)
        log_fatal("'%s': %s", path, why);
    read_history_from(file, H5P_DEFAULT, history, path);
    H5Fclose(file);
}

double checkpoint_read(const char *path, struct mf_dataset *ds, struct mf_model *m,
                       struct mf_history *history)
{
    MPI_Comm comm = m->comm;
    double t0 = comm_wtime();
    hid_t fapl = parallel_fapl(comm);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (file < 0)
        log_fatal("cannot open '%s' for reading", path);
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);

    struct mf_particles *p = &m->particles;
    struct share vec = {(hsize_t)p->layers, (hsize_t)p->width, (hsize_t)p->first,
                        (hsize_t)p->count, (hsize_t)p->dim};
    struct share scalar = vec;
    scalar.width = 0;
    read_share(file, "particles/blocks/u/value", dxpl, &vec, p->u, path);
    read_share(file, "particles/blocks/w/value", dxpl, &vec, p->w, path);
    read_share(file, "particles/blocks/b/value", dxpl, &scalar, p->b, path);

    if (ds) {
        struct mf_samples *sets[2] = {&ds->train, &ds->test};
        const char *names[2][2] = {{"parameters/data/x_train", "parameters/data/y_train"},
                                   {"parameters/data/x_test", "parameters/data/y_test"}};
        for (int i = 0; i < 2; i++) {
            hsize_t xd[3], yd[3] = {0, 1, 1};
            dataset_dims(file, names[i][0], xd);
            int yrank = dataset_dims(file, names[i][1], yd);
            sets[i]->n = (int64_t)xd[0];
            sets[i]->d_in = (int64_t)xd[1];
            sets[i]->y_dim = yrank == 2 ? (int64_t)yd[1] : 1;
            sets[i]->x = xmalloc((size_t)(xd[0] * xd[1] + 1) * sizeof(double));
            sets[i]->y = xmalloc((size_t)(yd[0] * (yrank == 2 ? yd[1] : 1) + 1) * 8);
            if (xd[0]) {
                read_all(file, names[i][0], dxpl, sets[i]->x, path);
                read_all(file, names[i][1], dxpl, sets[i]->y, path);
            }
        }
    }
    if (history)
        read_history_from(file, dxpl, history, path);
    H5Pclose(dxpl);
    H5Fclose(file);
    return comm_max(comm_wtime() - t0, comm);
}

/* ---- run directories ---- */

int checkpoint_find_latest(const char *run_dir, char *path, size_t len, MPI_Comm comm)
{
    int seen = 0;
    path[0] = 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (comm_rank(comm) == 0) {
        int64_t *steps;
        int64_t n = rundir_checkpoints(run_dir, &steps);
        seen = (int)n;
        for (int64_t i = 0; i < n && !path[0]; i++) {
            struct checkpoint_header hdr;
            char err[MF_ERR_MAX];
            rundir_path(run_dir, CHECKPOINT_FULL, steps[i], path, len);
            if (validate(path, &hdr, err, sizeof err) != 0 || hdr.kind != CHECKPOINT_FULL) {
                log_warn("skipping %s", hdr.kind != CHECKPOINT_FULL ? path : err);
                path[0] = 0;
            }
        }
        free(steps);
    }
    comm_bcast(&seen, sizeof seen, 0, comm);
    comm_bcast(path, (long)len, 0, comm);
    return seen;
}
