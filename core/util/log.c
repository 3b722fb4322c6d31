#define _GNU_SOURCE
#include "util/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Set once from main() (log_set_level, log_open) before any thread
 * starts; read-only afterwards. */
static enum log_level cur_level = LOG_LVL_WARN;
static enum log_target target = LOG_TO_STDERR;
static int sock = -1;                   /* an unbound datagram socket, for sendto */
static struct sockaddr_un addr;
static socklen_t addr_len;
static char ident[32] = "scuse";

static const char *const names[] = { "off", "error", "warning", "info", "debug" };
/* syslog severities: err 3, warning 4, info 6, debug 7. */
static const int severity[] = { 7, 3, 4, 6, 7 };
#define FACILITY_DAEMON 3

void log_set_level(enum log_level lvl) { cur_level = lvl; }
enum log_level log_get_level(void) { return cur_level; }
enum log_target log_get_target(void) { return target; }

int log_parse_target(const char *name)
{
    return !strcmp(name, "stderr") ? LOG_TO_STDERR : !strcmp(name, "syslog") ? LOG_TO_SYSLOG
         : !strcmp(name, "journal") ? LOG_TO_JOURNAL : -1;
}

const char *log_socket_path(enum log_target t)
{
    const char *env = getenv(t == LOG_TO_SYSLOG ? "SCUSE_SYSLOG_SOCKET" : "SCUSE_JOURNAL_SOCKET");
    if (env && *env)
        return env;
    return t == LOG_TO_SYSLOG ? "/dev/log" : "/run/systemd/journal/socket";
}

int log_open(enum log_target t, const char *id)
{
    if (id)
        snprintf(ident, sizeof(ident), "%s", id);
    if (t == LOG_TO_STDERR) {
        target = t;
        return 0;
    }
    const char *path = log_socket_path(t);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(a.sun_path))
        return -ENAMETOOLONG;
    memcpy(a.sun_path, path, strlen(path) + 1);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
    /* Reachable now (a missing socket is a configuration error the
     * daemon reports at start); later sends go by address, so a syslog
     * daemon that restarts is found again. */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&a, len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    close(fd);
    if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    if (sock >= 0)
        close(sock);
    sock = fd;
    addr = a;
    addr_len = len;
    target = t;
    return 0;
}

static int send_syslog(enum log_level lvl, const char *line)
{
    char out[2200], stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
    int n = snprintf(out, sizeof(out), "<%d>%s %s[%d]: %s: %s",
                     FACILITY_DAEMON * 8 + severity[lvl], stamp, ident, (int)getpid(),
                     names[lvl], line);
    if (n < 0)
        return -EINVAL;
    size_t len = (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1;
    return sendto(sock, out, len, MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len) < 0 ? -errno
                                                                                         : 0;
}

/* Native journal protocol: FIELD=value lines; MESSAGE in the binary form
 * (name, newline, 64-bit little-endian length, bytes, newline) so that
 * nothing in it can end the field early. */
static int send_journal(enum log_level lvl, const char *line)
{
    char head[128];
    int n = snprintf(head, sizeof(head), "PRIORITY=%d\nSYSLOG_FACILITY=%d\n"
                     "SYSLOG_IDENTIFIER=%s\nSYSLOG_PID=%d\nMESSAGE\n", severity[lvl],
                     FACILITY_DAEMON, ident, (int)getpid());
    if (n < 0 || (size_t)n >= sizeof(head))
        return -EINVAL;
    uint64_t len = strlen(line);
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(len >> (8 * i));
    struct iovec iov[4] = { { head, (size_t)n }, { le, 8 }, { (void *)line, (size_t)len },
                            { "\n", 1 } };
    struct msghdr mh = { .msg_name = &addr, .msg_namelen = addr_len, .msg_iov = iov,
                         .msg_iovlen = 4 };
    return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    if (lvl > cur_level || lvl == LOG_LVL_OFF)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    int r = -1;
    if (target == LOG_TO_SYSLOG)
        r = send_syslog(lvl, line);
    else if (target == LOG_TO_JOURNAL)
        r = send_journal(lvl, line);
    if (r == 0)
        return;
    /* One fputs per message keeps lines from different threads whole. */
    char out[2100];
    snprintf(out, sizeof(out), "%s: %s: %s\n", ident, names[lvl], line);
    fputs(out, stderr);
}
