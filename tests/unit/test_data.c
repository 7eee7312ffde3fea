/*
 * Tests of data: generated sets are deterministic and nested, labels are
 * well formed, the teacher is realizable, and data files are read (or
 * rejected with a message naming the file and the problem).
 */
#include "mpi_cmocka.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "data.h"
#include "model.h"

static void resolved(struct mf_config *cfg, int kind, int loss, int64_t samples)
{
    char err[MF_ERR_MAX];
    config_defaults(cfg);
    cfg->data.kind = kind;
    cfg->train.loss = loss;
    cfg->data.samples = samples;
    cfg->data.test_samples = 10;
    if (config_resolve(cfg, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
}

/* More samples extend a set: the first ones are unchanged; test differs. */
static void test_generated_sets_are_nested(void **state)
{
    (void)state;
    const int kinds[] = {MF_DATA_TEACHER, MF_DATA_SINE, MF_DATA_SPIRALS};
    for (int i = 0; i < 3; i++) {
        int loss = kinds[i] == MF_DATA_SPIRALS ? MF_LOSS_CROSS_ENTROPY : MF_LOSS_MSE;
        struct mf_config a, b;
        struct mf_dataset da, db;
        resolved(&a, kinds[i], loss, 20);
        resolved(&b, kinds[i], loss, 50);
        data_build(&a, NULL, &da);
        data_build(&b, NULL, &db);
        assert_int_equal(da.train.n, 20);
        assert_int_equal(db.train.n, 50);
        assert_memory_equal(da.train.x, db.train.x, 20 * da.train.d_in * sizeof(double));
        assert_memory_equal(da.train.y, db.train.y, 20 * da.train.y_dim * sizeof(double));
        assert_memory_equal(da.test.x, db.test.x, 10 * da.test.d_in * sizeof(double));
        assert_memory_not_equal(da.train.x, da.test.x, 10 * da.test.d_in * sizeof(double));
        data_free(&da);
        data_free(&db);
    }
}

static void test_spirals_and_sine(void **state)
{
    (void)state;
    struct mf_config cfg;
    struct mf_dataset ds;
    resolved(&cfg, MF_DATA_SPIRALS, MF_LOSS_CROSS_ENTROPY, 100);
    data_build(&cfg, NULL, &ds);
    assert_int_equal(ds.labels, 1);
    assert_int_equal(ds.d_out, 2);
    int ones = 0;
    for (int j = 0; j < 100; j++) {
        assert_true(ds.train.y[j] == 0 || ds.train.y[j] == 1);
        ones += ds.train.y[j] == 1;
        double r = hypot(ds.train.x[2 * j], ds.train.x[2 * j + 1]);
        assert_true(r > 0.09 && r < 1.01);
    }
    assert_int_equal(ones, 50);
    data_free(&ds);

    resolved(&cfg, MF_DATA_SINE, MF_LOSS_MSE, 30);
    data_build(&cfg, NULL, &ds);
    for (int j = 0; j < 30; j++) {
        assert_true(fabs(ds.train.x[j]) < 1);
        assert_close(ds.train.y[j], sin(M_PI * ds.train.x[j]), 1e-15, 1e-15);
    }
    data_free(&ds);
}

/* The teacher's targets are the outputs of a ResNet that the student can
 * equal exactly: a student made of the teacher's particles has zero loss. */
static void test_teacher_is_realizable(void **state)
{
    (void)state;
    struct mf_config cfg;
    struct mf_dataset ds;
    resolved(&cfg, MF_DATA_TEACHER, MF_LOSS_MSE, 40);
    data_build(&cfg, NULL, &ds);
    struct mf_config student = cfg;
    student.model.layers = cfg.data.teacher_layers;
    student.model.width = cfg.data.teacher_width;
    struct mf_model m;
    model_create(&m, &student, ds.d_out, MPI_COMM_SELF);
    particles_init(&m.particles, cfg.init.u_std, cfg.init.w_std, cfg.init.b_std,
                   (uint64_t)cfg.data.seed, RNG_TEACHER);
    const int64_t n = ds.train.n, D = cfg.model.dim;
    double *X = xmalloc((size_t)(n * D) * sizeof(double)), *drift = xmalloc((size_t)(n * D) * 8);
    model_pad_input(&m, n, ds.train.d_in, ds.train.x, X);
    model_forward(&m, n, X, 0, NULL, drift);
    assert_true(model_loss(&m, n, X, ds.train.y, NULL, NULL) < 1e-30);
    /* ... and the targets are not the trivial identity readout. */
    double moved = 0;
    for (int64_t j = 0; j < n; j++)
        moved += fabs(ds.train.y[j] - ds.train.x[j * ds.train.d_in]);
    assert_true(moved / n > 1e-3);
    free(X), free(drift);
    model_destroy(&m);
    data_free(&ds);
}

/* ---- files ---- */

static char path[128];
static int bad_label; /* when not 0, integer label 7 */

static void write_file(const char *xname, int rows, int cols, const char *yname, int yrows,
                       int ycols, int integer_y, double poison)
{
    snprintf(path, sizeof path, "/tmp/mfres-test-data-%d-%d.h5", (int)getpid(), test_rank);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    double x[64 * 8];
    for (int i = 0; i < rows * cols; i++)
        x[i] = i == 5 ? poison : 0.5 * i;
    hsize_t xd[2] = {(hsize_t)rows, (hsize_t)cols};
    hid_t s = H5Screate_simple(2, xd, NULL);
    hid_t d = H5Dcreate2(f, xname, H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
    H5Dclose(d), H5Sclose(s);
    hsize_t yd[2] = {(hsize_t)yrows, (hsize_t)ycols};
    s = H5Screate_simple(ycols ? 2 : 1, yd, NULL);
    if (integer_y) {
        int y[64];
        for (int i = 0; i < yrows; i++)
            y[i] = i == 7 && bad_label ? bad_label : i % 3;
        d = H5Dcreate2(f, yname, H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
    } else {
        double y[64 * 8];
        for (int i = 0; i < yrows * (ycols ? ycols : 1); i++)
            y[i] = -1.0 * i;
        d = H5Dcreate2(f, yname, H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
    }
    H5Dclose(d), H5Sclose(s), H5Fclose(f);
}

static void expect_error(const char *needle)
{
    struct mf_data_file file;
    char err[MF_ERR_MAX];
    assert_int_equal(data_read_file(path, &file, err, sizeof err), -1);
    if (!strstr(err, needle) || !strstr(err, path))
        fail_msg("message \"%s\" lacks \"%s\" or the path", err, needle);
    assert_null(file.x);
}

static void test_file_with_labels_and_split(void **state)
{
    (void)state;
    write_file("x", 30, 4, "y", 30, 0, 1, 2.5);
    struct mf_data_file file;
    char err[MF_ERR_MAX];
    assert_int_equal(data_read_file(path, &file, err, sizeof err), 0);
    assert_int_equal(file.shape.rows, 30);
    assert_int_equal(file.shape.input_dim, 4);
    assert_int_equal(file.shape.output_dim, 3);
    assert_true(file.shape.labels);

    struct mf_config cfg;
    config_defaults(&cfg);
    cfg.data.kind = MF_DATA_FILE;
    snprintf(cfg.data.file, sizeof cfg.data.file, "%s", path);
    cfg.train.loss = MF_LOSS_CROSS_ENTROPY;
    cfg.data.samples = 0;
    cfg.data.test_samples = 8;
    assert_int_equal(config_resolve(&cfg, &file.shape, err, sizeof err), 0);
    struct mf_dataset ds;
    data_build(&cfg, &file, &ds);
    assert_int_equal(ds.train.n, 22);
    assert_int_equal(ds.test.n, 8);
    assert_true(ds.train.x[1] == 0.5 && ds.train.y[4] == 1);
    assert_true(ds.test.x[0] == 0.5 * 22 * 4 && ds.test.y[0] == 22 % 3);
    data_free(&ds);
    data_file_free(&file);
    unlink(path);
}

static void test_file_with_targets(void **state)
{
    (void)state;
    write_file("x", 10, 2, "y", 10, 3, 0, 1.0);
    struct mf_data_file file;
    char err[MF_ERR_MAX];
    assert_int_equal(data_read_file(path, &file, err, sizeof err), 0);
    assert_false(file.shape.labels);
    assert_int_equal(file.shape.output_dim, 3);
    data_file_free(&file);
    unlink(path);
}

/* No test samples, for every kind: an empty test set, no buffers touched
 * (under UBSan a NULL passed to memcpy or memset would stop the test). */
static void test_no_test_samples(void **state)
{
    (void)state;
    const int kinds[] = {MF_DATA_TEACHER, MF_DATA_SINE, MF_DATA_SPIRALS, MF_DATA_FILE};
    write_file("x", 10, 2, "y", 10, 3, 0, 1.0);
    for (int i = 0; i < 4; i++) {
        struct mf_config cfg;
        struct mf_dataset ds;
        struct mf_data_file file = {0};
        char err[MF_ERR_MAX];
        config_defaults(&cfg);
        cfg.data.kind = kinds[i];
        cfg.train.loss = kinds[i] == MF_DATA_SPIRALS ? MF_LOSS_CROSS_ENTROPY : MF_LOSS_MSE;
        cfg.data.samples = 10;
        cfg.data.test_samples = 0;
        if (kinds[i] == MF_DATA_FILE) {
            snprintf(cfg.data.file, sizeof cfg.data.file, "%s", path);
            assert_int_equal(data_read_file(path, &file, err, sizeof err), 0);
        }
        if (config_resolve(&cfg, kinds[i] == MF_DATA_FILE ? &file.shape : NULL, err,
                           sizeof err) != 0)
            fail_msg("%s", err);
        data_build(&cfg, &file, &ds);
        assert_int_equal(ds.test.n, 0);
        assert_int_equal(ds.train.n, 10);
        data_free(&ds);
        data_file_free(&file);
    }
    unlink(path);
}

static void test_bad_files(void **state)
{
    (void)state;
    write_file("x", 10, 2, "labels", 10, 0, 1, 1.0);
    expect_error("no dataset '/y'");
    write_file("x", 10, 2, "y", 9, 0, 1, 1.0);
    expect_error("'/x' has 10 rows but '/y' has 9");
    write_file("x", 10, 2, "y", 10, 0, 0, NAN);
    expect_error("dataset '/x' holds a NaN or Inf at element 5");
    write_file("y", 10, 2, "x", 10, 0, 0, 1.0);
    expect_error("dataset '/x' must be 2-D");
    bad_label = -2;
    write_file("x", 10, 2, "y", 10, 0, 1, 1.0);
    expect_error("label y[7] = -2 is negative");
    bad_label = 1000000; /* named as the file's row, not as the model.dim it implies */
    write_file("x", 10, 2, "y", 10, 0, 1, 1.0);
    expect_error("label y[7] = 1000000 is not below 65536, the most classes");
    bad_label = 0;
    FILE *f = fopen(path, "w");
    fputs("x,y\n1,2\n", f);
    fclose(f);
    expect_error("not an HDF5 file");
    unlink(path);
    expect_error("cannot open");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_generated_sets_are_nested),
    cmocka_unit_test(test_spirals_and_sine),
    cmocka_unit_test(test_teacher_is_realizable),
    cmocka_unit_test(test_file_with_labels_and_split),
    cmocka_unit_test(test_file_with_targets),
    cmocka_unit_test(test_no_test_samples),
    cmocka_unit_test(test_bad_files),
};
MPI_CMOCKA_MAIN(tests)
