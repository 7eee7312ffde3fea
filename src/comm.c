/*
 * comm: thin, checked wrappers over the MPI calls mfres makes (see comm.h).
 *
 * The error handler stays MPI_ERRORS_ARE_FATAL: a failing MPI call aborts
 * the whole job, which is the behaviour we want for a batch code.
 */
#include "comm.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "timer.h"

MPI_Comm comm_init(int *argc, char ***argv)
{
    MPI_Init(argc, argv);
    log_set_abort(comm_abort); /* a fatal error on one rank ends every rank */
    return MPI_COMM_WORLD;
}

void comm_finalize(void) { MPI_Finalize(); }

int comm_rank(MPI_Comm comm)
{
    int rank;
    MPI_Comm_rank(comm, &rank);
    return rank;
}

int comm_size(MPI_Comm comm)
{
    int size;
    MPI_Comm_size(comm, &size);
    return size;
}

static int time_waits;
static struct comm_wait_log *wait_log;

void comm_time_waits(int on, struct comm_wait_log *log)
{
    time_waits = on;
    wait_log = on ? log : NULL;
}

/* MPI_SUM in place over n values of type (size bytes each), waits timed
 * when asked, in slices for counts beyond an int. */
static void sum_in_place(void *values, long n, MPI_Datatype type, size_t size, MPI_Comm comm)
{
    timer_start(TIMER_MPI);
    if (time_waits) {
        double t0 = MPI_Wtime();
        timer_start(TIMER_MPI_WAIT);
        MPI_Barrier(comm);
        timer_stop(TIMER_MPI_WAIT);
        if (wait_log && wait_log->n < wait_log->capacity)
            wait_log->wait[wait_log->n++] = MPI_Wtime() - t0;
    }
    const long slice = 1L << 30;
    for (long off = 0; off < n; off += slice) {
        long len = n - off < slice ? n - off : slice;
        MPI_Allreduce(MPI_IN_PLACE, (char *)values + (size_t)off * size, (int)len, type, MPI_SUM,
                      comm);
    }
    timer_stop(TIMER_MPI);
}

void comm_sum(double *values, long n, MPI_Comm comm)
{
    sum_in_place(values, n, MPI_DOUBLE, sizeof *values, comm);
}

void comm_sum_i64(int64_t *values, long n, MPI_Comm comm)
{
    sum_in_place(values, n, MPI_INT64_T, sizeof *values, comm);
}

double comm_max(double value, MPI_Comm comm)
{
    double out;
    MPI_Allreduce(&value, &out, 1, MPI_DOUBLE, MPI_MAX, comm);
    return out;
}

void comm_stats(double value, MPI_Comm comm, double *min, double *mean, double *max,
                int *max_rank)
{
    struct {
        double value;
        int rank;
    } in = {value, comm_rank(comm)}, out;
    double sum;
    MPI_Allreduce(&value, min, 1, MPI_DOUBLE, MPI_MIN, comm);
    MPI_Allreduce(&value, &sum, 1, MPI_DOUBLE, MPI_SUM, comm);
    MPI_Allreduce(&in, &out, 1, MPI_DOUBLE_INT, MPI_MAXLOC, comm);
    *mean = sum / comm_size(comm);
    *max = out.value;
    *max_rank = out.rank;
}

void comm_allgather(double value, double *all, MPI_Comm comm)
{
    MPI_Allgather(&value, 1, MPI_DOUBLE, all, 1, MPI_DOUBLE, comm);
}

void comm_allgather_i64(int64_t value, int64_t *all, MPI_Comm comm)
{
    MPI_Allgather(&value, 1, MPI_INT64_T, all, 1, MPI_INT64_T, comm);
}

void comm_gather(const double *send, long n, double *recv, int root, MPI_Comm comm)
{
    if (n > INT_MAX)
        log_fatal("comm_gather: %ld values exceed MPI's int counts", n);
    MPI_Gather(send, (int)n, MPI_DOUBLE, recv, (int)n, MPI_DOUBLE, root, comm);
}

void comm_exchange(const void *send, const int64_t *send_counts, void *recv,
                   const int64_t *recv_counts, size_t item, MPI_Comm comm)
{
    const int size = comm_size(comm);
    if (item > INT_MAX)
        log_fatal("comm_exchange: items of %zu bytes exceed MPI's int counts", item);
    MPI_Datatype type;
    MPI_Type_contiguous((int)item, MPI_BYTE, &type);
    MPI_Type_commit(&type);
    MPI_Request *req = xmalloc(2 * (size_t)size * sizeof *req);
    int n = 0;
    size_t sent = 0, got = 0;
    /* Point to point rather than MPI_Alltoallv: its int displacements would
     * overflow on large shares. */
    for (int r = 0; r < size; r++) {
        if (send_counts[r] > INT_MAX || recv_counts[r] > INT_MAX)
            log_fatal("comm_exchange: %lld items for one rank exceed MPI's int counts",
                      (long long)(send_counts[r] > recv_counts[r] ? send_counts[r]
                                                                  : recv_counts[r]));
        if (recv_counts[r])
            MPI_Irecv((char *)recv + got * item, (int)recv_counts[r], type, r, 0, comm,
                      &req[n++]);
        if (send_counts[r])
            MPI_Isend((const char *)send + sent * item, (int)send_counts[r], type, r, 0, comm,
                      &req[n++]);
        sent += (size_t)send_counts[r], got += (size_t)recv_counts[r];
    }
    MPI_Waitall(n, req, MPI_STATUSES_IGNORE);
    free(req);
    MPI_Type_free(&type);
}

MPI_Comm comm_node(MPI_Comm comm)
{
    MPI_Comm node;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, comm_rank(comm), MPI_INFO_NULL, &node);
    return node;
}

void comm_free(MPI_Comm *comm) { MPI_Comm_free(comm); }

int comm_node_leader(MPI_Comm comm, int *ranks_here)
{
    MPI_Comm node = comm_node(comm);
    const int leader = comm_rank(node) == 0;
    if (ranks_here)
        *ranks_here = comm_size(node);
    comm_free(&node);
    return leader;
}

MPI_Comm comm_node_leaders(MPI_Comm comm)
{
    MPI_Comm leaders;
    MPI_Comm_split(comm, comm_node_leader(comm, NULL) ? 0 : MPI_UNDEFINED, comm_rank(comm),
                   &leaders);
    return leaders;
}

void comm_gather_bytes(const void *send, int bytes, void *recv, int root, MPI_Comm comm)
{
    MPI_Gather(send, bytes, MPI_BYTE, recv, bytes, MPI_BYTE, root, comm);
}

void comm_library(char *out, size_t len)
{
    char text[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    MPI_Get_library_version(text, &n);
    snprintf(out, len, "%.*s", (int)strcspn(text, "\n,"), text);
}

void *comm_shared_alloc(size_t bytes, MPI_Comm node, MPI_Win *win)
{
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");
    void *base;
    MPI_Win_allocate_shared((MPI_Aint)bytes, 1, info, node, &base, win);
    MPI_Info_free(&info);
    MPI_Win_lock_all(MPI_MODE_NOCHECK, *win);
    return base;
}

void *comm_shared_peer(MPI_Win win, int rank)
{
    MPI_Aint size;
    int unit;
    void *base;
    MPI_Win_shared_query(win, rank, &size, &unit, &base);
    return base;
}

void comm_shared_sync(MPI_Win win) { MPI_Win_sync(win); }

void comm_shared_free(MPI_Win *win)
{
    MPI_Win_unlock_all(*win);
    MPI_Win_free(win);
}

int comm_all_ok(int ok, MPI_Comm comm)
{
    int in = ok != 0, out;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LAND, comm);
    return out;
}

uint64_t comm_sum_u64(uint64_t value, MPI_Comm comm)
{
    uint64_t out;
    MPI_Allreduce(&value, &out, 1, MPI_UINT64_T, MPI_SUM, comm); /* wraps modulo 2^64 */
    return out;
}

int comm_or(int bits, MPI_Comm comm)
{
    int out;
    MPI_Allreduce(&bits, &out, 1, MPI_INT, MPI_BOR, comm);
    return out;
}

void comm_bcast(void *data, long bytes, int root, MPI_Comm comm)
{
    const long slice = INT_MAX / 2; /* MPI counts are int */
    for (long off = 0; off < bytes; off += slice)
        MPI_Bcast((char *)data + off, (int)(bytes - off < slice ? bytes - off : slice), MPI_BYTE,
                  root, comm);
}

void comm_barrier(MPI_Comm comm) { MPI_Barrier(comm); }

int comm_first_failure(int ok, MPI_Comm comm)
{
    int size = comm_size(comm);
    int in = ok ? size : comm_rank(comm), out;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, comm);
    return out == size ? -1 : out;
}

void comm_fatal_unless(int ok, MPI_Comm comm, const char *fmt, ...)
{
    int first_bad = comm_first_failure(ok, comm);
    if (first_bad < 0)
        return;
    if (comm_rank(comm) == first_bad) {
        char message[MF_MESSAGE_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        log_fatal("%s", message);
    }
    MPI_Barrier(comm); /* never passed: the failing rank aborts the job */
    comm_abort(1);
}

int comm_agree(int ok, char *message, size_t len, MPI_Comm comm)
{
    const int first_bad = comm_first_failure(ok, comm);
    if (first_bad >= 0)
        MPI_Bcast(message, (int)len, MPI_CHAR, first_bad, comm);
    return first_bad < 0 ? 0 : -1;
}

void comm_agree_or_exit(int ok, const char *message, int status, MPI_Comm comm)
{
    int first_bad = comm_first_failure(ok, comm);
    if (first_bad < 0)
        return;
    if (comm_rank(comm) == first_bad)
        fprintf(stderr, "mfres: error: %s\n", message);
    fflush(stderr);
    comm_finalize();
    exit(status);
}

void comm_abort(int status)
{
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized)
        MPI_Abort(MPI_COMM_WORLD, status);
    exit(status);
}

double comm_wtime(void) { return MPI_Wtime(); }

void comm_report_timers(FILE *out, MPI_Comm comm)
{
    int rank = comm_rank(comm);
    if (rank == 0)
        fprintf(out, "%-12s %10s %10s %10s %8s %7s\n", "timer", "min [s]", "mean [s]",
                "max [s]", "slowest", "% total");
    double total_mean = 0;
    for (int i = 0; i < TIMER_COUNT; i++) {
        double min, mean, max;
        int slowest;
        comm_stats(timer_seconds(i), comm, &min, &mean, &max, &slowest);
        if (i == TIMER_TOTAL)
            total_mean = mean;
        /* mpi wait and balance only when used */
        if (rank == 0 && !((i == TIMER_MPI_WAIT || i == TIMER_BALANCE) && max == 0))
            fprintf(out, "%-12s %10.3f %10.3f %10.3f %8d %6.1f%%\n", timer_name(i), min, mean,
                    max, slowest, total_mean > 0 ? 100 * mean / total_mean : 0.0);
    }
    if (rank == 0)
        fflush(out);
}
