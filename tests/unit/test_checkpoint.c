/*
 * Tests of checkpoint: a write -> read round trip on every rank count of the
 * runner (particles, data, configuration, history and probe outputs come
 * back exactly), the header, every validation error path of
 * checkpoint_check on files damaged by hand with HDF5's own API, and the
 * properties of the dataset checksum that the parallel writer and reader
 * rely on.
 */
#include "mpi_cmocka.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "comm.h"
#include "config.h"
#include "data.h"
#include "h5.h"
#include "history.h"
#include "model.h"

static char dir[256]; /* a directory of rank 0's, known to every rank */

static void make_dir(void)
{
    if (test_rank == 0) {
        strcpy(dir, "/tmp/mfres-test-checkpoint-XXXXXX");
        assert_non_null(mkdtemp(dir));
    }
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
}

static void resolved(struct mf_config *cfg, int64_t seed)
{
    char err[MF_ERR_MAX];
    config_defaults(cfg);
    cfg->model.layers = 3;
    cfg->model.width = 300; /* three chunks: several ranks own some */
    cfg->model.dim = 5;
    cfg->data.samples = 11;
    cfg->data.test_samples = 7;
    cfg->data.probes = 5;
    cfg->init.seed = seed;
    if (config_resolve(cfg, NULL, err, sizeof err) != 0)
        fail_msg("%s", err);
}

/* Three history rows with outputs, as training would leave them. */
static void history_rows(struct mf_history *h, int64_t out_size)
{
    memset(h, 0, sizeof *h);
    h->out_size = out_size;
    double *out = malloc((size_t)out_size * sizeof *out);
    for (int r = 0; r < 3; r++) {
        struct mf_observables o = {.step = 10 * r, .time = 5.0 * r, .loss = 1.0 / (r + 1),
                                   .test_loss = 2.0 / (r + 1), .test_accuracy = 0.5,
                                   .grad_norm = 3.0 + r, .shallow_gap = 0.25,
                                   .seconds_per_step = 0.125};
        for (int64_t i = 0; i < out_size; i++)
            out[i] = r + 0.001 * (double)i;
        history_append(h, &o, out);
    }
    free(out);
}

static void write_good(const char *path, struct mf_config *cfg, struct mf_dataset *ds,
                       struct mf_model *m, struct mf_history *h)
{
    resolved(cfg, 1);
    data_build(cfg, NULL, ds);
    model_create(m, cfg, ds->d_out, MPI_COMM_WORLD);
    history_rows(h, cfg->data.probes * ds->d_out);
    checkpoint_write(path, CHECKPOINT_FULL, cfg, ds, m, h, 30);
}

static void test_round_trip(void **state)
{
    (void)state;
    char path[512], err[MF_ERR_MAX] = "";
    snprintf(path, sizeof path, "%s/round.h5", dir);
    struct mf_config cfg, other;
    struct mf_dataset ds, back = {0};
    struct mf_model m, m2;
    struct mf_history h, h2 = {0};
    write_good(path, &cfg, &ds, &m, &h);

    struct checkpoint_header hdr;
    assert_int_equal(checkpoint_check(path, &hdr, err, sizeof err, MPI_COMM_WORLD), 0);
    assert_int_equal(hdr.kind, CHECKPOINT_FULL);
    assert_int_equal(hdr.step, 30);
    assert_close(hdr.time, 30 * cfg.train.lr, 0, 0);
    assert_int_equal(hdr.ranks, test_ranks);
    assert_int_equal(config_compare_for_restart(&cfg, &hdr.cfg, err, sizeof err), 0);

    resolved(&other, 2); /* other particles, which the read must replace */
    model_create(&m2, &other, ds.d_out, MPI_COMM_WORLD);
    if (m.particles.count > 0)
        assert_memory_not_equal(m.particles.u, m2.particles.u, sizeof(double));
    checkpoint_read(path, &back, &m2, &h2);
    const struct mf_particles *p = &m.particles, *q = &m2.particles;
    size_t n = (size_t)(p->layers * p->count);
    assert_int_equal(q->count, p->count);
    if (n) {
        assert_memory_equal(p->u, q->u, n * (size_t)p->dim * sizeof(double));
        assert_memory_equal(p->w, q->w, n * (size_t)p->dim * sizeof(double));
        assert_memory_equal(p->b, q->b, n * sizeof(double));
    }
    assert_int_equal(back.train.n, ds.train.n);
    assert_int_equal(back.test.n, ds.test.n);
    assert_memory_equal(back.train.x, ds.train.x, (size_t)(ds.train.n * ds.train.d_in) * 8);
    assert_memory_equal(back.test.y, ds.test.y, (size_t)(ds.test.n * ds.test.y_dim) * 8);
    assert_int_equal(h2.count, 3);
    assert_int_equal(h2.out_size, h.out_size);
    assert_memory_equal(h2.rows, h.rows, 3 * sizeof *h.rows);
    assert_memory_equal(h2.outputs, h.outputs, (size_t)(3 * h.out_size) * sizeof(double));

    history_free(&h);
    history_free(&h2);
    model_destroy(&m);
    model_destroy(&m2);
    data_free(&ds);
    data_free(&back);
}

/* Damage a copy of a good checkpoint on rank 0. */
enum damage {
    MISSING, TEXT, TRUNCATED, NO_H5MD, CREATOR, VERSION, INCOMPLETE, HEADER, NO_CONFIG, STRIDE,
    SHAPE, OBSERVABLES, OUTPUTS, DATA, CHANGED, NO_CHECKSUM
};

/* Replace an integer attribute of obj with n values. */
static void set_ints(hid_t f, const char *obj, const char *name, hid_t type, int n,
                     const void *values)
{
    assert_true(H5Adelete_by_name(f, obj, name, H5P_DEFAULT) >= 0);
    hsize_t dims[1] = {(hsize_t)n};
    hid_t space = n > 1 ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    hid_t a = H5Acreate2(o, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, type, values);
    H5Aclose(a), H5Oclose(o), H5Sclose(space);
}

static void damage(const char *good, const char *path, enum damage what)
{
    if (test_rank != 0)
        return;
    if (what == MISSING)
        return;
    FILE *in = fopen(good, "rb"), *out = fopen(path, "wb");
    static char buf[1 << 16];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0 && (what != TRUNCATED || total < 2048)) {
        fwrite(buf, 1, what == TRUNCATED ? 2048 : n, out);
        total += n;
    }
    fclose(in);
    fclose(out);
    if (what == TEXT) {
        out = fopen(path, "w");
        fputs("x,y\n1,2\n", out);
        fclose(out);
    }
    if (what == TEXT || what == TRUNCATED)
        return;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_file_locking(fapl, 0, 1);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    assert_true(f >= 0);
    if (what == CREATOR) {
        assert_true(H5Adelete_by_name(f, "h5md/creator", "name", H5P_DEFAULT) >= 0);
        hid_t t = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR), g = H5Gopen2(f, "h5md/creator", H5P_DEFAULT);
        H5Tset_size(t, 5);
        hid_t a = H5Acreate2(g, "name", t, space, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, "other");
        H5Aclose(a), H5Gclose(g), H5Sclose(space), H5Tclose(t);
    } else if (what == INCOMPLETE) {
        assert_true(H5Adelete_by_name(f, "checkpoint", "complete", H5P_DEFAULT) >= 0);
    } else if (what == NO_H5MD) {
        assert_true(H5Ldelete(f, "h5md", H5P_DEFAULT) >= 0);
    } else if (what == VERSION) {
        const int version[2] = {2, 0};
        set_ints(f, "h5md", "version", H5T_NATIVE_INT, 2, version);
    } else if (what == HEADER) {
        assert_true(H5Adelete_by_name(f, "checkpoint", "step", H5P_DEFAULT) >= 0);
    } else if (what == NO_CONFIG) {
        assert_true(H5Ldelete(f, "parameters/config", H5P_DEFAULT) >= 0);
    } else if (what == CHANGED) { /* one particle value, as a flipped bit would */
        hid_t d = H5Dopen2(f, "particles/blocks/u/value", H5P_DEFAULT);
        hid_t space = H5Dget_space(d), one = H5Screate_simple(1, (hsize_t[]){1}, NULL);
        hsize_t at[3] = {0, 417, 3};
        double v;
        H5Sselect_elements(space, H5S_SELECT_SET, 1, at);
        H5Dread(d, H5T_NATIVE_DOUBLE, one, space, H5P_DEFAULT, &v);
        v = nextafter(v, 2 * v);
        H5Dwrite(d, H5T_NATIVE_DOUBLE, one, space, H5P_DEFAULT, &v);
        H5Sclose(one), H5Sclose(space), H5Dclose(d);
    } else if (what == NO_CHECKSUM) {
        assert_true(H5Adelete_by_name(f, "particles/blocks/id", "checksum", H5P_DEFAULT) >= 0);
    } else if (what == STRIDE) {
        const int64_t stride = 0;
        set_ints(f, "checkpoint", "stride", H5T_NATIVE_INT64, 1, &stride);
    } else {
        const char *name = what == SHAPE         ? "particles/blocks/b/value"
                           : what == OBSERVABLES ? "observables/loss/value"
                           : what == DATA        ? "parameters/data/x_train"
                                                 : "observables/output/value";
        assert_true(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
        if (what != OBSERVABLES) {
            hsize_t dims[2] = {3, 2};
            hid_t space = H5Screate_simple(2, dims, NULL);
            hid_t d = H5Dcreate2(f, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT,
                                 H5P_DEFAULT);
            H5Dclose(d), H5Sclose(space);
        }
    }
    H5Fclose(f);
}

static void test_validation_errors(void **state)
{
    (void)state;
    char good[512];
    snprintf(good, sizeof good, "%s/good.h5", dir);
    struct mf_config cfg;
    struct mf_dataset ds;
    struct mf_model m;
    struct mf_history h;
    write_good(good, &cfg, &ds, &m, &h);
    const struct {
        enum damage what;
        const char *message;
    } cases[] = {
        {MISSING, "cannot open: No such file or directory (rank 0 on HOST)"},
        {TEXT, "not an HDF5 file"},
        {TRUNCATED, "cannot open as HDF5 (truncated or damaged?)"},
        {NO_H5MD, "not an mfres file (no /h5md/creator)"},
        {CREATOR, "not an mfres file (written by 'other')"},
        {VERSION, "H5MD version 2.0, expected 1.1"},
        {INCOMPLETE, "incomplete (no complete = 1 in /checkpoint)"},
        {HEADER, "/checkpoint lacks kind, step, time, stride, ranks or version"},
        {NO_CONFIG, "no configuration (/parameters/config)"},
        {STRIDE, "stored stride, width or dim is not positive"},
        {SHAPE, "dataset 'particles/blocks/b/value' has shape [3][2], expected [1][900]"},
        {OBSERVABLES, "no dataset 'observables/loss/value'"},
        {OUTPUTS, "dataset 'observables/output/value' has shape [3][2], expected [3][5][1]"},
        {DATA, "dataset 'parameters/data/x_train' has shape [3][2], expected [11][4]"},
        {CHANGED, "dataset 'particles/blocks/u/value' does not match its checksum (damaged)"},
        {NO_CHECKSUM, "dataset 'particles/blocks/id' has no checksum"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[600], err[MF_ERR_MAX] = "", want[800];
        snprintf(path, sizeof path, "%s/bad-%zu.h5", dir, i);
        damage(good, path, cases[i].what);
        MPI_Barrier(MPI_COMM_WORLD);
        struct checkpoint_header hdr;
        assert_int_equal(checkpoint_check(path, &hdr, err, sizeof err, MPI_COMM_WORLD), -1);
        snprintf(want, sizeof want, "checkpoint '%s': %s", path, cases[i].message);
        char host[256] = "", *at = strstr(want, "HOST");
        gethostname(host, sizeof host - 1);
        if (at) /* every node checks that it sees the file: the first failing rank's host */
            snprintf(at, sizeof want - (size_t)(at - want), "%s)", host);
        assert_string_equal(err, want); /* the same message on every rank */
    }
    history_free(&h);
    model_destroy(&m);
    data_free(&ds);
}

/* The checksum of a dataset is the same whatever the partition of its
 * elements among ranks, and changes when any one element changes (every bit
 * of every element tried) or two different elements trade places. */
static void test_checksum(void **state)
{
    (void)state;
    enum { N = 97 };
    uint64_t v[N];
    for (int i = 0; i < N; i++)
        v[i] = 0x0123456789abcdefu * (uint64_t)(i + 3) ^ (uint64_t)i << 40;
    const uint64_t whole = h5_checksum(v, N, 8, 0);
    for (int cut = 0; cut <= N; cut += 7)
        assert_true(h5_checksum(v, (uint64_t)cut, 8, 0) +
                        h5_checksum(v + cut, (uint64_t)(N - cut), 8, (uint64_t)cut) ==
                    whole);
    for (int i = 0; i < N; i++)
        for (int bit = 0; bit < 64; bit++) {
            v[i] ^= (uint64_t)1 << bit;
            assert_true(h5_checksum(v, N, 8, 0) != whole);
            v[i] ^= (uint64_t)1 << bit;
        }
    for (int i = 1; i < N; i++) {
        uint64_t t = v[0];
        v[0] = v[i], v[i] = t;
        assert_true(h5_checksum(v, N, 8, 0) != whole);
        v[i] = v[0], v[0] = t;
    }
    /* A fixed-length string is its bytes: 5 one-byte elements. */
    const char text[] = "mfres";
    assert_true(h5_checksum(text, 1, 5, 0) == h5_checksum(text, 5, 1, 0));
    assert_true(h5_checksum(text, 1, 5, 0) != h5_checksum("mfreS", 1, 5, 0));
    /* Narrow integers are their values: 4-byte 7 is 8-byte 7. */
    const uint32_t seven32 = 7;
    const uint64_t seven64 = 7;
    assert_true(h5_checksum(&seven32, 1, 4, 9) == h5_checksum(&seven64, 1, 8, 9));
}

/* The [output] access settings reach the file access property lists: the
 * hints MPI-IO gets, and HDF5's file locking. */
static void info_value(MPI_Info info, const char *name, const char *expect)
{
    char value[64] = "";
    int flag = 0;
    if (info != MPI_INFO_NULL)
        MPI_Info_get(info, name, sizeof value - 1, value, &flag);
    if (!expect)
        assert_false(flag);
    else {
        assert_true(flag);
        assert_string_equal(value, expect);
    }
}

static void test_access_settings(void **state)
{
    (void)state;
    char err[256];
    const struct {
        int locking;
        const char *hints;
        hbool_t use, ignore;
    } cases[] = {{MF_LOCKING_ON, "cb_nodes=1, romio_cb_write=enable", 1, 0},
                 {MF_LOCKING_BEST_EFFORT, "striping_unit=1048576", 1, 1},
                 {MF_LOCKING_OFF, "", 0, 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        assert_int_equal(h5_set_access(cases[c].locking, cases[c].hints, err, sizeof err), 0);
        hid_t fapl = h5_parallel_fapl(MPI_COMM_WORLD);
        MPI_Comm comm = MPI_COMM_NULL;
        MPI_Info info = MPI_INFO_NULL;
        assert_true(H5Pget_fapl_mpio(fapl, &comm, &info) >= 0);
        info_value(info, "cb_nodes", c == 0 ? "1" : NULL);
        info_value(info, "romio_cb_write", c == 0 ? "enable" : NULL);
        info_value(info, "striping_unit", c == 1 ? "1048576" : NULL);
        hbool_t use = 9, ignore = 9;
        assert_true(H5Pget_file_locking(fapl, &use, &ignore) >= 0);
        assert_int_equal(use, cases[c].use);
        assert_int_equal(ignore, cases[c].ignore);
        if (info != MPI_INFO_NULL)
            MPI_Info_free(&info);
        MPI_Comm_free(&comm);
        H5Pclose(fapl);
    }
    const char *bad[] = {"cb_nodes", "cb_nodes=1 =2", "a==b", "cb_nodes=", "a=1,b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(h5_set_access(MF_LOCKING_ON, bad[i], err, sizeof err), -1);
        assert_non_null(strstr(err, "[output] mpio_hints: '"));
        assert_non_null(strstr(err, "' is not name=value"));
    }
    /* A refused setting leaves the last good one. */
    hid_t fapl = h5_parallel_fapl(MPI_COMM_WORLD);
    hbool_t use = 9, ignore = 9;
    H5Pget_file_locking(fapl, &use, &ignore);
    assert_false(use);
    H5Pclose(fapl);
}

static int remove_dir(void **state)
{
    (void)state;
    MPI_Barrier(MPI_COMM_WORLD);
    if (test_rank == 0) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        return system(cmd);
    }
    return 0;
}

static int setup(void **state)
{
    (void)state;
    make_dir();
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_round_trip),
    cmocka_unit_test(test_validation_errors),
    cmocka_unit_test(test_checksum),
    cmocka_unit_test(test_access_settings),
};

MPI_CMOCKA_MAIN_WITH(tests, setup, remove_dir)
