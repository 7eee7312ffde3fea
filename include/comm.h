/*
 * comm: every MPI call of mfres except parallel HDF5 goes through here.
 *
 * Functions marked "Collective" must be called by every rank of the
 * communicator they are given, in the same order.
 */
#ifndef MFRES_COMM_H
#define MFRES_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdnoreturn.h>

/* MPI_Init; returns MPI_COMM_WORLD. Collective over the job. */
MPI_Comm comm_init(int *argc, char ***argv);

/* MPI_Finalize. Collective over the job. */
void comm_finalize(void);

int comm_rank(MPI_Comm comm);
int comm_size(MPI_Comm comm);

/* In-place sum of n doubles over all ranks; the result is on every rank.
 * Timed under TIMER_MPI. Collective. */
void comm_sum(double *values, long n, MPI_Comm comm);

/* The same over int64 (exact: the result does not depend on the order in
 * which MPI adds). Collective. */
void comm_sum_i64(int64_t *values, long n, MPI_Comm comm);

/* Each comm_sum's wait, in seconds, in call order. */
struct comm_wait_log {
    double *wait;
    long n, capacity; /* calls beyond capacity are not logged */
};

/* When on, comm_sum first waits in a barrier, timed under TIMER_MPI_WAIT
 * as well: TIMER_MPI then splits into waiting for the slowest rank (load
 * imbalance) and the reduction itself; with a log (else NULL), each wait
 * is also appended to it. For benchmarks; off by default, as it adds a
 * barrier's latency to every reduction. */
void comm_time_waits(int on, struct comm_wait_log *log);

/* Maximum of one double over all ranks, on every rank. Collective. */
double comm_max(double value, MPI_Comm comm);

/* Min, mean and max of one double over ranks, and the rank holding the
 * max, on every rank. Collective. */
void comm_stats(double value, MPI_Comm comm, double *min, double *mean, double *max,
                int *max_rank);

/* Every rank's value, in rank order, into all[comm_size]. Collective. */
void comm_allgather(double value, double *all, MPI_Comm comm);
void comm_allgather_i64(int64_t value, int64_t *all, MPI_Comm comm);

/* Every rank's n doubles, in rank order, into recv[comm_size * n] on root
 * (recv is not used elsewhere). Collective. */
void comm_gather(const double *send, long n, double *recv, int root, MPI_Comm comm);

/* Personalised exchange of items of `item` bytes: send_counts[r] items go
 * to rank r, taken in rank order from send; recv_counts[r] items come from
 * rank r, stored in rank order in recv. Each rank's counts must match its
 * peers'. Collective. */
void comm_exchange(const void *send, const int64_t *send_counts, void *recv,
                   const int64_t *recv_counts, size_t item, MPI_Comm comm);

/* The ranks of comm that share memory with this one (one node), in comm's
 * order. Free with comm_free. Collective. */
MPI_Comm comm_node(MPI_Comm comm);
void comm_free(MPI_Comm *comm);

/* Nonzero on one rank per node, the lowest of comm there (comm's rank 0
 * is one); ranks_here, if not NULL, receives the number of comm's ranks on
 * this node. Collective. */
int comm_node_leader(MPI_Comm comm, int *ranks_here);

/* The ranks comm_node_leader picks, in comm's order, so that comm's rank 0
 * is its rank 0; MPI_COMM_NULL on the other ranks. Free with comm_free
 * where not null. Collective. */
MPI_Comm comm_node_leaders(MPI_Comm comm);

/* Every rank's `bytes` bytes, in rank order, into recv on root.
 * Collective. */
void comm_gather_bytes(const void *send, int bytes, void *recv, int root, MPI_Comm comm);

/* The MPI library's name and version (its first line) into out. */
void comm_library(char *out, size_t len);

/* Memory that every rank of node can read and write: this rank's segment
 * of bytes (page aligned, its own pages), the whole window open for direct
 * loads and stores (a passive epoch on every rank) until comm_shared_free.
 * Collective over node. */
void *comm_shared_alloc(size_t bytes, MPI_Comm node, MPI_Win *win);
/* The segment of node rank `rank`. Not collective. */
void *comm_shared_peer(MPI_Win win, int rank);
/* Make this rank's stores to the window visible, and others' visible to it,
 * across the next synchronising call (MPI_Win_sync). Not collective. */
void comm_shared_sync(MPI_Win win);
void comm_shared_free(MPI_Win *win); /* collective over the window's node */

/* Logical AND of ok over all ranks: nonzero only if every rank passed
 * nonzero. The way ranks agree to stop together. Collective. */
int comm_all_ok(int ok, MPI_Comm comm);

/* The lowest rank that passed ok = 0, or -1 when every rank passed nonzero.
 * Lets ranks stop together and one of them explain why. Collective. */
int comm_first_failure(int ok, MPI_Comm comm);

/* 0 when ok holds on every rank; else -1 with the message of the lowest
 * failing rank copied into every rank's message[len]. Collective. */
int comm_agree(int ok, char *message, size_t len, MPI_Comm comm);

/* Bitwise OR of bits over all ranks. Collective. */
int comm_or(int bits, MPI_Comm comm);

/* The sum of every rank's value modulo 2^64. Collective. */
uint64_t comm_sum_u64(uint64_t value, MPI_Comm comm);

/* Copy bytes from root to every rank. Collective. */
void comm_bcast(void *data, long bytes, int root, MPI_Comm comm);

/* Wait for every rank. Collective. */
void comm_barrier(MPI_Comm comm);

/* Abort every rank of the job with this exit status. Not collective. */
noreturn void comm_abort(int status);

/* Stop every rank with exit status `status` unless ok holds on all of
 * them: the lowest failing rank prints "mfres: error: MESSAGE"; MPI is
 * finalized cleanly (for bad input, found before any work). Collective. */
void comm_agree_or_exit(int ok, const char *message, int status, MPI_Comm comm);

/* Collective check after a step that may have failed on some ranks (a
 * system call that only rank 0 made, say): unless ok holds everywhere, the
 * lowest failing rank reports "fatal: MESSAGE" (formatted there, so errno
 * is its own) and aborts the job. */
#define MF_MESSAGE_MAX 1536
void comm_fatal_unless(int ok, MPI_Comm comm, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The table of every timer (timer.h) reduced over comm: min, mean, max, the
 * slowest rank and the share of the total; printed by rank 0. Collective. */
void comm_report_timers(FILE *out, MPI_Comm comm);

/* Seconds since an arbitrary origin (MPI_Wtime). Not collective. */
double comm_wtime(void);

#endif
