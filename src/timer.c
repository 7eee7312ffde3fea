/*
 * timer: accumulating wall-clock timers and their reduced report.
 */
#include "timer.h"

#include <assert.h>

#include "comm.h"

static const char *const timer_names[] = {
    [TIMER_TOTAL] = "total",       [TIMER_FORWARD] = "forward", [TIMER_BACKWARD] = "backward",
    [TIMER_EVAL] = "observables",  [TIMER_MPI] = "mpi",         [TIMER_MPI_WAIT] = "mpi wait",
    [TIMER_OUTPUT] = "output",     [TIMER_BALANCE] = "balance",
};
static_assert(sizeof timer_names / sizeof timer_names[0] == TIMER_COUNT,
              "timer_names must name every timer");

static double timer_total[TIMER_COUNT];
static double timer_begin[TIMER_COUNT];

void timer_start(enum timer_id id) { timer_begin[id] = comm_wtime(); }

void timer_stop(enum timer_id id) { timer_total[id] += comm_wtime() - timer_begin[id]; }

double timer_seconds(enum timer_id id) { return timer_total[id]; }

void timer_reset_all(void)
{
    for (int i = 0; i < TIMER_COUNT; i++)
        timer_total[i] = 0;
}

void timer_report(FILE *out, MPI_Comm comm)
{
    int rank = comm_rank(comm);
    if (rank == 0)
        fprintf(out, "%-12s %10s %10s %10s %8s %7s\n", "timer", "min [s]", "mean [s]",
                "max [s]", "slowest", "% total");
    double total_mean = 0;
    for (int i = 0; i < TIMER_COUNT; i++) {
        double min, mean, max;
        int slowest;
        comm_stats(timer_total[i], comm, &min, &mean, &max, &slowest);
        if (i == TIMER_TOTAL)
            total_mean = mean;
        /* mpi wait and balance only when used */
        if (rank == 0 && !((i == TIMER_MPI_WAIT || i == TIMER_BALANCE) && max == 0))
            fprintf(out, "%-12s %10.3f %10.3f %10.3f %8d %6.1f%%\n", timer_names[i], min, mean,
                    max, slowest, total_mean > 0 ? 100 * mean / total_mean : 0.0);
    }
    if (rank == 0)
        fflush(out);
}
