/*
 * stop: signal handlers that only set a flag (see stop.h).
 */
#include "stop.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    if (sig == SIGINT && stop_signal == SIGINT)
        _exit(130); /* a second Ctrl-C: stop now */
    if (!stop_signal)
        stop_signal = sig;
}

void stop_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

int stop_requested(void) { return stop_signal; }
