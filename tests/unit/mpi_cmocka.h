/*
 * mpi_cmocka: run a CMocka group under MPI.
 *
 * With more than one rank, CMOCKA_TEST_ABORT=1 makes a failed assertion
 * abort the process, and mpirun then stops every rank: a failure on one rank
 * can never leave the others waiting in a collective. Floating-point traps
 * for invalid operations, division by zero and overflow are on in every test.
 */
#ifndef MFRES_TEST_MPI_CMOCKA_H
#define MFRES_TEST_MPI_CMOCKA_H

#define _GNU_SOURCE /* feenableexcept */
#include <fenv.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <mpi.h>

#include "comm.h"
#include "log.h"

static int test_rank, test_ranks;

/* main: MPI, traps, then `run` (an expression giving the failures). */
#define MPI_CMOCKA_MAIN_RUNNING(run)                                                          \
    int main(int argc, char **argv)                                                            \
    {                                                                                          \
        MPI_Init(&argc, &argv);                                                                \
        MPI_Comm_rank(MPI_COMM_WORLD, &test_rank);                                             \
        MPI_Comm_size(MPI_COMM_WORLD, &test_ranks);                                            \
        log_set_rank(test_rank);                                                               \
        log_set_abort(comm_abort);                                                             \
        if (test_ranks > 1)                                                                    \
            setenv("CMOCKA_TEST_ABORT", "1", 1);                                               \
        feenableexcept(FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW);                               \
        int failed = (run);                                                                    \
        MPI_Finalize();                                                                        \
        return failed ? 1 : 0;                                                                 \
    }

#define MPI_CMOCKA_MAIN_WITH(group, setup, teardown)                                          \
    MPI_CMOCKA_MAIN_RUNNING(cmocka_run_group_tests(group, setup, teardown))

/* The same without group setup and teardown. */
#define MPI_CMOCKA_MAIN(group) MPI_CMOCKA_MAIN_WITH(group, NULL, NULL)

/* |a - b| <= rel * max(|a|, |b|) + abs_tol, with a readable failure. */
#define assert_close(a, b, rel, abs_tol)                                                       \
    do {                                                                                       \
        double a_ = (a), b_ = (b);                                                             \
        double scale_ = fabs(a_) > fabs(b_) ? fabs(a_) : fabs(b_);                             \
        if (!(fabs(a_ - b_) <= (rel) * scale_ + (abs_tol)))                                    \
            fail_msg("%s = %.17g and %s = %.17g differ by %.3g (allowed rel %.1e abs %.1e)",   \
                     #a, a_, #b, b_, fabs(a_ - b_), (double)(rel), (double)(abs_tol));         \
    } while (0)

#endif
