/* scuse serve --domain FILE.xml: every virtio-scsi controller of a libvirt
 * domain (the original or the one `scuse domain` converted) served on its
 * vhost-user-scsi socket, DIR/<name>-scsiN.sock, its disks as LUNs (LUN =
 * unit), each with the chain and settings its <disk> gives.
 *
 * One process per controller: a vhost-user server loop serves one
 * front-end on one socket, and its stop flag is the loop thread's own, so
 * the controllers are forked children of this process, which waits until
 * every socket listens (then writes --pidfile), passes SIGTERM, SIGINT and
 * SIGHUP on to them and exits with the worst status among them. A child
 * that cannot start stops the others: the domain is served whole or not
 * at all. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <grp.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "domain/domain.h"
#include "scsi/dispatch.h"
#include "util/log.h"

struct sd_opts {
    const char *file, *socket_dir, *pidfile;
    bool once;
    unsigned workers;
    int verbose;
    int socket_mode;                /* -1: as made (0755 less the umask) */
    gid_t socket_gid;
    bool have_gid;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: scuse serve --domain FILE.xml [--socket-dir DIR] [--pidfile FILE] [--once]\n"
            "                   [--workers N] [-v]\n"
            "  Serves every <controller type='scsi' model='virtio-scsi'> of a libvirt domain\n"
            "  that has disks on DIR/<name>-scsiN.sock (vhost-user-scsi), the disks as LUNs\n"
            "  (LUN = unit) as scuse-domain(5) maps them; one process per controller.\n"
            "  --socket-dir DIR  default: the one the domain records, else " DOM_SOCKET_DIR "\n"
            "  --pidfile FILE    written once every socket listens\n"
            "  --socket-mode M   the sockets' mode (octal, e.g. 0660), so QEMU's user connects\n"
            "  --socket-group G  the sockets' group (name or number); both default to the\n"
            "                    domain's <scuse:transport socket-mode socket-group>\n"
            "  --once            each controller's server ends when its VM disconnects\n"
            "  --log=stderr|syslog|journal  where the log goes (default stderr)\n"
            "With NOTIFY_SOCKET set (systemd Type=notify) it sends READY=1 once every\n"
            "socket listens, STOPPING=1 when it stops.\n");
}

static int parse(struct sd_opts *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "domain", required_argument, NULL, 'd' },
        { "socket-dir", required_argument, NULL, 's' },
        { "pidfile", required_argument, NULL, 'p' },
        { "once", no_argument, NULL, 'o' },
        { "workers", required_argument, NULL, 'w' },
        { "socket-mode", required_argument, NULL, 'm' },
        { "socket-group", required_argument, NULL, 'g' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    uint64_t v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': o->file = optarg; break;
        case 's': o->socket_dir = optarg; break;
        case 'p': o->pidfile = optarg; break;
        case 'o': o->once = true; break;
        case 'w':
            if (cli_parse_size(optarg, &v) < 0 || v == 0 || v > DISP_MAX_WORKERS)
                return cli_fail(EXIT_USAGE, "serve", "bad --workers '%s' (1..%d)", optarg,
                                DISP_MAX_WORKERS);
            o->workers = (unsigned)v;
            break;
        case 'm': {
            char *end;
            long m = strtol(optarg, &end, 8);
            if (!*optarg || *end || m < 0 || m > 0777)
                return cli_fail(EXIT_USAGE, "serve", "--socket-mode '%s': octal, 0 to 0777",
                                optarg);
            o->socket_mode = (int)m;
            break;
        }
        case 'g': {
            char *end;
            unsigned long g = strtoul(optarg, &end, 10);
            struct group *gr = *end ? getgrnam(optarg) : NULL;
            if (!*optarg || (*end && !gr))
                return cli_fail(EXIT_USAGE, "serve", "--socket-group '%s': no such group",
                                optarg);
            o->socket_gid = gr ? gr->gr_gid : (gid_t)g;
            o->have_gid = true;
            break;
        }
        case 'v': o->verbose++; break;
        case 'h': usage(stdout); return -1;
        case ':':
            return cli_fail(EXIT_USAGE, "serve", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_fail(EXIT_USAGE, "serve", "unknown option '%s' with --domain",
                            argv[optind - 1]);
        }
    }
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "serve", "unexpected argument '%s'", argv[optind]);
    return 0;
}

/* The child for controller k: its LUNs, served until told to stop. */
static int serve_controller(const struct sd_opts *o, const struct domain *d,
                            const struct dom_controller *k, const char *socket, int ready_fd)
{
    struct serve_lun_spec *specs = calloc(k->n_disks, sizeof(*specs));
    char (*what)[160] = calloc(k->n_disks, sizeof(*what));
    if (!specs || !what) {
        free(specs);
        free(what);
        return cli_fail(EXIT_USAGE, "serve", "out of memory");
    }
    unsigned n = 0;
    for (unsigned i = 0; i < d->n_disks; i++) {
        const struct dom_disk *disk = &d->disks[i];
        if (disk->controller != k->index)
            continue;
        struct serve_lun_spec *sp = &specs[n];
        snprintf(what[n], sizeof(what[n]), "%s:%u: <disk> %s", d->file, disk->line, disk->dev);
        sp->id = (uint16_t)disk->unit;
        sp->what = what[n];
        sp->file = disk->source;
        sp->fmt = disk->fmt;
        sp->flags = disk->open_flags;
        sp->opts = (struct blk_opts){ .backing = disk->chain, .n_backing = disk->n_chain,
                                      .backing_end = disk->chain_end, .fmt = disk->fmt_opts };
        sp->cfg = disk->cfg;
        n++;
    }
    struct serve_daemon_opts so = { .socket = socket, .once = o->once, .workers = o->workers,
                                    .ready_fd = ready_fd };
    int rc = serve_luns(&so, specs, n);
    free(specs);
    free(what);
    return rc;
}

static int write_pidfile(const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    fprintf(f, "%d\n", (int)getpid());
    return fclose(f) == 0 ? 0 : -EIO;
}

/* systemd's readiness protocol: one datagram to $NOTIFY_SOCKET ('@' for
 * the abstract namespace). Without it, nothing. */
static void notify(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, path, strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
        log_warn("NOTIFY_SOCKET: %s", strerror(errno));
    close(fd);
}

struct child {
    pid_t pid;
    int ready;                      /* read end of its readiness pipe, -1 once read */
    int status;                     /* exit status once reaped, -1 before */
    unsigned index;
};

static void signal_all(struct child *ch, unsigned n, int sig)
{
    for (unsigned i = 0; i < n; i++)
        if (ch[i].pid > 0 && ch[i].status < 0)
            kill(ch[i].pid, sig);
}

static unsigned reap(struct child *ch, unsigned n)
{
    unsigned left = 0;
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0)
        for (unsigned i = 0; i < n; i++)
            if (ch[i].pid == p)
                ch[i].status = WIFEXITED(st) ? WEXITSTATUS(st) : EXIT_IMAGE;
    for (unsigned i = 0; i < n; i++)
        left += ch[i].status < 0;
    return left;
}

/* Once every socket listens: the mode and group QEMU's user needs. */
static int socket_perms(const struct sd_opts *o, char (*sockets)[512], unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (o->socket_mode >= 0 && chmod(sockets[i], (mode_t)o->socket_mode) < 0)
            return cli_fail(EXIT_USAGE, "serve", "--socket-mode on '%s': %s", sockets[i],
                            strerror(errno));
        if (o->have_gid && chown(sockets[i], (uid_t)-1, o->socket_gid) < 0)
            return cli_fail(EXIT_USAGE, "serve", "--socket-group on '%s': %s", sockets[i],
                            strerror(errno));
    }
    return 0;
}

/* Wait for readiness, then run until every child is gone. */
static int supervise(const struct sd_opts *o, struct child *ch, unsigned n, int sigfd,
                     char (*sockets)[512])
{
    unsigned ready = 0;
    bool failed = false, stopping = false;
    for (;;) {
        unsigned left = reap(ch, n);
        for (unsigned i = 0; i < n; i++)
            if (ch[i].status > 0 && !stopping) {
                failed = ready < n;     /* one did not start: stop the rest */
                stopping = true;
                signal_all(ch, n, SIGTERM);
            }
        if (!left)
            break;
        struct pollfd pf[DOM_MAX_CONTROLLERS + 1];
        unsigned np = 0;
        pf[np++] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
        for (unsigned i = 0; i < n; i++)
            if (ch[i].ready >= 0)
                pf[np++] = (struct pollfd){ .fd = ch[i].ready, .events = POLLIN };
        if (poll(pf, np, -1) < 0 && errno != EINTR)
            break;
        for (unsigned i = 0, j = 1; i < n; i++) {
            if (ch[i].ready < 0)
                continue;
            if (pf[j++].revents) {
                char b;
                if (read(ch[i].ready, &b, 1) == 1 && ++ready == n && !stopping) {
                    int r = socket_perms(o, sockets, n) ? -EPERM : 0;
                    if (!r && o->pidfile && (r = write_pidfile(o->pidfile)) < 0)
                        fprintf(stderr, "scuse serve: --pidfile '%s': %s\n", o->pidfile,
                                strerror(-r));
                    if (r < 0) {
                        failed = stopping = true;
                        signal_all(ch, n, SIGTERM);
                    } else {
                        log_info("%s: %u controller%s served", o->file, n, n == 1 ? "" : "s");
                        char msg[64];
                        snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d", (int)getpid());
                        notify(msg);
                    }
                }
                close(ch[i].ready);
                ch[i].ready = -1;
            }
        }
        struct signalfd_siginfo si;
        while (pf[0].revents && read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            if (si.ssi_signo == SIGCHLD)
                continue;
            if (si.ssi_signo == SIGHUP) {
                signal_all(ch, n, SIGHUP);
                continue;
            }
            if (!stopping)
                notify("STOPPING=1");
            stopping = true;
            signal_all(ch, n, SIGTERM);
        }
    }
    int rc = failed ? EXIT_USAGE : EXIT_OK;
    for (unsigned i = 0; i < n; i++)
        if (ch[i].status > rc)
            rc = ch[i].status;
    if (o->pidfile && ready == n && !failed)
        unlink(o->pidfile);
    return rc;
}

int cmd_serve_domain(int argc, char **argv)
{
    struct sd_opts o = { .socket_mode = -1 };
    int rc = parse(&o, argc, argv);
    if (rc)
        return rc < 0 ? EXIT_OK : rc;
    if (!getenv("SCUSE_LOG"))
        log_set_level(o.verbose >= 2 ? LOG_LVL_DEBUG
                      : o.verbose == 1 ? LOG_LVL_INFO : LOG_LVL_WARN);
    struct domain *d;
    struct scuse_err err = { 0 };
    if (dom_load(o.file, &d, &err) < 0) {
        fprintf(stderr, "scuse serve: %s\n", err.msg);
        return EXIT_USAGE;
    }
    /* The sockets' mode and group: the command line's, else the domain's. */
    if (o.socket_mode < 0)
        o.socket_mode = d->socket_mode;
    if (!o.have_gid && d->socket_group) {
        char *end;
        unsigned long g = strtoul(d->socket_group, &end, 10);
        struct group *gr = *end ? getgrnam(d->socket_group) : NULL;
        if (*end && !gr) {
            fprintf(stderr, "scuse serve: %s: socket-group '%s': no such group\n", o.file,
                    d->socket_group);
            dom_free(d);
            return EXIT_USAGE;
        }
        o.socket_gid = gr ? gr->gr_gid : (gid_t)g;
        o.have_gid = true;
    }
    if (d->transport[0] && strcmp(d->transport, "vhost-user-scsi") != 0) {
        fprintf(stderr, "scuse serve: %s: converted for %s: the kernel serves it (LIO TCMU: "
                "scuse tcmu up, scuse tcmu serve)\n", o.file, d->transport);
        dom_free(d);
        return EXIT_USAGE;
    }
    struct child ch[DOM_MAX_CONTROLLERS];
    char sockets[DOM_MAX_CONTROLLERS][512];
    unsigned n = 0;
    for (unsigned c = 0; c < d->n_ctrl; c++) {
        if (!d->ctrl[c].n_disks)
            continue;
        if (dom_socket_path(d, &d->ctrl[c], o.socket_dir, sockets[n], sizeof(sockets[n])) < 0) {
            fprintf(stderr, "scuse serve: %s: controller %u's socket path is too long\n",
                    o.file, d->ctrl[c].index);
            dom_free(d);
            return EXIT_USAGE;
        }
        ch[n++] = (struct child){ .pid = -1, .ready = -1, .status = -1,
                                  .index = d->ctrl[c].index };
    }
    if (!n) {
        fprintf(stderr, "scuse serve: %s: no virtio-scsi controller has disks\n", o.file);
        dom_free(d);
        return EXIT_USAGE;
    }
    /* The socket directory (its parent must exist), for QEMU to reach. */
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", sockets[0]);
    *strrchr(dir, '/') = '\0';
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "scuse serve: socket directory '%s': %s\n", dir, strerror(errno));
        dom_free(d);
        return EXIT_USAGE;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sigfd < 0) {
        fprintf(stderr, "scuse serve: signalfd: %s\n", strerror(errno));
        dom_free(d);
        return EXIT_USAGE;
    }
    pid_t parent = getpid();
    fflush(NULL);
    for (unsigned i = 0; i < n; i++) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
            fprintf(stderr, "scuse serve: pipe: %s\n", strerror(errno));
            break;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            close(sigfd);
            prctl(PR_SET_PDEATHSIG, SIGTERM);   /* never outlive the supervisor */
            if (getppid() != parent)
                _exit(EXIT_USAGE);
            sigset_t chld;
            sigemptyset(&chld);
            sigaddset(&chld, SIGCHLD);
            sigprocmask(SIG_UNBLOCK, &chld, NULL);
            int r = serve_controller(&o, d, dom_controller(d, ch[i].index), sockets[i], p[1]);
            dom_free(d);
            fflush(NULL);
            _exit(r);
        }
        close(p[1]);
        if (pid < 0) {
            fprintf(stderr, "scuse serve: fork: %s\n", strerror(errno));
            close(p[0]);
            break;
        }
        ch[i].pid = pid;
        ch[i].ready = p[0];
    }
    for (unsigned i = 0; i < n; i++)
        if (ch[i].pid < 0)
            ch[i].status = EXIT_USAGE;      /* never started: the others are stopped */
    rc = supervise(&o, ch, n, sigfd, sockets);
    close(sigfd);
    dom_free(d);
    return rc;
}
