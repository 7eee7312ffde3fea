/*
 * timer: named wall-clock timers (MPI_Wtime), per process.
 *
 * Timers nest freely: each one just accumulates the time between its start
 * and stop. The end-of-run table over ranks is comm_report_timers (comm.h),
 * so that timer needs nothing from comm.
 */
#ifndef MFRES_TIMER_H
#define MFRES_TIMER_H

#include <mpi.h>

enum timer_id {
    TIMER_TOTAL,    /* the whole training run */
    TIMER_FORWARD,  /* forward passes of training steps */
    TIMER_BACKWARD, /* adjoint passes, gradients and the particle update */
    TIMER_EVAL,     /* observables: full-set loss, test loss, shallow gap */
    TIMER_MPI,      /* time inside MPI reductions (part of the above) */
    TIMER_MPI_WAIT, /* the part of it spent waiting for other ranks (comm_time_waits) */
    TIMER_OUTPUT,   /* metrics and progress output */
    TIMER_BALANCE,  /* load balancing: planning and moving particles */
    TIMER_COUNT
};

void timer_start(enum timer_id id);
void timer_stop(enum timer_id id);
/* Accumulated seconds of one timer on this rank. */
double timer_seconds(enum timer_id id);
void timer_reset_all(void);
/* The timer's name in reports, e.g. "mpi wait". */
const char *timer_name(enum timer_id id);

#endif
