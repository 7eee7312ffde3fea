/*
 * config_resolve: the 0 = "default" values resolved, and the checks that
 * combine keys (see config.h).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

int config_resolve(struct mf_config *cfg, const struct mf_data_shape *file, char *err,
                   size_t errlen)
{
    struct {
        int64_t input_dim, output_dim;
    } kind_dims[] = {
        [MF_DATA_TEACHER] = {4, 1}, [MF_DATA_SINE] = {1, 1}, [MF_DATA_SPIRALS] = {2, 2}};
    int kind = cfg->data.kind;
    int labels;

    if (kind == MF_DATA_FILE) {
        if (!cfg->data.file[0])
            return snprintf(err, errlen, "data.kind = file needs data.file"), -1;
        if (!file)
            return snprintf(err, errlen, "data.file '%s' was not read", cfg->data.file), -1;
        if (cfg->data.input_dim && cfg->data.input_dim != file->input_dim)
            return snprintf(err, errlen,
                            "data.input_dim = %lld but data.file '%s' has %lld input columns",
                            (long long)cfg->data.input_dim, cfg->data.file,
                            (long long)file->input_dim),
                   -1;
        if (cfg->data.output_dim && cfg->data.output_dim != file->output_dim)
            return snprintf(err, errlen, "data.output_dim = %lld but data.file '%s' has %lld %s",
                            (long long)cfg->data.output_dim, cfg->data.file,
                            (long long)file->output_dim,
                            file->labels ? "classes" : "target columns"),
                   -1;
        cfg->data.input_dim = file->input_dim;
        cfg->data.output_dim = file->output_dim;
        if (cfg->data.test_samples > file->rows)
            return snprintf(
                       err, errlen, "data.test_samples = %lld but data.file '%s' has %lld rows",
                       (long long)cfg->data.test_samples, cfg->data.file, (long long)file->rows),
                   -1;
        if (cfg->data.samples == 0)
            cfg->data.samples = file->rows - cfg->data.test_samples;
        if (cfg->data.samples + cfg->data.test_samples > file->rows)
            return snprintf(
                       err, errlen,
                       "data.samples + data.test_samples = %lld but data.file '%s' has %lld rows",
                       (long long)(cfg->data.samples + cfg->data.test_samples), cfg->data.file,
                       (long long)file->rows),
                   -1;
        labels = file->labels;
    } else {
        if (!cfg->data.input_dim)
            cfg->data.input_dim = kind_dims[kind].input_dim;
        if (!cfg->data.output_dim)
            cfg->data.output_dim = kind_dims[kind].output_dim;
        labels = kind == MF_DATA_SPIRALS;
        if (kind == MF_DATA_SPIRALS && (cfg->data.input_dim != 2 || cfg->data.output_dim != 2))
            return snprintf(err, errlen,
                            "data.kind = spirals has input_dim = 2 and output_dim = 2 (given %lld, "
                            "%lld)",
                            (long long)cfg->data.input_dim, (long long)cfg->data.output_dim),
                   -1;
    }
    if (cfg->data.samples < 1)
        return snprintf(err, errlen, "data.samples must be >= 1 (0 is for data.kind = file only)"),
               -1;
    if (labels && cfg->train.loss != MF_LOSS_CROSS_ENTROPY)
        return snprintf(err, errlen,
                        "train.loss = mse does not fit data.kind = %s: class labels need "
                        "train.loss = cross_entropy",
                        config_data_kind_name(kind)),
               -1;
    if (!labels && cfg->train.loss == MF_LOSS_CROSS_ENTROPY)
        return snprintf(err, errlen,
                        "train.loss = cross_entropy needs class labels, but data.kind = %s has "
                        "real-valued targets (use train.loss = mse)",
                        config_data_kind_name(kind)),
               -1;
    if (labels && cfg->data.output_dim < 2)
        return snprintf(err, errlen, "cross_entropy needs at least 2 classes (data.output_dim)"),
               -1;

    int64_t need =
        cfg->data.input_dim > cfg->data.output_dim ? cfg->data.input_dim : cfg->data.output_dim;
    if (!cfg->model.dim)
        cfg->model.dim = need;
    if (cfg->model.dim < need)
        return snprintf(err, errlen,
                        "model.dim = %lld is smaller than data.input_dim = %lld or data.output_dim "
                        "= %lld",
                        (long long)cfg->model.dim, (long long)cfg->data.input_dim,
                        (long long)cfg->data.output_dim),
               -1;
    if (cfg->model.dim > MF_MAX_DIM)
        return snprintf(err, errlen, "model.dim = %lld is larger than %d",
                        (long long)cfg->model.dim, MF_MAX_DIM),
               -1;
    /* Sizes computed from input stay far from overflow: a set holds at most
     * 2^31 samples (of at most 65536 columns), a network at most 2^40
     * particles. */
    const int64_t max_samples = INT32_MAX;
    const struct {
        const char *key;
        int64_t value;
    } counts[] = {{"data.samples", cfg->data.samples},
                  {"data.test_samples", cfg->data.test_samples}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (counts[i].value > max_samples)
            return snprintf(err, errlen, "%s = %lld is larger than %lld", counts[i].key,
                            (long long)counts[i].value, (long long)max_samples),
                   -1;
    if (cfg->data.teacher_layers > (INT64_C(1) << 40) / cfg->data.teacher_width)
        return snprintf(
                   err, errlen,
                   "data.teacher_layers x data.teacher_width = %lld x %lld is too many particles",
                   (long long)cfg->data.teacher_layers, (long long)cfg->data.teacher_width),
               -1;
    if (cfg->model.layers > (INT64_C(1) << 40) / cfg->model.width)
        return snprintf(err, errlen,
                        "model.layers x model.width = %lld x %lld is too many particles",
                        (long long)cfg->model.layers, (long long)cfg->model.width),
               -1;
    const double batch = (double)(cfg->train.batch ? cfg->train.batch : cfg->data.samples);
    if ((double)(cfg->model.layers + 1) * batch * (double)cfg->model.dim > 0x1p40)
        return snprintf(err, errlen,
                        "(model.layers + 1) x train.batch x model.dim = %lld x %.0f x %lld is too "
                        "many batch states (at most 2^40)",
                        (long long)cfg->model.layers + 1, batch, (long long)cfg->model.dim),
               -1;
    if (cfg->data.probes > cfg->data.test_samples)
        cfg->data.probes = cfg->data.test_samples;
    if (cfg->train.batch > cfg->data.samples)
        return snprintf(err, errlen, "train.batch = %lld is larger than data.samples = %lld",
                        (long long)cfg->train.batch, (long long)cfg->data.samples),
               -1;
    if (cfg->train.share_work == MF_SHARE_NODE && cfg->train.balance_every > 0)
        return snprintf(err, errlen,
                        "train.share_work = node and train.balance_every = %lld exclude each other "
                        "(shared particles do not move between ranks)",
                        (long long)cfg->train.balance_every),
               -1;
    return 0;
}
