/*
 * checkpoint: validating and reading checkpoints and snapshots (see
 * checkpoint.h); the writer is checkpoint_write.c.
 *
 * Rank 0 validates a file serially and broadcasts the verdict, so bad files
 * are reported once, cleanly, before any collective read starts.
 */
#include "checkpoint.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "data.h"
#include "h5.h"
#include "history.h"
#include "log.h"
#include "model.h"
#include "rundir.h"
#include "shared_fs.h"

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

/* Text attribute into buf (NUL-terminated), fixed-length as mfres writes
 * it or variable-length as h5py writes a str; -1 when absent. */
static int read_attr_text(hid_t loc, const char *obj, const char *name, char *buf, size_t len)
{
    if (H5Aexists_by_name(loc, obj, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t a = H5Aopen_by_name(loc, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    hid_t t = H5Aget_type(a), space = H5Aget_space(a);
    int status = -1;
    size_t size = H5Tget_size(t);
    const int scalar = H5Sget_simple_extent_type(space) == H5S_SCALAR;
    H5Sclose(space);
    if (H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) && scalar) {
        char *text = NULL;
        if (H5Aread(a, t, &text) >= 0 && text && strlen(text) < len) {
            snprintf(buf, len, "%s", text);
            status = 0;
        }
        H5free_memory(text);
    } else if (H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) && size < len) {
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

/* 0 when dataset `name` holds floats of `want` bits; else -1 with err saying
 * what it holds (another type would be converted on read without a word). */
static int expect_float(hid_t file, const char *path, const char *name, size_t want, char *err,
                        size_t errlen)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t t = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    H5T_class_t kind = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    size_t bits = t >= 0 ? 8 * H5Tget_size(t) : 0;
    if (t >= 0)
        H5Tclose(t);
    if (d >= 0)
        H5Dclose(d);
    if (kind == H5T_FLOAT && bits == want)
        return 0;
    const char *what = kind == H5T_FLOAT ? "floats" : kind == H5T_INTEGER ? "integers" : "values";
    return log_file_error(err, errlen, "checkpoint", path,
                          "dataset '%s' holds %zu-bit %s, expected %zu-bit floats", name, bits,
                          what, want);
}

/* 0 when the file's three records of its step agree (the /checkpoint
 * attributes, the particles' step datasets and the history) and the step
 * lies in [0, train.steps]; else -1 with err. rows: history rows. */
static int check_step(hid_t file, const char *path, const struct checkpoint_header *hdr,
                      hsize_t rows, char *err, size_t errlen)
{
    const struct mf_config *c = &hdr->cfg;
    const int64_t step = hdr->step;
    if (step < 0 || step > c->train.steps)
        return log_file_error(err, errlen, "checkpoint", path,
                              "step %lld is outside [0, train.steps = %lld]", (long long)step,
                              (long long)c->train.steps);
    if (hdr->time != (double)step * c->train.lr)
        return log_file_error(err, errlen, "checkpoint", path,
                              "time %.17g is not step x lr = %.17g", hdr->time,
                              (double)step * c->train.lr);
    const char *names[3] = {"particles/blocks/u/step", "particles/blocks/w/step",
                            "particles/blocks/b/step"};
    for (int i = 0; i < 3; i++) {
        int64_t stored = -1;
        hid_t d = H5Dopen2(file, names[i], H5P_DEFAULT);
        int ok = d >= 0 && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &stored) >= 0;
        if (d >= 0)
            H5Dclose(d);
        if (!ok || stored != step)
            return log_file_error(err, errlen, "checkpoint", path,
                                  "'%s' holds step %lld, the file says %lld", names[i],
                                  (long long)stored, (long long)step);
    }
    /* The history: steps 0, ... increasing, all before the state's step, or
     * up to it in the final checkpoint of a finished run. */
    if (rows == 0) {
        if (hdr->kind == CHECKPOINT_FULL || step != 0)
            return log_file_error(err, errlen, "checkpoint", path,
                                  "no history rows for a state at step %lld", (long long)step);
        return 0;
    }
    int64_t *steps = xcalloc(rows, sizeof *steps);
    hid_t d = H5Dopen2(file, "observables/loss/step", H5P_DEFAULT);
    int ok = d >= 0 && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, steps) >= 0;
    if (d >= 0)
        H5Dclose(d);
    for (hsize_t i = 1; ok && i < rows; i++)
        ok = steps[i] > steps[i - 1];
    int64_t first = steps[0], last = steps[rows - 1];
    free(steps);
    if (!ok || first != 0)
        return log_file_error(err, errlen, "checkpoint", path,
                              "the history's steps do not increase from 0");
    int final = step == c->train.steps && hdr->kind == CHECKPOINT_FULL;
    if (final ? last != step : last >= step + (hdr->kind == CHECKPOINT_SNAPSHOT))
        return log_file_error(err, errlen, "checkpoint", path,
                              "the history ends at step %lld, which does not fit a %s at step "
                              "%lld", (long long)last, final ? "finished run" : "state",
                              (long long)step);
    return 0;
}

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
    if (read_attr_text(file, "checkpoint", "manifest", hdr->manifest, sizeof hdr->manifest))
        hdr->manifest[0] = 0; /* written before manifests were kept */
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
    const size_t bits = c->model.precision == MF_PRECISION_MIXED ? 32 : 64; /* the stored one */
    if (expect_float(file, path, "particles/blocks/u/value", bits, err, errlen) ||
        expect_float(file, path, "particles/blocks/w/value", bits, err, errlen) ||
        expect_float(file, path, "particles/blocks/b/value", bits, err, errlen))
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
    if (check_step(file, path, hdr, rows[0], err, errlen) != 0)
        goto out;
    if (hdr->kind == CHECKPOINT_FULL) {
        const int labels = c->train.loss == MF_LOSS_CROSS_ENTROPY;
        const hsize_t n[2] = {(hsize_t)c->data.samples, (hsize_t)c->data.test_samples};
        const char *names[2][2] = {{"parameters/data/x_train", "parameters/data/y_train"},
                                   {"parameters/data/x_test", "parameters/data/y_test"}};
        for (int i = 0; i < 2; i++) {
            hsize_t xd[2] = {n[i], (hsize_t)c->data.input_dim};
            hsize_t yd[2] = {n[i], (hsize_t)c->data.output_dim};
            if (expect_dims(file, path, names[i][0], 2, xd, err, errlen) ||
                expect_dims(file, path, names[i][1], labels ? 1 : 2, yd, err, errlen) ||
                expect_float(file, path, names[i][0], 64, err, errlen))
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

/* The datasets a file of this kind holds, every one with a checksum. */
enum { MAX_DATASETS = 16 + 3 * (HISTORY_COLUMNS + 1) };
static int dataset_names(const struct checkpoint_header *hdr, char names[][64])
{
    int n = 0;
    snprintf(names[n++], 64, "parameters/config");
    if (hdr->kind == CHECKPOINT_FULL)
        for (int i = 0; i < 4; i++)
            snprintf(names[n++], 64, "parameters/data/%s_%s", i % 2 ? "y" : "x",
                     i < 2 ? "train" : "test");
    snprintf(names[n++], 64, "particles/blocks/layer");
    snprintf(names[n++], 64, "particles/blocks/id");
    const char *parts[3] = {"step", "time", "value"};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++)
            snprintf(names[n++], 64, "particles/blocks/%c/%s", "uwb"[i], parts[k]);
    for (int c = 0; c < HISTORY_COLUMNS + (hdr->cfg.data.probes > 0); c++)
        for (int k = 0; k < 3; k++)
            snprintf(names[n++], 64, "observables/%s/%s",
                     c < HISTORY_COLUMNS ? history_column_names[c] : "output", parts[k]);
    return n;
}

/* 0 when every dataset of a file validate() accepted matches its checksum;
 * else -1 with err naming the first that does not. Collective. */
static int verify(const char *path, const struct checkpoint_header *hdr, char *err,
                  size_t errlen, MPI_Comm comm)
{
    hid_t fapl = h5_parallel_fapl(comm);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (!h5_opened(file, path, comm))
        return log_file_error(err, errlen, "checkpoint", path, "cannot open for reading");
    char names[MAX_DATASETS][64];
    const int n = dataset_names(hdr, names);
    int status = 0;
    for (int i = 0; i < n && status == 0; i++) {
        char why[128];
        if (h5_verify(file, names[i], why, sizeof why, comm) != 0)
            status = log_file_error(err, errlen, "checkpoint", path, "dataset '%s' %s", names[i],
                                    why);
    }
    H5Fclose(file);
    return status;
}

int checkpoint_check(const char *path, struct checkpoint_header *hdr, char *err, size_t errlen,
                    MPI_Comm comm)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    memset(hdr, 0, sizeof *hdr);
    if (shared_fs_check_file("checkpoint", path, err, errlen, comm) != 0)
        return -1;
    int status = 0;
    if (comm_rank(comm) == 0)
        status = validate(path, hdr, err, errlen);
    comm_bcast(&status, sizeof status, 0, comm);
    comm_bcast(hdr, sizeof *hdr, 0, comm);
    comm_bcast(err, (long)errlen, 0, comm);
    return status ? status : verify(path, hdr, err, errlen, comm);
}

/* Read `count` elements of a whole dataset: rank 0 reads them (a
 * collective read in which the other ranks select nothing) and broadcasts
 * them, so that the file is read once, not once per rank. Collective. */
static void read_replicated(hid_t file, const char *name, hid_t type, hid_t dxpl, void *out,
                            hsize_t count, const char *path, MPI_Comm comm)
{
    const int root = comm_rank(comm) == 0;
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    hid_t space = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    const hsize_t n = count ? count : 1;
    hid_t mem = H5Screate_simple(1, &n, NULL);
    if (!root || !count) {
        H5Sselect_none(mem);
        if (space >= 0)
            H5Sselect_none(space);
    }
    if (d < 0 || H5Dread(d, type, mem, space, dxpl, out) < 0)
        log_fatal("reading '%s' from '%s' failed", name, path);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(d);
    comm_bcast(out, (long)(count * H5Tget_size(type)), 0, comm);
}

/* Read this rank's share of a particle dataset into out. */
static void read_share(hid_t file, const char *name, hid_t dxpl, const struct h5_rows *s,
                       hid_t type, void *out, const char *path)
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
    h5_select_rows(space, s, 1);
    if (H5Dread(d, type, mem, space, dxpl, out) < 0)
        log_fatal("reading '%s' from '%s' failed", name, path);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(d);
}

static void read_history_from(hid_t file, hid_t dxpl, struct mf_history *h, const char *path,
                              MPI_Comm comm)
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
        read_replicated(file, name, H5T_NATIVE_DOUBLE, dxpl, values, n, path, comm);
        for (hsize_t i = 0; i < n; i++)
            history_set_column(&rows[i], k, values[i]);
    }
    read_replicated(file, "observables/loss/step", H5T_NATIVE_INT64, dxpl, steps, n, path, comm);
    read_replicated(file, "observables/loss/time", H5T_NATIVE_DOUBLE, dxpl, times, n, path, comm);
    hsize_t odims[3] = {0, 0, 0};
    double *outputs = NULL;
    if (H5Lexists(file, "observables/output", H5P_DEFAULT) > 0 &&
        dataset_dims(file, "observables/output/value", odims) == 3) {
        outputs = xcalloc(odims[0] * odims[1] * odims[2] + 1, sizeof *outputs);
        read_replicated(file, "observables/output/value", H5T_NATIVE_DOUBLE, dxpl, outputs,
                        odims[0] * odims[1] * odims[2], path, comm);
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
    read_history_from(file, H5P_DEFAULT, history, path, MPI_COMM_SELF);
    H5Fclose(file);
}

double checkpoint_read(const char *path, struct mf_dataset *ds, struct mf_model *m,
                       struct mf_history *history)
{
    MPI_Comm comm = m->comm;
    double t0 = comm_wtime();
    hid_t fapl = h5_parallel_fapl(comm);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (!h5_opened(file, path, comm))
        log_fatal("cannot open '%s' for reading", path);
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);

    struct mf_particles *p = &m->particles;
    struct h5_rows vec = {(hsize_t)p->layers, (hsize_t)p->width, (hsize_t)p->first,
                        (hsize_t)p->count, (hsize_t)p->dim};
    struct h5_rows scalar = vec;
    scalar.width = 0;
    const hid_t type = h5_float_type(particles_value_size(p));
    read_share(file, "particles/blocks/u/value", dxpl, &vec, type, p->u, path);
    read_share(file, "particles/blocks/w/value", dxpl, &vec, type, p->w, path);
    read_share(file, "particles/blocks/b/value", dxpl, &scalar, type, p->b, path);

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
            read_replicated(file, names[i][0], H5T_NATIVE_DOUBLE, dxpl, sets[i]->x,
                            xd[0] * xd[1], path, comm);
            read_replicated(file, names[i][1], H5T_NATIVE_DOUBLE, dxpl, sets[i]->y,
                            yd[0] * (yrank == 2 ? yd[1] : 1), path, comm);
        }
    }
    if (history)
        read_history_from(file, dxpl, history, path, comm);
    H5Pclose(dxpl);
    H5Fclose(file);
    return comm_max(comm_wtime() - t0, comm);
}

/* ---- run directories ---- */

/* The steps of the checkpoint files in run_dir, newest first, listed by
 * rank 0 and known to every rank. Free *steps. Returns their number, or -1
 * with a message in err (every rank) when the folder cannot be listed.
 * Collective. */
static int64_t list_checkpoints(const char *run_dir, int64_t **steps, char *err,
                                size_t errlen, MPI_Comm comm)
{
    int64_t n[2] = {0, 0}; /* the count, and errno */
    *steps = NULL;
    if (comm_rank(comm) == 0) {
        n[0] = rundir_checkpoints(run_dir, steps);
        n[1] = errno;
    }
    comm_bcast(n, sizeof n, 0, comm);
    if (n[0] < 0) {
        char host[256] = "?";
        if (comm_rank(comm) == 0)
            gethostname(host, sizeof host - 1);
        comm_bcast(host, sizeof host, 0, comm);
        free(*steps);
        *steps = NULL;
        return snprintf(err, errlen, "cannot list '%s/checkpoints' (rank 0 on %s): %s", run_dir,
                        host, strerror((int)n[1])),
               -1;
    }
    if (comm_rank(comm) != 0)
        *steps = xcalloc((size_t)n[0] + 1, sizeof **steps);
    comm_bcast(*steps, n[0] * (long)sizeof **steps, 0, comm);
    return n[0];
}

int checkpoint_count(const char *run_dir, char *err, size_t errlen, MPI_Comm comm)
{
    int64_t *steps;
    const int64_t n = list_checkpoints(run_dir, &steps, err, errlen, comm);
    free(steps);
    return (int)n;
}

int checkpoint_find_latest(const char *run_dir, char *path, size_t len,
                           struct checkpoint_header *hdr, char *err, size_t errlen,
                           MPI_Comm comm)
{
    int64_t *steps;
    const int64_t n = list_checkpoints(run_dir, &steps, err, errlen, comm);
    path[0] = 0;
    for (int64_t i = 0; i < n && !path[0]; i++) {
        char why[MF_ERR_MAX];
        rundir_path(run_dir, CHECKPOINT_FULL, steps[i], path, len);
        int status = checkpoint_check(path, hdr, why, sizeof why, comm);
        if (status == 0 && hdr->kind != CHECKPOINT_FULL)
            status = log_file_error(why, sizeof why, "checkpoint", path, "a snapshot");
        if (status != 0) {
            if (comm_rank(comm) == 0)
                log_warn("skipping %s", why);
            path[0] = 0;
        }
    }
    free(steps);
    return (int)n;
}
