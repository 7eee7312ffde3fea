/*
 * log: messages to people and the single fatal-error path (see log.h).
 */
#include "log.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int log_rank;
static void (*abort_job)(int status);

void log_set_abort(void (*abort_fn)(int status)) { abort_job = abort_fn; }

int log_file_error(char *err, size_t errlen, const char *what, const char *path,
                   const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s '%s': %s", what, path, why);
    return -1;
}

void log_set_rank(int rank) { log_rank = rank; }

void log_info(const char *fmt, ...)
{
    if (log_rank != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mfres: warning: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void log_fatal_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "mfres: [rank %d] %s:%d: fatal: ", log_rank, file, line);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    if (abort_job)
        abort_job(1);
    exit(1);
}

void *log_xmalloc_at(const char *file, int line, size_t bytes)
{
    if (bytes == 0)
        return NULL;
    void *p = malloc(bytes);
    if (!p)
        log_fatal_at(file, line, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *log_xcalloc_at(const char *file, int line, size_t count, size_t size)
{
    if (count == 0 || size == 0)
        return NULL;
    void *p = calloc(count, size);
    if (!p)
        log_fatal_at(file, line, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *log_xmalloc_for(const char *file, int line, const char *what, size_t count, size_t size)
{
    if (count == 0 || size == 0)
        return NULL;
    void *p = count <= SIZE_MAX / size ? malloc(count * size) : NULL;
    if (!p)
        log_fatal_at(file, line, "out of memory: %s, %zu x %zu bytes (%.3g GiB), do not fit on "
                     "this rank", what, count, size, (double)count * (double)size / 1073741824.0);
    return p;
}
