/*
 * stop: turning signals into a request to stop cleanly.
 *
 * SIGTERM, SIGUSR1 and SIGINT set a flag that the step loop polls: the run
 * then writes a checkpoint at the end of the current step and exits 3. A
 * second SIGINT ends the process at once (exit 130); since every file is
 * written under a temporary name and renamed when whole, that never damages
 * one.
 */
#ifndef MFRES_STOP_H
#define MFRES_STOP_H

/* Install the handlers. Not collective; `train` calls it first thing, even
 * before MPI_Init, so that no signal during start-up is fatal. */
void stop_install(void);

/* The first signal received, or 0. Not collective. */
int stop_requested(void);

#endif
