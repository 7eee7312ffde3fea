/*
 * timer: accumulating wall-clock timers (see timer.h).
 */
#include "timer.h"

#include <assert.h>

static const char *const timer_names[] = {
    [TIMER_TOTAL] = "total",       [TIMER_FORWARD] = "forward", [TIMER_BACKWARD] = "backward",
    [TIMER_EVAL] = "observables",  [TIMER_MPI] = "mpi",         [TIMER_MPI_WAIT] = "mpi wait",
    [TIMER_OUTPUT] = "output",     [TIMER_BALANCE] = "balance",
};
static_assert(sizeof timer_names / sizeof timer_names[0] == TIMER_COUNT,
              "timer_names must name every timer");

static double timer_total[TIMER_COUNT];
static double timer_begin[TIMER_COUNT];

void timer_start(enum timer_id id) { timer_begin[id] = MPI_Wtime(); }

void timer_stop(enum timer_id id) { timer_total[id] += MPI_Wtime() - timer_begin[id]; }

const char *timer_name(enum timer_id id) { return timer_names[id]; }

double timer_seconds(enum timer_id id) { return timer_total[id]; }

void timer_reset_all(void)
{
    for (int i = 0; i < TIMER_COUNT; i++)
        timer_total[i] = 0;
}
