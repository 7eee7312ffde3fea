/*
 * config: the key table and everything derived from it (see config.h).
 *
 * Defaults are stored as text in the table and parsed by the same code as
 * user input, so a default can never bypass validation. Parsing uses
 * libinih's stream interface with a line-counting reader, so every error
 * names the line it came from.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum key_type { KEY_INT, KEY_REAL, KEY_CHOICE, KEY_PATH };

static const char *const activation_names[] = {"tanh", "relu", "sigmoid", "softplus", NULL};
static const char *const architecture_names[] = {"resnet", "shallow", NULL};
static const char *const data_kind_names[] = {"teacher", "sine", "spirals", "file", NULL};
static const char *const order_names[] = {"fixed", "shuffle", NULL};
static const char *const loss_names[] = {"mse", "cross_entropy", NULL};
static const char *const share_names[] = {"off", "node", "auto", NULL};
static const char *const locking_names[] = {"off", "on", "best_effort", NULL};
static const char *const precision_names[] = {"double", "mixed", NULL};

struct key {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset;              /* into struct mf_config */
    const char *def;            /* default, as text */
    double min;                 /* smallest allowed value (KEY_INT, KEY_REAL) */
    int min_open;               /* nonzero: the value must exceed min */
    const char *const *choices; /* KEY_CHOICE: NULL-terminated names */
    const char *help;
};

#define OFF(field) offsetof(struct mf_config, field)
#define INT(sec, key, def, min, help)                                                          \
    {#sec, #key, KEY_INT, OFF(sec.key), def, min, 0, NULL, help}
#define REAL(sec, key, def, min, open, help)                                                   \
    {#sec, #key, KEY_REAL, OFF(sec.key), def, min, open, NULL, help}
#define CHOICE(sec, key, def, names, help)                                                     \
    {#sec, #key, KEY_CHOICE, OFF(sec.key), def, 0, 0, names, help}
#define PATH(sec, key, def, help)                                                              \
    {#sec, #key, KEY_PATH, OFF(sec.key), def, 0, 0, NULL, help}

static const struct key keys[] = {
    INT(model, layers, "4", 1, "number of residual layers L"),
    INT(model, width, "256", 1, "particles (residual blocks) per layer M"),
    INT(model, dim, "0", 0, "state dimension D; 0 = max(input_dim, output_dim)"),
    CHOICE(model, activation, "tanh", activation_names, "sigma: tanh, relu, sigmoid, softplus"),
    REAL(model, alpha, "1", 0, 1, "residual scale: h = alpha / (L M)"),
    CHOICE(model, architecture, "resnet", architecture_names,
           "resnet, or shallow (every block sees the input)"),
    CHOICE(model, precision, "double", precision_names,
           "double, or mixed: particles and kernels in floats, sums exact"),
    REAL(init, u_std, "1", 0, 0, "std of each component of u"),
    REAL(init, w_std, "1", 0, 0, "std of w.x for unit-variance x (components: w_std/sqrt(D))"),
    REAL(init, b_std, "0.5", 0, 0, "std of b"),
    INT(init, seed, "1", 0, "seed of the initial particles"),
    CHOICE(data, kind, "teacher", data_kind_names, "teacher, sine, spirals or file"),
    INT(data, samples, "256", 0, "training samples; 0 (file only) = all rows left after test"),
    INT(data, test_samples, "256", 0, "held-out test samples"),
    INT(data, probes, "64", 0,
        "probe inputs: the first probes test samples (at most test_samples), whose outputs "
        "are recorded at every log row in outputs.h5"),
    INT(data, input_dim, "0", 0, "d_in; 0 = teacher 4, sine 1, spirals 2, file from the file"),
    INT(data, output_dim, "0", 0, "d_out; 0 = teacher 1, sine 1, spirals 2, file from the file"),
    REAL(data, noise, "0", 0, 0, "std of Gaussian noise on targets (spirals: on points)"),
    INT(data, seed, "2", 0, "seed of the data and of the teacher"),
    PATH(data, file, "", "HDF5 file with x [n][d_in] and y [n][d_out] or labels y [n]"),
    INT(data, teacher_layers, "2", 1, "teacher network depth"),
    INT(data, teacher_width, "4", 1, "teacher particles per layer"),
    INT(train, steps, "1000", 0, "number of updates"),
    REAL(train, lr, "0.5", 0, 1, "learning rate eta (mean-field time step)"),
    INT(train, batch, "0", 0, "minibatch size; 0 = full batch"),
    REAL(train, weight_decay, "0", 0, 0, "lambda"),
    REAL(train, temperature, "0", 0, 0, "T; > 0 adds Langevin noise sqrt(2 eta T) xi"),
    CHOICE(train, order, "fixed", order_names, "fixed, or shuffle (new layer order every step)"),
    CHOICE(train, loss, "mse", loss_names, "mse or cross_entropy (integer labels)"),
    INT(train, seed, "3", 0, "seed of minibatches, layer orders and noise"),
    INT(train, balance_every, "0", 0, "move particles to faster ranks every k steps; 0 = off"),
    CHOICE(train, share_work, "auto", share_names,
           "node: ranks of a node compute each other's chunks when done with theirs; "
           "auto: node unless balance_every or too little shared memory; off"),
    PATH(output, dir, "mfres-run", "run directory (--out overrides)"),
    INT(output, log_every, "100", 1, "metrics row and progress line every k steps"),
    REAL(output, progress_seconds, "60", 0, 0,
         "a short progress line (no evaluation) at most this many seconds apart; 0 = off"),
    INT(output, checkpoint_every, "0", 0, "checkpoint every k steps; 0 = only at the end"),
    REAL(output, checkpoint_minutes, "15", 0, 0,
         "checkpoint when this many wall-clock minutes have passed since the last; 0 = off"),
    INT(output, checkpoint_keep, "2", 1, "newest checkpoints kept"),
    INT(output, snapshot_every, "0", 0, "snapshot of the measure every k steps; 0 = none"),
    INT(output, snapshot_stride, "1", 1, "snapshots keep every k-th particle of each layer"),
    REAL(output, max_time, "0", 0, 0, "seconds; checkpoint and exit 3 before; 0 = no limit"),
    PATH(output, mpio_hints, "", "MPI-IO hints of checkpoints and snapshots: name=value ..."),
    CHOICE(output, file_locking, "off", locking_names, "HDF5 file locking: off, on, best_effort"),
};
#define NKEYS ((int)(sizeof keys / sizeof keys[0]))

static void fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const struct key *find_key(const char *section, const char *name)
{
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
            return &keys[i];
    return NULL;
}

static int known_section(const char *section)
{
    for (int i = 0; i < NKEYS; i++)
        if (!strcmp(keys[i].section, section))
            return 1;
    return 0;
}

/* A path is stored in config.ini and in checkpoints as `key = value` and
 * must read back the same: libinih strips spaces around a value and cuts it
 * at an inline comment (" ;"), and a line ends at a newline. Such paths are
 * refused rather than escaped, so config.ini stays plain INI. Returns 0, or
 * -1 with the problem in err. */
static int path_problem(const char *text, char *err, size_t errlen)
{
    const size_t n = strlen(text);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
            return fail(err, errlen, "control character 0x%02x at position %zu of the path "
                        "(a path must read back from config.ini as it was written)",
                        (unsigned)(unsigned char)text[i], i + 1),
                   -1;
    if (n && (text[0] == ' ' || text[n - 1] == ' '))
        return fail(err, errlen, "'%s' begins or ends with a space (config.ini would not keep "
                    "it)", text),
               -1;
    if (strstr(text, " ;"))
        return fail(err, errlen, "'%s' holds ' ;', which config.ini would read as a comment",
                    text),
               -1;
    return 0;
}

/* Parse text into the key's field. Returns 0 or -1 with "problem" in err. */
static int parse_value(struct mf_config *cfg, const struct key *k, const char *text, char *err,
                       size_t errlen)
{
    char *field = (char *)cfg + k->offset;
    char *end;
    errno = 0;
    switch (k->type) {
    case KEY_INT: {
        long long v = strtoll(text, &end, 10);
        if (end == text || *end || errno)
            return fail(err, errlen, "'%s' is not an integer", text), -1;
        if (v < k->min)
            return fail(err, errlen, "%lld is out of range (must be >= %.0f)", v, k->min), -1;
        *(int64_t *)field = v;
        return 0;
    }
    case KEY_REAL: {
        double v = strtod(text, &end);
        const int out_of_range = errno == ERANGE; /* an underflow keeps its tiny value */
        if (end == text || *end || (!out_of_range && !isfinite(v)))
            return fail(err, errlen, "'%s' is not a finite number", text), -1;
        if (!isfinite(v))
            return fail(err, errlen, "'%s' is beyond the range of a double", text), -1;
        if (k->min_open ? !(v > k->min) : !(v >= k->min))
            return fail(err, errlen, "%s is out of range (must be %s %g)", text,
                        k->min_open ? ">" : ">=", k->min),
                   -1;
        *(double *)field = v;
        return 0;
    }
    case KEY_CHOICE:
        for (int i = 0; k->choices[i]; i++)
            if (!strcmp(text, k->choices[i])) {
                *(int *)field = i;
                return 0;
            }
        {
            char names[256] = "";
            for (int i = 0; k->choices[i]; i++) {
                strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
                strncat(names, k->choices[i], sizeof names - strlen(names) - 1);
            }
            return fail(err, errlen, "unknown value '%s' (choose one of: %s)", text, names), -1;
        }
    case KEY_PATH: {
        const size_t most = CONFIG_LINE_MAX - strlen(k->name) - strlen(" = ");
        if (strlen(text) > most)
            return fail(err, errlen, "a path of %zu characters; this key takes at most %zu, as "
                        "config.ini and checkpoints store it on one line '%s = PATH' and "
                        "libinih reads lines of at most %d characters (use a relative path or "
                        "a shorter link)", strlen(text), most, k->name, CONFIG_LINE_MAX),
                   -1;
        if (path_problem(text, err, errlen))
            return -1;
        strcpy(field, text);
        return 0;
    }
    }
    return -1;
}

void config_defaults(struct mf_config *cfg)
{
    char err[MF_ERR_MAX];
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < NKEYS; i++)
        if (parse_value(cfg, &keys[i], keys[i].def, err, sizeof err) != 0)
            abort(); /* a bad default in the table is a programming error */
}

/* State of one file parse: libinih calls the handler line by line. */
struct parse_state {
    struct mf_config *cfg;
    FILE *file;
    int line;                /* lines read so far = line being handled */
    int error_line;          /* first line with an error, 0 if none */
    char message[MF_ERR_MAX];
    int seen_line[sizeof keys / sizeof keys[0]]; /* line a key was set on */
};

/* libinih's reader: one line per call, at most size - 1 bytes. A longer
 * line would be cut into pieces read as lines of their own, so it ends the
 * parse with an error instead. */
static char *read_line(char *buf, int size, void *stream)
{
    struct parse_state *st = stream;
    char *line = fgets(buf, size, st->file);
    if (!line || st->error_line)
        return NULL;
    st->line++;
    const size_t n = strlen(line);
    if (n == (size_t)size - 1 && line[n - 1] != '\n') {
        const int next = fgetc(st->file); /* a newline just past the buffer is this line's */
        if (next != EOF && next != '\n') {
            st->error_line = st->line;
            snprintf(st->message, sizeof st->message, "a line longer than %d characters "
                     "(libinih's limit)", CONFIG_LINE_MAX);
            return NULL;
        }
    }
    return line;
}

static int handle_pair(void *user, const char *section, const char *name, const char *value)
{
    struct parse_state *st = user;
    char problem[MF_ERR_MAX / 2];
    if (st->error_line)
        return 1; /* report only the first error */
    const struct key *k = find_key(section, name);
    if (!k) {
        if (!*section)
            snprintf(problem, sizeof problem, "key '%s' outside any [section]", name);
        else if (!known_section(section))
            snprintf(problem, sizeof problem, "[%s]: unknown section", section);
        else
            snprintf(problem, sizeof problem, "[%s] %s: unknown key", section, name);
    } else if (st->seen_line[k - keys]) {
        snprintf(problem, sizeof problem, "[%s] %s: given twice (first on line %d)", section,
                 name, st->seen_line[k - keys]);
    } else {
        char why[MF_ERR_MAX / 4];
        st->seen_line[k - keys] = st->line;
        if (parse_value(st->cfg, k, value, why, sizeof why) == 0)
            return 1;
        snprintf(problem, sizeof problem, "[%s] %s: %s", section, name, why);
    }
    st->error_line = st->line;
    snprintf(st->message, sizeof st->message, "%s", problem);
    return 0;
}

/* Parse an open stream; label names it in messages. */
static int read_stream(struct mf_config *cfg, FILE *file, const char *path, char *err,
                       size_t errlen)
{
    struct parse_state st = {.cfg = cfg, .file = file};
    int bad_line = ini_parse_stream(read_line, &st, handle_pair, &st);
    if (bad_line == 0 && st.error_line)
        bad_line = st.error_line; /* found by read_line */
    if (bad_line == 0)
        return 0;
    if (bad_line < 0)
        return fail(err, errlen, "%s: cannot read", path), -1;
    if (st.error_line == bad_line)
        fail(err, errlen, "%s:%d: %s", path, bad_line, st.message);
    else
        fail(err, errlen, "%s:%d: syntax error (expected [section] or key = value)", path,
             bad_line);
    return -1;
}

/* A configuration is a text file of at most this many bytes. */
#define CONFIG_MAX_BYTES (1 << 20)

_Static_assert(CONFIG_LINE_MAX + 3 <= INI_MAX_LINE, "libinih's lines are shorter than assumed");

char *config_load_file(const char *path, char *err, size_t errlen)
{
    /* Only regular files: a directory would read as empty, a FIFO or a
     * device could block or never end. */
    struct stat st;
    if (stat(path, &st) != 0)
        return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno)), NULL;
    if (!S_ISREG(st.st_mode))
        return fail(err, errlen, "%s: not a regular file", path), NULL;
    if (st.st_size > CONFIG_MAX_BYTES)
        return fail(err, errlen, "%s: %lld bytes, more than a configuration's %d",
                    path, (long long)st.st_size, CONFIG_MAX_BYTES),
               NULL;
    FILE *file = fopen(path, "r");
    if (!file)
        return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno)), NULL;
    /* Read it whole: a NUL byte would silently cut a line short. */
    char *text = malloc((size_t)st.st_size + 1);
    size_t n = text ? fread(text, 1, (size_t)st.st_size, file) : 0;
    fclose(file);
    if (!text)
        return fail(err, errlen, "%s: out of memory reading it", path), NULL;
    text[n] = 0;
    const char *nul = memchr(text, 0, n);
    if (nul) {
        int line = 1;
        for (const char *c = text; c < nul; c++)
            line += *c == '\n';
        fail(err, errlen, "%s:%d: a NUL byte in the text", path, line);
        free(text);
        return NULL;
    }
    return text;
}

int config_read_file(struct mf_config *cfg, const char *path, char *err, size_t errlen)
{
    char *text = config_load_file(path, err, errlen);
    if (!text)
        return -1;
    const int status = config_read_string(cfg, text, path, err, errlen);
    free(text);
    return status;
}

int config_read_string(struct mf_config *cfg, const char *text, const char *label, char *err,
                       size_t errlen)
{
    FILE *file = fmemopen((void *)text, strlen(text), "r");
    if (!file)
        return fail(err, errlen, "%s: cannot read", label), -1;
    int status = read_stream(cfg, file, label, err, errlen);
    fclose(file);
    return status;
}

int config_set(struct mf_config *cfg, const char *assignment, char *err, size_t errlen)
{
    char section[64], name[64], why[MF_ERR_MAX / 2];
    const char *dot = strchr(assignment, '.');
    const char *eq = strchr(assignment, '=');
    if (!dot || !eq || dot > eq || dot == assignment || eq == dot + 1 ||
        dot - assignment >= (long)sizeof section || eq - dot - 1 >= (long)sizeof name)
        return fail(err, errlen, "--set %s: expected section.key=value", assignment), -1;
    snprintf(section, sizeof section, "%.*s", (int)(dot - assignment), assignment);
    snprintf(name, sizeof name, "%.*s", (int)(eq - dot - 1), dot + 1);
    const struct key *k = find_key(section, name);
    if (!k)
        return fail(err, errlen, "--set %s: %s", assignment,
                    known_section(section) ? "unknown key" : "unknown section"),
               -1;
    if (parse_value(cfg, k, eq + 1, why, sizeof why) != 0)
        return fail(err, errlen, "--set %s: [%s] %s: %s", assignment, section, name, why), -1;
    return 0;
}

static void write_value(const struct mf_config *cfg, const struct key *k, FILE *out)
{
    const char *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case KEY_INT:
        fprintf(out, "%lld", (long long)*(const int64_t *)field);
        break;
    case KEY_REAL:
        fprintf(out, "%.17g", *(const double *)field);
        break;
    case KEY_CHOICE:
        fputs(k->choices[*(const int *)field], out);
        break;
    case KEY_PATH:
        fputs(field, out);
        break;
    }
}

void config_write(const struct mf_config *cfg, FILE *out)
{
    const char *section = "";
    for (int i = 0; i < NKEYS; i++) {
        if (strcmp(section, keys[i].section)) {
            section = keys[i].section;
            fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
        }
        fprintf(out, "%s = ", keys[i].name);
        write_value(cfg, &keys[i], out);
        fputc('\n', out);
    }
}

void config_print_help(FILE *out)
{
    const char *section = "";
    for (int i = 0; i < NKEYS; i++) {
        if (strcmp(section, keys[i].section)) {
            section = keys[i].section;
            fprintf(out, "  [%s]\n", section);
        }
        char def[64];
        snprintf(def, sizeof def, "%s = %s", keys[i].name, *keys[i].def ? keys[i].def : "\"\"");
        fprintf(out, "    %-24s %s\n", def, keys[i].help);
    }
}

int config_compare_for_restart(const struct mf_config *given, const struct mf_config *stored,
                               char *err, size_t errlen)
{
    for (int i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        /* A restart may run longer, write its output differently, and
         * split the work over the ranks otherwise (as on another rank
         * count: the same bits). */
        if (!strcmp(k->section, "output") ||
            (!strcmp(k->section, "train") &&
             (!strcmp(k->name, "steps") || !strcmp(k->name, "balance_every") ||
              !strcmp(k->name, "share_work"))))
            continue;
        const char *a = (const char *)given + k->offset, *b = (const char *)stored + k->offset;
        size_t size = k->type == KEY_INT    ? sizeof(int64_t)
                      : k->type == KEY_REAL ? sizeof(double)
                      : k->type == KEY_CHOICE ? sizeof(int)
                                              : (size_t)MF_PATH_MAX;
        if (k->type == KEY_PATH ? strcmp(a, b) == 0 : memcmp(a, b, size) == 0)
            continue;
        char va[MF_PATH_MAX + 32], vb[MF_PATH_MAX + 32];
        FILE *fa = fmemopen(va, sizeof va, "w"), *fb = fmemopen(vb, sizeof vb, "w");
        write_value(given, k, fa);
        write_value(stored, k, fb);
        fclose(fa);
        fclose(fb);
        return fail(err, errlen,
                    "%s.%s = %s in the configuration but %s in the checkpoint (only train.steps, "
                    "train.balance_every, train.share_work and [output] keys may change on "
                    "restart)",
                    k->section, k->name, va, vb),
               -1;
    }
    return 0;
}

void config_foreach(const struct mf_config *cfg, config_visit visit, void *ctx)
{
    for (int i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const char *field = (const char *)cfg + k->offset;
        struct config_value v = {.section = k->section, .name = k->name};
        switch (k->type) {
        case KEY_INT:
            v.type = CONFIG_INT, v.integer = *(const int64_t *)field;
            break;
        case KEY_REAL:
            v.type = CONFIG_REAL, v.real = *(const double *)field;
            break;
        case KEY_CHOICE:
            v.type = CONFIG_TEXT, v.text = k->choices[*(const int *)field];
            break;
        case KEY_PATH:
            v.type = CONFIG_TEXT, v.text = field;
            break;
        }
        visit(ctx, &v);
    }
}

const char *config_activation_name(int activation) { return activation_names[activation]; }

const char *config_precision_name(int precision) { return precision_names[precision]; }
const char *config_data_kind_name(int kind) { return data_kind_names[kind]; }
