/* How scuse's daemons (`scuse serve`, `scuse tcmu serve`) take signals:
 * never in a handler, always as reads from a signalfd that their event
 * loop watches with everything else. SIGTERM and SIGINT ask for a stop
 * (every image flushed, exit 0); SIGHUP is the daemon's own "look
 * again" (serve: the images' sizes; tcmu serve: the devices). */
#ifndef SCUSE_DAEMON_SIG_H
#define SCUSE_DAEMON_SIG_H

/* Block SIGTERM, SIGINT and SIGHUP in the calling thread, and so in every
 * thread it starts afterwards (call it before starting any: a thread that
 * does not block them would take them with the default action), ignore
 * SIGPIPE, and return a non-blocking, close-on-exec signalfd for the
 * three; -errno on failure. The signals stay blocked after close(). */
int daemon_sig_open(void);

enum daemon_sig {
    DAEMON_SIG_NONE,                /* nothing (more) pending */
    DAEMON_SIG_STOP,                /* SIGTERM or SIGINT */
    DAEMON_SIG_HUP,                 /* SIGHUP */
};

/* The next signal read from fd; *name ("SIGTERM", ...) for log lines. */
enum daemon_sig daemon_sig_next(int fd, const char **name);

#endif
