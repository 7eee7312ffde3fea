/*
 * timer: named wall-clock timers with a reduced end-of-run report.
 *
 * Timers are per process and nest freely (each one just accumulates the
 * time between its start and stop). The report gives min/mean/max over
 * ranks and the slowest rank, so load imbalance and MPI waiting show up.
 */
#ifndef MFRES_TIMER_H
#define MFRES_TIMER_H

#include <mpi.h>
#include <stdio.h>

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

/* Table of all timers reduced over comm, printed by rank 0. Collective. */
void timer_report(FILE *out, MPI_Comm comm);

#endif
