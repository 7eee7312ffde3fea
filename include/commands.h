/*
 * commands: the subcommands of mfres that main dispatches to (bench is
 * bench_main, bench.h). Each takes main's argc/argv (argv[1] is the
 * subcommand), is collective over comm, and returns the exit status
 * (enum mf_exit, log.h); bad input stops every rank with status 2 before
 * any file is touched.
 */
#ifndef MFRES_COMMANDS_H
#define MFRES_COMMANDS_H

#include <mpi.h>

/* mfres train CONFIG.ini [--set k=v]... [--out DIR] [--restart auto|FILE] */
int cmd_train(int argc, char **argv, MPI_Comm comm);

/* mfres config CONFIG.ini [train options]: print the resolved configuration. */
int cmd_config(int argc, char **argv, MPI_Comm comm);

/* mfres info FILE.h5: summary of a checkpoint or snapshot. */
int cmd_info(int argc, char **argv, MPI_Comm comm);

/* mfres eval FILE.h5: train and test loss of a checkpoint's particles. */
int cmd_eval(int argc, char **argv, MPI_Comm comm);

#endif
