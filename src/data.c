/*
 * data: generated and file-based data sets (see data.h).
 *
 * Sample s of a set is drawn from counter (s, block, set, what) of the data
 * stream, set = 0 train / 1 test, what = 0 inputs / 1 target noise. A
 * sample therefore does not depend on how many others are drawn: a run with
 * more samples extends, rather than replaces, a run with fewer.
 *
 * teacher: x ~ N(0, I); y = first d_out coordinates of the output of a fixed
 *          random mean-field ResNet with teacher_layers x teacher_width
 *          particles (same D, activation, alpha and init as the student,
 *          data seed), plus noise. The student can represent it exactly.
 * sine:    x ~ U(-1, 1)^d_in; y_k = sin(pi x_{k mod d_in}) + noise.
 * spirals: two interleaved spirals in the plane, labels 0 and 1; noise is
 *          added to the points.
 * file:    train = the first `samples` rows, test = the last `test_samples`.
 */
#include "data.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "h5.h"
#include "kernels.h"
#include "log.h"
#include "particles.h"
#include "rng.h"

enum { SET_TRAIN = 0, SET_TEST = 1 };
enum { DRAW_INPUT = 0, DRAW_NOISE = 1 };

static void alloc_samples(struct mf_samples *s, int64_t n, int64_t d_in, int64_t y_dim)
{
    s->n = n;
    s->d_in = d_in;
    s->y_dim = y_dim;
    const char *what = "the samples (data.samples or data.test_samples x (data.input_dim + "
                       "data.output_dim) doubles)";
    s->x = xmalloc_for(what, (size_t)(n * d_in), sizeof(double));
    s->y = xmalloc_for(what, (size_t)(n * y_dim), sizeof(double));
}

/* out[0..len) = scale * standard normals (or uniforms in (-1, 1)) of one
 * sample's draw. */
static void draw(uint64_t seed, int64_t sample, int set, int what, int normal, int64_t len,
                 double scale, double *out)
{
    double z[4];
    for (int64_t j = 0; j < len; j++) {
        if (j % 4 == 0) {
            if (normal)
                rng_normal4(seed, RNG_DATA, (uint64_t)sample, (uint64_t)j / 4, (uint64_t)set,
                            (uint64_t)what, z);
            else
                rng_uniform4(seed, RNG_DATA, (uint64_t)sample, (uint64_t)j / 4, (uint64_t)set,
                             (uint64_t)what, z);
        }
        out[j] = normal ? scale * z[j % 4] : scale * (2 * z[j % 4] - 1);
    }
}

/* Outputs of the teacher network on the inputs of s, written into s->y. */
static void teacher_targets(const struct mf_config *cfg, struct mf_samples *s)
{
    if (s->n == 0)
        return; /* an empty set: nothing to compute (and no buffers to pass on) */
    const int D = (int)cfg->model.dim;
    const int64_t L = cfg->data.teacher_layers, M = cfg->data.teacher_width;
    const double h = cfg->model.alpha / ((double)L * (double)M);
    struct mf_particles t;
    particles_alloc(&t, L, M, D, MF_PRECISION_DOUBLE, 0, 1);
    particles_init(&t, cfg->init.u_std, cfg->init.w_std, cfg->init.b_std,
                   (uint64_t)cfg->data.seed, RNG_TEACHER);
    const char *what = "the teacher's states (data.samples x model.dim doubles)";
    double *X = xmalloc_for(what, (size_t)(s->n * D), sizeof(double));
    double *drift = xmalloc_for(what, (size_t)(s->n * D), sizeof(double));
    memset(X, 0, (size_t)(s->n * D) * sizeof *X);
    double *work = xmalloc((size_t)kernels_workspace(MF_CHUNK) * sizeof(double));
    for (int64_t j = 0; j < s->n; j++)
        memcpy(X + j * D, s->x + j * s->d_in, (size_t)s->d_in * sizeof *X);
    for (int64_t l = 0; l < L; l++) {
        memset(drift, 0, (size_t)(s->n * D) * sizeof *drift);
        for (int64_t i0 = 0; i0 < M; i0 += MF_CHUNK) {
            int64_t cm = M - i0 < MF_CHUNK ? M - i0 : MF_CHUNK;
            kernels_forward(cfg->model.activation, s->n, D, X, cm, t.u + (l * M + i0) * D,
                            t.w + (l * M + i0) * D, t.b + l * M + i0, drift, work);
        }
        for (int64_t i = 0; i < s->n * D; i++)
            X[i] += h * drift[i];
    }
    for (int64_t j = 0; j < s->n; j++)
        memcpy(s->y + j * s->y_dim, X + j * D, (size_t)s->y_dim * sizeof *X);
    free(work);
    free(drift);
    free(X);
    particles_free(&t);
}

static void generate(const struct mf_config *cfg, int set, int64_t n, struct mf_samples *s)
{
    const uint64_t seed = (uint64_t)cfg->data.seed;
    const int64_t d_in = cfg->data.input_dim, d_out = cfg->data.output_dim;
    const double noise = cfg->data.noise;
    const double pi = 3.14159265358979323846;
    int kind = cfg->data.kind;
    alloc_samples(s, n, d_in, kind == MF_DATA_SPIRALS ? 1 : d_out);
    for (int64_t j = 0; j < n; j++) {
        double *x = s->x + j * d_in, *y = s->y + j * s->y_dim;
        if (kind == MF_DATA_TEACHER) {
            draw(seed, j, set, DRAW_INPUT, 1, d_in, 1.0, x);
        } else if (kind == MF_DATA_SINE) {
            draw(seed, j, set, DRAW_INPUT, 0, d_in, 1.0, x);
            for (int64_t k = 0; k < d_out; k++)
                y[k] = sin(pi * x[k % d_in]);
        } else { /* spirals */
            double u[2], e[2];
            draw(seed, j, set, DRAW_INPUT, 0, 2, 1.0, u);
            draw(seed, j, set, DRAW_NOISE, 1, 2, noise, e);
            int label = (int)(j % 2);
            double t = 0.5 * (u[0] + 1); /* position along the arm, in (0, 1) */
            double radius = 0.1 + 0.9 * t, angle = 3 * pi * t + label * pi;
            x[0] = radius * cos(angle) + e[0];
            x[1] = radius * sin(angle) + e[1];
            y[0] = label;
        }
    }
    if (kind == MF_DATA_TEACHER)
        teacher_targets(cfg, s);
    if (kind != MF_DATA_SPIRALS && noise > 0) {
        double *e = xmalloc((size_t)d_out * sizeof *e);
        for (int64_t j = 0; j < n; j++) {
            draw(seed, j, set, DRAW_NOISE, 1, d_out, noise, e);
            for (int64_t k = 0; k < d_out; k++)
                s->y[j * d_out + k] += e[k];
        }
        free(e);
    }
}

/* Copy rows [first, first + n) of the file into s. */
static void take_rows(const struct mf_data_file *f, int64_t first, int64_t n,
                      struct mf_samples *s)
{
    int64_t d_in = f->shape.input_dim, y_dim = f->shape.labels ? 1 : f->shape.output_dim;
    alloc_samples(s, n, d_in, y_dim);
    if (n == 0)
        return; /* no rows: the buffers are NULL */
    memcpy(s->x, f->x + first * d_in, (size_t)(n * d_in) * sizeof(double));
    memcpy(s->y, f->y + first * y_dim, (size_t)(n * y_dim) * sizeof(double));
}

void data_build(const struct mf_config *cfg, const struct mf_data_file *file,
                struct mf_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    ds->d_out = cfg->data.output_dim;
    if (cfg->data.kind == MF_DATA_FILE) {
        ds->labels = file->shape.labels;
        take_rows(file, 0, cfg->data.samples, &ds->train);
        take_rows(file, file->shape.rows - cfg->data.test_samples, cfg->data.test_samples,
                  &ds->test);
    } else {
        ds->labels = cfg->data.kind == MF_DATA_SPIRALS;
        generate(cfg, SET_TRAIN, cfg->data.samples, &ds->train);
        generate(cfg, SET_TEST, cfg->data.test_samples, &ds->test);
    }
}

static void free_samples(struct mf_samples *s)
{
    free(s->x);
    free(s->y);
    s->x = s->y = NULL;
}

void data_free(struct mf_dataset *ds)
{
    free_samples(&ds->train);
    free_samples(&ds->test);
}

/* ---- data files (HDF5) ---- */

/* Read a whole 1-D or 2-D dataset as doubles. Returns 0 or -1 with err. */
static int read_matrix(hid_t file, const char *path, const char *name, int *rank,
                       hsize_t dims[2], double **out, int *is_integer, char *err, size_t errlen)
{
    int status = -1;
    hid_t dset = H5I_INVALID_HID, space = H5I_INVALID_HID, type = H5I_INVALID_HID;
    *out = NULL;
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) {
        log_file_error(err, errlen, "data.file", path, "no dataset '/%s'", name);
        goto out;
    }
    if ((dset = H5Dopen2(file, name, H5P_DEFAULT)) < 0 || (space = H5Dget_space(dset)) < 0 ||
        (type = H5Dget_type(dset)) < 0) {
        log_file_error(err, errlen, "data.file", path, "cannot open dataset '/%s'", name);
        goto out;
    }
    H5T_class_t cls = H5Tget_class(type);
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        log_file_error(err, errlen, "data.file", path, "dataset '/%s' is not numeric", name);
        goto out;
    }
    *is_integer = cls == H5T_INTEGER;
    *rank = H5Sget_simple_extent_ndims(space);
    dims[1] = 1;
    if (*rank < 1 || *rank > 2) {
        log_file_error(err, errlen, "data.file", path,
                       "dataset '/%s' has %d dimensions (expected 1 or 2)", name, *rank);
        goto out;
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    if (*rank == 1)
        dims[1] = 1;
    size_t count = (size_t)(dims[0] * dims[1]);
    if (count == 0) {
        log_file_error(err, errlen, "data.file", path, "dataset '/%s' is empty", name);
        goto out;
    }
    char what[MF_PATH_MAX + 64];
    snprintf(what, sizeof what, "dataset '/%s' of data.file '%s'", name, path);
    *out = xmalloc_for(what, count, sizeof(double));
    if (H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0) {
        log_file_error(err, errlen, "data.file", path, "cannot read dataset '/%s'", name);
        goto out;
    }
    for (size_t i = 0; i < count; i++)
        if (!isfinite((*out)[i])) {
            log_file_error(err, errlen, "data.file", path,
                           "dataset '/%s' holds a NaN or Inf at element %zu", name, i);
            goto out;
        }
    status = 0;
out:
    if (status != 0) {
        free(*out);
        *out = NULL;
    }
    if (type >= 0)
        H5Tclose(type);
    if (space >= 0)
        H5Sclose(space);
    if (dset >= 0)
        H5Dclose(dset);
    return status;
}

int data_read_file(const char *path, struct mf_data_file *f, char *err, size_t errlen)
{
    int status = -1, xrank, yrank, xint, yint;
    hsize_t xdims[2], ydims[2];
    hid_t file = H5I_INVALID_HID;
    memset(f, 0, sizeof *f);
    char why[256];
    file = h5_open_read(path, why, sizeof why);
    if (file < 0)
        return log_file_error(err, errlen, "data.file", path, "%s", why);
    if (read_matrix(file, path, "x", &xrank, xdims, &f->x, &xint, err, errlen) ||
        read_matrix(file, path, "y", &yrank, ydims, &f->y, &yint, err, errlen))
        goto out;
    if (xrank != 2) {
        log_file_error(err, errlen, "data.file", path, "dataset '/x' must be 2-D [n][d_in]");
        goto out;
    }
    if (ydims[0] != xdims[0]) {
        log_file_error(err, errlen, "data.file", path, "'/x' has %llu rows but '/y' has %llu",
                   (unsigned long long)xdims[0], (unsigned long long)ydims[0]);
        goto out;
    }
    f->shape.rows = (int64_t)xdims[0];
    f->shape.input_dim = (int64_t)xdims[1];
    f->shape.labels = yint && yrank == 1;
    if (f->shape.labels) {
        int64_t classes = 0;
        for (int64_t j = 0; j < f->shape.rows; j++) {
            if (f->y[j] < 0 || f->y[j] >= MF_MAX_CLASSES) {
                char why[64] = "negative";
                if (f->y[j] >= 0)
                    snprintf(why, sizeof why, "not below %d, the most classes", MF_MAX_CLASSES);
                log_file_error(err, errlen, "data.file", path, "label y[%lld] = %.17g is %s",
                               (long long)j, f->y[j], why);
                goto out;
            }
            if ((int64_t)f->y[j] + 1 > classes)
                classes = (int64_t)f->y[j] + 1;
        }
        f->shape.output_dim = classes;
    } else {
        f->shape.output_dim = (int64_t)ydims[1];
    }
    status = 0;
out:
    H5Fclose(file);
    if (status != 0)
        data_file_free(f);
    return status;
}

void data_file_free(struct mf_data_file *f)
{
    free(f->x);
    free(f->y);
    f->x = f->y = NULL;
}
