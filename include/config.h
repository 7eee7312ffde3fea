/*
 * config: the run configuration, read from an INI file (libinih) and
 * `--set section.key=value` overrides.
 *
 * One table in config.c describes every key: its section, type, default,
 * bounds and help text. Parsing, defaults, validation, `mfres --help` and the
 * resolved INI written next to every run all come from that table, so they
 * cannot drift apart. Errors name the file and line (or the --set argument)
 * and the key.
 */
#ifndef MFRES_CONFIG_H
#define MFRES_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum mf_activation { MF_ACT_TANH, MF_ACT_RELU, MF_ACT_SIGMOID, MF_ACT_SOFTPLUS };
enum mf_architecture { MF_ARCH_RESNET, MF_ARCH_SHALLOW };
enum mf_data_kind { MF_DATA_TEACHER, MF_DATA_SINE, MF_DATA_SPIRALS, MF_DATA_FILE };
enum mf_order { MF_ORDER_FIXED, MF_ORDER_SHUFFLE };
enum mf_loss { MF_LOSS_MSE, MF_LOSS_CROSS_ENTROPY };
enum mf_share_work { MF_SHARE_OFF, MF_SHARE_NODE, MF_SHARE_AUTO };
enum mf_file_locking { MF_LOCKING_OFF, MF_LOCKING_ON, MF_LOCKING_BEST_EFFORT };
/* double: everything in doubles. mixed: the particles, the kernels' inputs
 * and their arithmetic in floats; states, adjoints, the exact sums and
 * every reported number in doubles. */
enum mf_precision { MF_PRECISION_DOUBLE, MF_PRECISION_MIXED };

#define MF_PATH_MAX 1024
/* The longest line of INI text libinih reads whole (its INI_MAX_LINE, 200
 * by default, less a carriage return, a newline and a NUL); so a path key
 * NAME takes at most CONFIG_LINE_MAX - strlen("NAME = ") characters. */
#define CONFIG_LINE_MAX 197
/* The longest file name mfres gives MPI-IO (parallel HDF5): Open MPI's
 * OMPIO aborts on names of 245 characters or more (it appends
 * ".lockedfile" in a buffer of 256 bytes). */
#define MF_MPIIO_PATH_MAX 244
/* The largest state dimension D, and so the most classes a data file may have. */
#define MF_MAX_DIM 65536
#define MF_MAX_CLASSES MF_MAX_DIM

/* Every field is one key of the INI file, named as in the file. Enum-valued
 * keys are stored as int holding the enum above. */
struct mf_config {
    struct {
        int64_t layers;   /* L >= 1 */
        int64_t width;    /* M >= 1, particles per layer */
        int64_t dim;      /* D; 0 = max(input_dim, output_dim) */
        int activation;   /* enum mf_activation */
        double alpha;     /* residual scale: h = alpha / (L M) */
        int architecture; /* enum mf_architecture */
        int precision;    /* enum mf_precision */
    } model;
    struct {
        double u_std;  /* std of each component of u */
        double w_std;  /* std of w.x for unit-variance x: components ~ N(0, w_std^2/D) */
        double b_std;  /* std of b */
        int64_t seed;
    } init;
    struct {
        int kind;             /* enum mf_data_kind */
        int64_t samples;      /* training samples; 0 (file only) = all rows not used for test */
        int64_t test_samples; /* held-out samples */
        int64_t probes;       /* the first test samples whose outputs are recorded */
        int64_t input_dim;    /* d_in; 0 = the kind's default (file: from the file) */
        int64_t output_dim;   /* d_out; 0 = the kind's default (file: from the file) */
        double noise;         /* std of Gaussian noise added to targets / points */
        int64_t seed;
        char file[MF_PATH_MAX]; /* HDF5 data file for kind = file */
        int64_t teacher_layers; /* teacher network depth */
        int64_t teacher_width;  /* teacher particles per layer */
    } data;
    struct {
        int64_t steps;       /* number of updates */
        double lr;           /* eta, the mean-field time step */
        int64_t batch;       /* minibatch size; 0 = full batch */
        double weight_decay; /* lambda */
        double temperature;  /* T; > 0 is Langevin dynamics */
        int order;           /* enum mf_order */
        int loss;            /* enum mf_loss */
        int64_t seed;
        int64_t balance_every; /* rebalance particles over ranks every k steps; 0 = off */
        int share_work;        /* enum mf_share_work */
    } train;
    struct {
        char dir[MF_PATH_MAX]; /* run directory */
        int64_t log_every;        /* metrics row and progress line every k steps */
        double progress_seconds;  /* most seconds between progress lines; 0 = off */
        int64_t checkpoint_every; /* 0 = only at the end */
        double checkpoint_minutes; /* wall-clock minutes between checkpoints; 0 = off */
        int64_t checkpoint_keep;  /* newest checkpoints kept, >= 1 */
        int64_t snapshot_every;   /* 0 = no snapshots */
        int64_t snapshot_stride;  /* every k-th particle of each layer */
        double max_time;          /* seconds; 0 = no limit */
        char mpio_hints[MF_PATH_MAX]; /* "name=value ..." for MPI_Info of parallel HDF5 files */
        int file_locking;             /* enum mf_file_locking */
    } output;
};

/* Where a configuration error was found, for messages. */
#define MF_ERR_MAX 1536

/* Fill cfg with the built-in defaults (the `make run` example). */
void config_defaults(struct mf_config *cfg);

/* Read an INI file over the current values of cfg. Returns 0, or -1 with a
 * message "FILE:LINE: [section] key: problem" in err. Not collective. */
int config_read_file(struct mf_config *cfg, const char *path, char *err, size_t errlen);

/* The text of a configuration file (malloc'ed), checked to be a regular
 * file of at most 1 MiB without NUL bytes; NULL with "FILE: problem" in err
 * otherwise. Not collective. */
char *config_load_file(const char *path, char *err, size_t errlen);

/* Read INI text (e.g. a checkpoint's stored configuration); label names it
 * in messages. Returns 0 or -1 with err. */
int config_read_string(struct mf_config *cfg, const char *text, const char *label, char *err,
                       size_t errlen);

/* Apply one "section.key=value" override. Returns 0 or -1 with err. */
int config_set(struct mf_config *cfg, const char *assignment, char *err, size_t errlen);

/* The shape of a data file, as far as the configuration cares. */
struct mf_data_shape {
    int64_t rows;       /* samples in the file */
    int64_t input_dim;  /* columns of x */
    int64_t output_dim; /* columns of y, or the number of classes */
    int labels;         /* nonzero: y holds integer class labels */
};

/* Replace the 0 = "default" values of samples, dim, input_dim and output_dim
 * by what they stand for (for kind = file, from the file's shape, which must
 * then be given), then check combinations of keys: dimensions, batch against
 * samples, loss against the kind of targets. Returns 0, or -1 with a message
 * naming the keys. Not collective; every rank gets the same answer. */
int config_resolve(struct mf_config *cfg, const struct mf_data_shape *file, char *err,
                   size_t errlen);

/* 0 when a resolved configuration may continue a checkpoint written with
 * `stored`: every key equal except train.steps and the [output] keys.
 * Otherwise -1 with a message naming the first key that differs. */
int config_compare_for_restart(const struct mf_config *given, const struct mf_config *stored,
                               char *err, size_t errlen);

/* One key and its current value, for writing them elsewhere (HDF5). */
struct config_value {
    const char *section, *name;
    enum { CONFIG_INT, CONFIG_REAL, CONFIG_TEXT } type;
    int64_t integer;  /* CONFIG_INT */
    double real;      /* CONFIG_REAL */
    const char *text; /* CONFIG_TEXT: choice name or path */
};
typedef void (*config_visit)(void *ctx, const struct config_value *value);

/* Call visit for every key, in table order. */
void config_foreach(const struct mf_config *cfg, config_visit visit, void *ctx);

/* Write the configuration as INI text, every key, one per line. */
void config_write(const struct mf_config *cfg, FILE *out);

/* List every key with its default and meaning (for --help). */
void config_print_help(FILE *out);

/* Names of enum values, for messages and output. */
const char *config_activation_name(int activation);
const char *config_precision_name(int precision);
const char *config_data_kind_name(int kind);

#endif
