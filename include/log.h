/*
 * log: the one way mfres reports to people.
 *
 * Informational lines come from rank 0 only; warnings and errors carry the
 * rank. log_fatal is the single fatal-error path: it prints rank, source
 * location and message, flushes, and aborts every rank of the job, so a
 * failure on one rank never leaves the others hanging in a collective.
 *
 * Errors, one convention:
 *  - Below the entry points, a function that can meet bad input returns 0
 *    or -1 and writes one message into the caller's (err, errlen): naming
 *    the file ("checkpoint 'PATH': problem", log_file_error), or the
 *    key and value ("[model] width: 0 is out of range").
 *  - The entry points (the subcommands of commands.h, bench_main) decide:
 *    bad input stops every rank together with MF_EXIT_USAGE before any file
 *    is touched (comm_agree_or_exit: the lowest failing rank prints).
 *  - What cannot go on (out of memory, a failed write of our own file, an
 *    MPI error) is log_fatal: every rank ends with MF_EXIT_RUNTIME. A step
 *    that only some ranks took (a system call of rank 0) is checked with
 *    comm_fatal_unless, so the rank that failed reports its own errno.
 *  - Exit statuses are enum mf_exit, below; jobs/common.sh names the ones
 *    it acts on, and a test keeps the two equal.
 */
#ifndef MFRES_LOG_H
#define MFRES_LOG_H

#include <stddef.h>
#include <stdnoreturn.h>

/* Exit statuses of mfres (also relied on by jobs/common.sh and the tests). */
enum mf_exit {
    MF_EXIT_OK = 0,       /* finished */
    MF_EXIT_RUNTIME = 1,  /* runtime error (log_fatal, a failed write) */
    MF_EXIT_USAGE = 2,    /* usage, configuration or input-file error */
    MF_EXIT_STOPPED = 3,  /* stopped by a signal or max_time, with a checkpoint */
    MF_EXIT_DIVERGED = 4, /* the loss or the gradient became NaN or Inf */
};

/* Remember this process's rank for message prefixes. Not collective. */
void log_set_rank(int rank);

/* How log_fatal ends the job: comm_init installs comm_abort, which aborts
 * every rank; before that (or without MPI) it exits this process. */
void log_set_abort(void (*abort_fn)(int status));

/* printf-style line on stdout from rank 0 only; other ranks print nothing. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "mfres: warning: ..." on stderr, from the calling rank. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "[rank R] file:line: fatal: ..." then abort all ranks with exit status 1
 * (through the log_set_abort hook). */
noreturn void log_fatal_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define log_fatal(...) log_fatal_at(__FILE__, __LINE__, __VA_ARGS__)

/* Write "WHAT 'PATH': message" into err (errlen bytes) and return -1: the
 * one form of an error about a file the user named, e.g. "checkpoint
 * 'run/c.h5': incomplete". */
int log_file_error(char *err, size_t errlen, const char *what, const char *path,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* malloc that never returns NULL (fatal on failure); zero bytes gives NULL. */
void *log_xmalloc_at(const char *file, int line, size_t bytes);
void *log_xcalloc_at(const char *file, int line, size_t count, size_t size);
#define xmalloc(bytes) log_xmalloc_at(__FILE__, __LINE__, (bytes))
#define xcalloc(count, size) log_xcalloc_at(__FILE__, __LINE__, (count), (size))

/* malloc of count x size bytes for an array whose size the input chose:
 * `what` names it and the keys behind it ("the particles, model.layers x
 * model.width x (2 model.dim + 1) / ranks doubles"), so that running out of
 * memory (or a product beyond SIZE_MAX) says which setting asked for how
 * much. Fatal on failure; zero bytes gives NULL. */
void *log_xmalloc_for(const char *file, int line, const char *what, size_t count, size_t size);
#define xmalloc_for(what, count, size) log_xmalloc_for(__FILE__, __LINE__, (what), (count), (size))

#endif
