/*
 * comm: thin, checked wrappers over the MPI calls mfres makes (see comm.h).
 *
 * The error handler stays MPI_ERRORS_ARE_FATAL: a failing MPI call aborts
 * the whole job, which is the behaviour we want for a batch code.
 */
#include "comm.h"

#include <stdlib.h>

#include "timer.h"

MPI_Comm comm_init(int *argc, char ***argv)
{
    MPI_Init(argc, argv);
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

void comm_time_waits(int on) { time_waits = on; }

void comm_sum(double *values, long n, MPI_Comm comm)
{
    timer_start(TIMER_MPI);
    if (time_waits) {
        timer_start(TIMER_MPI_WAIT);
        MPI_Barrier(comm);
        timer_stop(TIMER_MPI_WAIT);
    }
    /* MPI counts are int: reduce in slices for very large buffers. */
    const long slice = 1L << 30;
    for (long off = 0; off < n; off += slice) {
        long len = n - off < slice ? n - off : slice;
        MPI_Allreduce(MPI_IN_PLACE, values + off, (int)len, MPI_DOUBLE, MPI_SUM, comm);
    }
    timer_stop(TIMER_MPI);
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

int comm_all_ok(int ok, MPI_Comm comm)
{
    int in = ok != 0, out;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_LAND, comm);
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
    MPI_Bcast(data, (int)bytes, MPI_BYTE, root, comm);
}

void comm_barrier(MPI_Comm comm) { MPI_Barrier(comm); }

int comm_first_failure(int ok, MPI_Comm comm)
{
    int size = comm_size(comm);
    int in = ok ? size : comm_rank(comm), out;
    MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, comm);
    return out == size ? -1 : out;
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
