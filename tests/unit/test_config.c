/*
 * Tests of config: defaults, parsing, overrides, validation messages, and
 * the resolved INI reading back to the same configuration.
 */
#include "mpi_cmocka.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* Write text to a per-rank temporary file; returns its path (static buffer). */
static const char *write_ini(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/mfres-test-config-%d-%d.ini", (int)getpid(), test_rank);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Read text over the defaults; returns the status, message in err. */
static int read_text(struct mf_config *cfg, const char *text, char *err)
{
    config_defaults(cfg);
    const char *path = write_ini(text);
    int status = config_read_file(cfg, path, err, MF_ERR_MAX);
    unlink(path);
    return status;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle))
        fail_msg("message \"%s\" does not contain \"%s\"", haystack, needle);
}

static void test_defaults(void **state)
{
    (void)state;
    struct mf_config cfg;
    config_defaults(&cfg);
    assert_int_equal(cfg.model.layers, 4);
    assert_int_equal(cfg.model.width, 256);
    assert_int_equal(cfg.model.activation, MF_ACT_TANH);
    assert_int_equal(cfg.data.kind, MF_DATA_TEACHER);
    assert_int_equal(cfg.train.batch, 0);
    assert_string_equal(cfg.output.dir, "mfres-run");
    char err[MF_ERR_MAX];
    assert_int_equal(config_resolve(&cfg, NULL, err, sizeof err), 0);
    assert_int_equal(cfg.data.input_dim, 4);
    assert_int_equal(cfg.data.output_dim, 1);
    assert_int_equal(cfg.model.dim, 4);
}

static void test_parse_all_types(void **state)
{
    (void)state;
    struct mf_config cfg;
    char err[MF_ERR_MAX];
    int status = read_text(&cfg,
                           "; comment\n[model]\nlayers = 7\nactivation = softplus\nalpha = 2.5\n"
                           "[data]\nkind = spirals\nfile = some/path.h5\n"
                           "[train]\nloss = cross_entropy\norder = shuffle\n",
                           err);
    assert_int_equal(status, 0);
    assert_int_equal(cfg.model.layers, 7);
    assert_int_equal(cfg.model.activation, MF_ACT_SOFTPLUS);
    assert_true(cfg.model.alpha == 2.5);
    assert_int_equal(cfg.data.kind, MF_DATA_SPIRALS);
    assert_string_equal(cfg.data.file, "some/path.h5");
    assert_int_equal(cfg.train.order, MF_ORDER_SHUFFLE);
}

static void test_errors_name_line_and_key(void **state)
{
    (void)state;
    struct mf_config cfg;
    char err[MF_ERR_MAX];
    assert_int_equal(read_text(&cfg, "[model]\nlayers = 2\nwidht = 3\n", err), -1);
    assert_contains(err, ":3: [model] widht: unknown key");
    assert_int_equal(read_text(&cfg, "[model]\nwidth = -3\n", err), -1);
    assert_contains(err, ":2: [model] width: -3 is out of range (must be >= 1)");
    assert_int_equal(read_text(&cfg, "[model]\nactivation = swish\n", err), -1);
    assert_contains(err, ":2: [model] activation: unknown value 'swish'");
    assert_contains(err, "tanh, relu, sigmoid, softplus");
    assert_int_equal(read_text(&cfg, "[modle]\nwidth = 3\n", err), -1);
    assert_contains(err, ":2: [modle]: unknown section");
    assert_int_equal(read_text(&cfg, "[train]\nlr = fast\n", err), -1);
    assert_contains(err, "[train] lr: 'fast' is not a finite number");
    assert_int_equal(read_text(&cfg, "[train]\nlr = 0\n", err), -1);
    assert_contains(err, "[train] lr: 0 is out of range (must be > 0)");
    assert_int_equal(read_text(&cfg, "[train]\nsteps = 12x\n", err), -1);
    assert_contains(err, "[train] steps: '12x' is not an integer");
    assert_int_equal(read_text(&cfg, "[train]\nsteps = 1\n\nsteps = 2\n", err), -1);
    assert_contains(err, ":4: [train] steps: given twice (first on line 2)");
    assert_int_equal(read_text(&cfg, "[train]\nthis line has no equals sign\n", err), -1);
    assert_contains(err, ":2: syntax error");
    assert_int_equal(read_text(&cfg, "width = 3\n", err), -1);
    assert_contains(err, ":1: key 'width' outside any [section]");
    config_defaults(&cfg);
    assert_int_equal(config_read_file(&cfg, "/nonexistent/x.ini", err, sizeof err), -1);
    assert_contains(err, "/nonexistent/x.ini: cannot open");
}

static void test_set_overrides(void **state)
{
    (void)state;
    struct mf_config cfg;
    char err[MF_ERR_MAX];
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "model.width=1000", err, sizeof err), 0);
    assert_int_equal(cfg.model.width, 1000);
    assert_int_equal(config_set(&cfg, "output.dir=a=b", err, sizeof err), 0);
    assert_string_equal(cfg.output.dir, "a=b");
    assert_int_equal(config_set(&cfg, "model.width=0", err, sizeof err), -1);
    assert_contains(err, "--set model.width=0: [model] width: 0 is out of range");
    assert_int_equal(config_set(&cfg, "model.depth=3", err, sizeof err), -1);
    assert_contains(err, "--set model.depth=3: unknown key");
    assert_int_equal(config_set(&cfg, "nosuch.key=3", err, sizeof err), -1);
    assert_contains(err, "unknown section");
    assert_int_equal(config_set(&cfg, "width=3", err, sizeof err), -1);
    assert_contains(err, "expected section.key=value");
}

static void test_resolve_checks_combinations(void **state)
{
    (void)state;
    struct mf_config cfg;
    char err[MF_ERR_MAX];

    config_defaults(&cfg);
    cfg.train.batch = 1000;
    assert_int_equal(config_resolve(&cfg, NULL, err, sizeof err), -1);
    assert_contains(err, "train.batch = 1000 is larger than data.samples = 256");

    config_defaults(&cfg);
    cfg.data.kind = MF_DATA_SPIRALS;
    assert_int_equal(config_resolve(&cfg, NULL, err, sizeof err), -1);
    assert_contains(err, "class labels need train.loss = cross_entropy");

    config_defaults(&cfg);
    cfg.train.loss = MF_LOSS_CROSS_ENTROPY;
    assert_int_equal(config_resolve(&cfg, NULL, err, sizeof err), -1);
    assert_contains(err, "cross_entropy needs class labels");

    config_defaults(&cfg);
    cfg.model.dim = 2;
    assert_int_equal(config_resolve(&cfg, NULL, err, sizeof err), -1);
    assert_contains(err, "model.dim = 2 is smaller than data.input_dim = 4");

    config_defaults(&cfg);
    cfg.data.kind = MF_DATA_FILE;
    assert_int_equal(config_resolve(&cfg, NULL, err, sizeof err), -1);
    assert_contains(err, "data.kind = file needs data.file");

    config_defaults(&cfg);
    cfg.train.share_work = MF_SHARE_NODE;
    assert_int_equal(config_resolve(&cfg, NULL, err, sizeof err), 0);
    cfg.train.balance_every = 5;
    assert_int_equal(config_resolve(&cfg, NULL, err, sizeof err), -1);
    assert_contains(err, "train.share_work = node and train.balance_every = 5 exclude each other");
    config_defaults(&cfg); /* auto, the default, gives way to load balancing */
    assert_int_equal(cfg.train.share_work, MF_SHARE_AUTO);
    cfg.train.balance_every = 5;
    assert_int_equal(config_resolve(&cfg, NULL, err, sizeof err), 0);

    /* A file fills in the zero defaults and must agree with given values. */
    struct mf_data_shape shape = {.rows = 100, .input_dim = 64, .output_dim = 10, .labels = 1};
    config_defaults(&cfg);
    cfg.data.kind = MF_DATA_FILE;
    strcpy(cfg.data.file, "digits.h5");
    cfg.train.loss = MF_LOSS_CROSS_ENTROPY;
    cfg.data.samples = 0;
    cfg.data.test_samples = 30;
    assert_int_equal(config_resolve(&cfg, &shape, err, sizeof err), 0);
    assert_int_equal(cfg.data.samples, 70);
    assert_int_equal(cfg.model.dim, 64);
    assert_int_equal(cfg.data.output_dim, 10);
    cfg.data.input_dim = 63;
    assert_int_equal(config_resolve(&cfg, &shape, err, sizeof err), -1);
    assert_contains(err, "data.input_dim = 63 but data.file 'digits.h5' has 64 input columns");
}

/* config_write's text reads back to an identical configuration. */
static void test_write_reads_back(void **state)
{
    (void)state;
    struct mf_config a, b;
    char err[MF_ERR_MAX], text[8192];
    config_defaults(&a);
    assert_int_equal(config_set(&a, "train.lr=0.1234567890123456789", err, sizeof err), 0);
    assert_int_equal(config_set(&a, "model.activation=relu", err, sizeof err), 0);
    assert_int_equal(config_resolve(&a, NULL, err, sizeof err), 0);
    FILE *f = fmemopen(text, sizeof text, "w");
    config_write(&a, f);
    fclose(f);
    assert_int_equal(read_text(&b, text, err), 0);
    assert_int_equal(config_resolve(&b, NULL, err, sizeof err), 0);
    assert_memory_equal(&a, &b, sizeof a);
}

/* Every path key takes exactly the longest value that config_write's line
 * `key = value` can carry through libinih (CONFIG_LINE_MAX characters),
 * and such a configuration reads back whole; one character more is
 * refused with the key and its limit. A longer line in a file is an error
 * naming its line, never a line cut in two. */
static void test_paths_up_to_the_line_limit(void **state)
{
    (void)state;
    const char *keys[] = {"output.dir", "data.file", "output.mpio_hints"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        struct mf_config a, b;
        char err[MF_ERR_MAX], assignment[512], text[8192], want[128];
        const char *name = strchr(keys[i], '.') + 1;
        const size_t most = CONFIG_LINE_MAX - strlen(name) - strlen(" = ");
        config_defaults(&a);
        int n = snprintf(assignment, sizeof assignment, "%s=", keys[i]);
        for (size_t k = 0; k < most; k++)
            assignment[n++] = k % 10 == 9 ? '/' : (!strcmp(name, "mpio_hints") && k == 3 ? '='
                                                                                       : 'a');
        assignment[n] = 0;
        assert_int_equal(config_set(&a, assignment, err, sizeof err), 0);
        FILE *f = fmemopen(text, sizeof text, "w");
        config_write(&a, f);
        fclose(f);
        assert_int_equal(read_text(&b, text, err), 0);
        assert_memory_equal(&a, &b, sizeof a);
        strcat(assignment, "b");
        assert_int_equal(config_set(&a, assignment, err, sizeof err), -1);
        snprintf(want, sizeof want, "a path of %zu characters; this key takes at most %zu",
                 most + 1, most);
        assert_contains(err, want);
        assert_contains(err, name);
    }
    char text[600], err[MF_ERR_MAX];
    struct mf_config cfg;
    snprintf(text, sizeof text, "[model]\nlayers = 3\n; %0250d\nwidth = 9\n", 0);
    assert_int_equal(read_text(&cfg, text, err), -1);
    assert_contains(err, ":3: a line longer than 197 characters (libinih's limit)");
    snprintf(text, sizeof text, "[model]\n; %0195d\nwidth = 9\n", 0); /* 197 + newline */
    assert_int_equal(read_text(&cfg, text, err), 0);
    assert_int_equal(cfg.model.width, 9);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults),
    cmocka_unit_test(test_parse_all_types),
    cmocka_unit_test(test_errors_name_line_and_key),
    cmocka_unit_test(test_set_overrides),
    cmocka_unit_test(test_resolve_checks_combinations),
    cmocka_unit_test(test_write_reads_back),
    cmocka_unit_test(test_paths_up_to_the_line_limit),
};
MPI_CMOCKA_MAIN(tests)
