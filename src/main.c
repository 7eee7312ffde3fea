/*
 * mfres: mean-field ResNet particle simulator.
 *
 * main is the dispatcher: usage, MPI start-up and the subcommands, which
 * live in cmd_train.c (train, config) and cmd_file.c (info, eval) and
 * bench.c (bench).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "commands.h"
#include "comm.h"
#include "config.h"
#include "kernels.h"
#include "log.h"
#include "stop.h"
#include "version.h"


static void usage(FILE *out)
{
    fprintf(out,
            "usage: mfres train CONFIG.ini [--set section.key=value]... [--out DIR]\n"
            "                  [--restart auto|FILE]\n"
            "       mfres config CONFIG.ini [train options] [--ranks R [--nodes N]]\n"
            "                               print the resolved configuration (checks it;\n"
            "                               touches no file); with --ranks, the plan of a\n"
            "                               run on R ranks: memory per rank and node,\n"
            "                               checkpoint size, s/step probed here, core-hours\n"
            "       mfres info FILE.h5      summary of a checkpoint, snapshot or outputs.h5\n"
            "       mfres bench [options]   speed report (mfres bench --help)\n"
            "       mfres eval FILE.h5      train and test loss of a checkpoint's particles\n"
            "       mfres --help | --version\n"
            "\n"
            "Trains a mean-field ResNet whose residual blocks are particles sharded over\n"
            "the MPI ranks (run with mpirun -n R). Progress goes to stdout; the run\n"
            "directory gets config.ini (resolved), metrics.tsv, outputs.h5 (the outputs\n"
            "on the probe inputs), checkpoints/ and snapshots/.\n"
            "\n"
            "options:\n"
            "  --set section.key=value  override one configuration key (repeatable)\n"
            "  --out DIR                run directory (same as --set output.dir=DIR)\n"
            "  --restart auto           continue from the newest complete checkpoint of the\n"
            "                           run directory, or start fresh if there is none\n"
            "  --restart FILE           continue from this checkpoint (any rank count)\n"
            "\n"
            "MFRES_KERNELS=auto|avx512|avx2|generic chooses the compiled kernels (default\n"
            "auto: the widest this CPU runs); mfres --version names them.\n"
            "\n"
            "SIGTERM, SIGUSR1 and SIGINT write a checkpoint after the current step and\n"
            "exit 3; a second SIGINT stops at once.\n"
            "\n"
            "exit status: 0 finished, 1 runtime error, 2 usage, configuration or input\n"
            "             file error, 3 stopped by a signal or max_time (checkpoint\n"
            "             written), 4 diverged (NaN or Inf; the last checkpoint is kept)\n"
            "\n"
            "configuration keys (INI sections) and their defaults:\n");
    config_print_help(out);
}

int main(int argc, char **argv)
{
    /* Before anything else, so that a signal during start-up (MPI_Init, a
     * long checkpoint read) stops the run after its first step instead of
     * killing it. */
    if (argc > 1 && !strcmp(argv[1], "train"))
        stop_install();
    MPI_Comm comm = comm_init(&argc, &argv);
    log_set_rank(comm_rank(comm));
    char err[MF_MESSAGE_MAX] = "";
    const int chosen = kernels_choose(getenv("MFRES_KERNELS"), err, sizeof err) == 0;
    comm_agree_or_exit(chosen, err, MF_EXIT_USAGE, comm);
    int status = MF_EXIT_OK;
    const char *cmd = argc > 1 ? argv[1] : "";
    int help = 0;
    for (int i = 2; i < argc; i++)
        help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
    if (help && strcmp(cmd, "bench")) { /* bench prints its own */
        if (comm_rank(comm) == 0)
            usage(stdout);
    } else if (!strcmp(cmd, "train")) {
        status = cmd_train(argc, argv, comm);
    } else if (!strcmp(cmd, "bench")) {
        status = bench_main(argc - 1, argv + 1, comm);
    } else if (!strcmp(cmd, "config")) {
        status = cmd_config(argc, argv, comm);
    } else if (!strcmp(cmd, "info")) {
        status = cmd_info(argc, argv, comm);
    } else if (!strcmp(cmd, "eval")) {
        status = cmd_eval(argc, argv, comm);
    } else if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        if (comm_rank(comm) == 0)
            usage(stdout);
    } else if (!strcmp(cmd, "--version")) {
        char isa[256], paths[64];
        const char *target = kernels_build_target();
        log_info("mfres %s\ncompiler: %s\nflags: %s\ntarget: %s%s\n"
                 "kernels: %s (built:%s; this CPU: %s)",
                 mfres_version, mfres_compiler, mfres_cflags,
                 *target ? "CPUs with " : "any CPU of its architecture", target,
                 kernels_path()->name, kernels_path_names(paths, sizeof paths),
                 kernels_cpu_isa(isa, sizeof isa));
    } else {
        if (comm_rank(comm) == 0) {
            fprintf(stderr, "mfres: error: %s%s%s\n\n", *cmd ? "unknown command '" : "no command",
                    cmd, *cmd ? "'" : "");
            usage(stderr);
        }
        status = MF_EXIT_USAGE;
    }
    comm_finalize();
    return status;
}
