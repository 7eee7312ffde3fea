/*
 * history: the rows a run records (see history.h).
 */
#include "history.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

const char *const history_column_names[HISTORY_COLUMNS] = {
    "loss", "test_loss", "test_accuracy", "grad_norm", "shallow_gap", "seconds_per_step"};

double history_column(const struct mf_observables *o, int column)
{
    const double v[HISTORY_COLUMNS] = {o->loss,      o->test_loss,   o->test_accuracy,
                                       o->grad_norm, o->shallow_gap, o->seconds_per_step};
    return v[column];
}

void history_set_column(struct mf_observables *o, int column, double value)
{
    double *f[HISTORY_COLUMNS] = {&o->loss,      &o->test_loss,   &o->test_accuracy,
                                  &o->grad_norm, &o->shallow_gap, &o->seconds_per_step};
    *f[column] = value;
}

void history_append(struct mf_history *h, const struct mf_observables *row,
                    const double *out)
{
    if (h->count == h->capacity) {
        h->capacity = h->capacity ? 2 * h->capacity : 64;
        struct mf_observables *rows = realloc(h->rows, (size_t)h->capacity * sizeof *rows);
        double *outputs = realloc(h->outputs, (size_t)(h->capacity * h->out_size + 1) * 8);
        if (!rows || !outputs)
            log_fatal("out of memory for %lld observables rows", (long long)h->capacity);
        h->rows = rows;
        h->outputs = outputs;
    }
    if (h->out_size)
        memcpy(h->outputs + h->count * h->out_size, out, (size_t)h->out_size * sizeof *out);
    h->rows[h->count++] = *row;
}

void history_free(struct mf_history *h)
{
    free(h->rows);
    free(h->outputs);
    memset(h, 0, sizeof *h);
}
