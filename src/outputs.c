/*
 * outputs: the run's outputs.h5 (see outputs.h).
 */
#include "outputs.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>

#include "config.h"
#include "data.h"
#include "h5.h"
#include "history.h"
#include "log.h"
#include "rundir.h"
#include "version.h"

/* The series: step, time, the first SERIES_COLUMNS columns of the history
 * (loss, test_loss, test_accuracy) and the outputs. */
#define SERIES_COLUMNS 3
enum { SERIES_STEP, SERIES_TIME, SERIES_OUTPUT = SERIES_TIME + SERIES_COLUMNS + 1, N_SERIES };

struct mf_outputs {
    char path[MF_PATH_MAX + 32];
    hid_t file;
    hid_t series[N_SERIES];
    int64_t rows;
    hsize_t probes, d_out;
};

static noreturn void outputs_failed(const struct mf_outputs *o, const char *call)
{
    log_fatal("writing '%s': %s failed", o->path, call);
}

static void attr_text(struct mf_outputs *o, hid_t obj, const char *name, const char *text)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(text) ? strlen(text) : 1);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, space, H5P_DEFAULT, H5P_DEFAULT);
    H5_TRY(a, outputs_failed, o);
    H5_TRY(H5Awrite(a, t, text), outputs_failed, o);
    H5Aclose(a);
    H5Sclose(space);
    H5Tclose(t);
}

static void whole_dataset(struct mf_outputs *o, const char *name, int rank, const hsize_t *dims,
                          const double *data)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(o->file, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT,
                         H5P_DEFAULT);
    H5_TRY(d, outputs_failed, o);
    if (dims[0] > 0)
        H5_TRY(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
               outputs_failed, o);
    H5Dclose(d);
    H5Sclose(space);
}

/* A dataset [0 -> unlimited][tail...], chunked by 64 rows. */
static hid_t series(struct mf_outputs *o, const char *name, hid_t type, int rank,
                    const hsize_t *tail)
{
    hsize_t dims[3] = {0, 0, 0}, max[3] = {H5S_UNLIMITED, 0, 0}, chunk[3] = {64, 0, 0};
    for (int i = 1; i < rank; i++)
        dims[i] = max[i] = chunk[i] = tail[i - 1] ? tail[i - 1] : 1;
    hid_t space = H5Screate_simple(rank, dims, max);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    hid_t d = H5Dcreate2(o->file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5_TRY(d, outputs_failed, o);
    H5Pclose(dcpl);
    H5Sclose(space);
    return d;
}

/* Grow a series by one row and write it. */
static void append_row(struct mf_outputs *o, hid_t d, hid_t type, const void *value)
{
    hid_t space = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[3], start[3] = {(hsize_t)o->rows, 0, 0}, count[3];
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    dims[0] = (hsize_t)o->rows + 1;
    H5_TRY(H5Dset_extent(d, dims), outputs_failed, o);
    count[0] = 1;
    for (int i = 1; i < rank; i++)
        count[i] = dims[i];
    space = H5Dget_space(d);
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t mem = H5Screate_simple(rank, count, NULL);
    H5_TRY(H5Dwrite(d, type, mem, space, H5P_DEFAULT, value), outputs_failed, o);
    H5Sclose(mem);
    H5Sclose(space);
}

static void add_row(struct mf_outputs *o, const struct mf_observables *row, const double *out)
{
    append_row(o, o->series[SERIES_STEP], H5T_NATIVE_INT64, &row->step);
    append_row(o, o->series[SERIES_TIME], H5T_NATIVE_DOUBLE, &row->time);
    for (int i = 0; i < SERIES_COLUMNS; i++) {
        double value = history_column(row, i);
        append_row(o, o->series[SERIES_TIME + 1 + i], H5T_NATIVE_DOUBLE, &value);
    }
    if (o->probes > 0)
        append_row(o, o->series[SERIES_OUTPUT], H5T_NATIVE_DOUBLE, out);
    o->rows++;
}

struct mf_outputs *outputs_open(const char *run_dir, const struct mf_config *cfg,
                                const struct mf_dataset *ds, const struct mf_history *history)
{
    struct mf_outputs *o = xcalloc(1, sizeof *o);
    char tmp[MF_PATH_MAX + 48];
    snprintf(o->path, sizeof o->path, "%s/outputs.h5", run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", o->path);
    o->d_out = (hsize_t)ds->d_out;
    o->probes = o->d_out ? (hsize_t)(history->out_size / ds->d_out) : 0;

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    h5_file_locking(fapl);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_LATEST);
    o->file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (o->file < 0)
        log_fatal("cannot create '%s'", tmp);

    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem)
        log_fatal("out of memory writing '%s'", o->path);
    config_write(cfg, mem);
    fclose(mem);
    attr_text(o, o->file, "creator", "mfres");
    attr_text(o, o->file, "version", mfres_version);
    attr_text(o, o->file, "config", text);
    free(text);

    hid_t g = H5Gcreate2(o->file, "probes", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5_TRY(g, outputs_failed, o);
    H5Gclose(g);
    const struct mf_samples *t = &ds->test;
    hsize_t xd[2] = {o->probes, (hsize_t)t->d_in}, yd[2] = {o->probes, (hsize_t)t->y_dim};
    whole_dataset(o, "probes/x", 2, xd, t->x);
    whole_dataset(o, "probes/y", ds->labels ? 1 : 2, yd, t->y);

    const hsize_t tail[2] = {o->probes, o->d_out};
    o->series[SERIES_STEP] = series(o, "step", H5T_NATIVE_INT64, 1, NULL);
    o->series[SERIES_TIME] = series(o, "time", H5T_NATIVE_DOUBLE, 1, NULL);
    for (int i = 0; i < SERIES_COLUMNS; i++)
        o->series[SERIES_TIME + 1 + i] =
            series(o, history_column_names[i], H5T_NATIVE_DOUBLE, 1, NULL);
    o->series[SERIES_OUTPUT] = o->probes ? series(o, "output", H5T_NATIVE_DOUBLE, 3, tail) : -1;
    for (int64_t i = 0; i < history->count; i++)
        add_row(o, &history->rows[i], history->outputs + i * history->out_size);
    H5_TRY(H5Fflush(o->file, H5F_SCOPE_GLOBAL), outputs_failed, o);
    if (rundir_publish(tmp, o->path) != 0)
        log_fatal("cannot move '%s' into place: %s", tmp, strerror(errno));
    return o;
}

void outputs_append(struct mf_outputs *o, const struct mf_observables *row, const double *out)
{
    add_row(o, row, out);
    H5_TRY(H5Fflush(o->file, H5F_SCOPE_GLOBAL), outputs_failed, o);
}

void outputs_close(struct mf_outputs *o)
{
    if (!o)
        return;
    for (int i = 0; i < N_SERIES; i++)
        if (o->series[i] >= 0)
            H5Dclose(o->series[i]);
    H5_TRY(H5Fclose(o->file), outputs_failed, o);
    free(o);
}

/* A whole one-dimensional series into out (as type). */
static int read_series(hid_t file, const char *name, hid_t type, void *out)
{
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    const int ok = d >= 0 && H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
    if (d >= 0)
        H5Dclose(d);
    return ok ? 0 : -1;
}

int outputs_describe(const char *path, FILE *out)
{
    char why[256], creator[16] = "", version[128] = "";
    hid_t file = h5_open_read(path, why, sizeof why);
    if (file < 0)
        return -1;
    int status = -1;
    hsize_t dims[3] = {0, 0, 0}, odims[3] = {0, 0, 0};
    const char *names[2] = {"creator", "version"};
    char *texts[2] = {creator, version};
    for (int i = 0; i < 2; i++) {
        hid_t a = H5Aexists(file, names[i]) > 0 ? H5Aopen(file, names[i], H5P_DEFAULT) : -1;
        hid_t t = a >= 0 ? H5Aget_type(a) : -1;
        if (t >= 0 && H5Tget_class(t) == H5T_STRING && !H5Tis_variable_str(t) &&
            H5Tget_size(t) < 128)
            H5Aread(a, t, texts[i]);
        if (t >= 0)
            H5Tclose(t);
        if (a >= 0)
            H5Aclose(a);
    }
    hid_t d = H5Lexists(file, "step", H5P_DEFAULT) > 0 ? H5Dopen2(file, "step", H5P_DEFAULT) : -1;
    if (d >= 0) {
        hid_t space = H5Dget_space(d);
        H5Sget_simple_extent_dims(space, dims, NULL);
        H5Sclose(space);
        H5Dclose(d);
    }
    d = H5Lexists(file, "output", H5P_DEFAULT) > 0 ? H5Dopen2(file, "output", H5P_DEFAULT) : -1;
    if (d >= 0) {
        hid_t space = H5Dget_space(d);
        H5Sget_simple_extent_dims(space, odims, NULL);
        H5Sclose(space);
        H5Dclose(d);
    }
    const hsize_t n = dims[0];
    int64_t *steps = xcalloc(n + 1, sizeof *steps);
    double *loss = xcalloc(n + 1, sizeof *loss);
    if (!strcmp(creator, "mfres") && H5Lexists(file, "h5md", H5P_DEFAULT) <= 0 &&
        read_series(file, "step", H5T_NATIVE_INT64, steps) == 0 &&
        read_series(file, "loss", H5T_NATIVE_DOUBLE, loss) == 0) {
        fprintf(out, "file       %s\nkind       outputs.h5 of a run, written by mfres %s\n", path,
                version);
        fprintf(out, "probes     %llu, %llu outputs each\n", (unsigned long long)odims[1],
                (unsigned long long)odims[2]);
        if (n > 0)
            fprintf(out, "rows       %llu, steps %lld to %lld\nloss       %.4e at step %lld, "
                    "%.4e at step %lld\n", (unsigned long long)n, (long long)steps[0],
                    (long long)steps[n - 1], loss[0], (long long)steps[0], loss[n - 1],
                    (long long)steps[n - 1]);
        else
            fprintf(out, "rows       none yet\n");
        status = 0;
    }
    free(steps);
    free(loss);
    H5Fclose(file);
    return status;
}
