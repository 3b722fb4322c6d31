/* Daemon signals through a signalfd (daemon_sig.h). */
#define _GNU_SOURCE
#include "util/daemon_sig.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

int daemon_sig_open(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    int e = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (e)
        return -e;
    signal(SIGPIPE, SIG_IGN);       /* a peer gone is an error return, not a death */
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

enum daemon_sig daemon_sig_next(int fd, const char **name)
{
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t n = read(fd, &si, sizeof(si));
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(si))
            return DAEMON_SIG_NONE;
        switch (si.ssi_signo) {
        case SIGHUP:
            *name = "SIGHUP";
            return DAEMON_SIG_HUP;
        case SIGTERM:
            *name = "SIGTERM";
            return DAEMON_SIG_STOP;
        case SIGINT:
            *name = "SIGINT";
            return DAEMON_SIG_STOP;
        default:
            continue;               /* not one of ours (the fd was made elsewhere) */
        }
    }
}
