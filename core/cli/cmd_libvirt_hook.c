/* scuse libvirt-hook: libvirt's qemu hook for domains scuse serves.
 *
 * libvirt runs /etc/libvirt/hooks/qemu and the scripts in /etc/libvirt/hooks/qemu.d/
 * as HOOK DOMAIN OPERATION SUB-OPERATION EXTRA with the domain XML on
 * standard input and only LC_ALL, PATH and HOME in the environment; a
 * non-zero exit aborts the start, and `stopped` and `release` still come
 * after a failed `prepare`. This hook:
 *   prepare begin   a domain with scuse's metadata element converted for
 *                   vhost-user-scsi: starts `scuse serve --domain` on a
 *                   copy of the XML, detached, and returns once every
 *                   socket listens (its pidfile exists), 1 if it failed;
 *                   converted for vhost-scsi: `scuse tcmu up` (the
 *                   targets and backstores exist when it returns; `scuse
 *                   tcmu serve` serves them);
 *   stopped end,
 *   release end     stops that server (SIGTERM: images flushed and closed)
 *                   and waits for it, or `scuse tcmu down`; nothing to
 *                   stop is not an error;
 *   anything else,
 *   other domains   nothing, exit 0.
 * Everything it needs comes from the XML: the files live in the socket
 * directory the domain records (DIR/NAME.xml, .pid, .log). It never calls
 * back into libvirt.
 *   scuse libvirt-hook --install DIR [OPTIONS]   writes DIR/qemu.d/scuse,
 *                   the script libvirt runs (this binary's path, OPTIONS:
 *                   --configfs DIR, --log=stderr|syslog|journal, passed on
 *                   to every call and to the server it starts). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/tcmu_domain.h"
#include "domain/domain.h"
#include "util/log.h"

#define HOOK_MAX_XML (16u << 20)
#define START_TIMEOUT_MS 30000
#define STOP_TIMEOUT_MS 120000

static int hook_fail(const char *dom, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int hook_fail(const char *dom, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "scuse libvirt-hook: %s: %s\n", dom, msg);
    if (log_get_target() != LOG_TO_STDERR)
        log_error("libvirt-hook: %s: %s", dom, msg);
    return EXIT_USAGE;
}

static char *read_stdin(size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap >= HOOK_MAX_XML) {
                free(buf);
                return NULL;
            }
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
        ssize_t r = read(0, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int write_file(const char *path, const char *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    int r = done == len ? 0 : -EIO;
    close(fd);
    return r;
}

static pid_t read_pid(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    int pid = -1;
    if (fscanf(f, "%d", &pid) != 1)
        pid = -1;
    fclose(f);
    return pid > 1 ? (pid_t)pid : -1;
}

struct paths {
    char dir[PATH_MAX], xml[PATH_MAX + 16], pid[PATH_MAX + 16], log[PATH_MAX + 16];
};

static int paths_of(const struct domain *d, struct paths *p)
{
    snprintf(p->dir, sizeof(p->dir), "%s", d->socket_dir ? d->socket_dir : DOM_SOCKET_DIR);
    if (snprintf(p->xml, sizeof(p->xml), "%s/%s.xml", p->dir, d->name) >= (int)sizeof(p->xml) ||
        snprintf(p->pid, sizeof(p->pid), "%s/%s.pid", p->dir, d->name) >= (int)sizeof(p->pid) ||
        snprintf(p->log, sizeof(p->log), "%s/%s.log", p->dir, d->name) >= (int)sizeof(p->log))
        return -ENAMETOOLONG;
    return 0;
}

/* Whether pid runs `scuse serve --domain XML`. */
static bool serves(pid_t pid, const char *xml)
{
    char path[64], buf[8192];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    bool serve = false, domain = false;
    for (const char *a = buf; a < buf + n; a += strlen(a) + 1) {
        if (domain)
            return serve && strcmp(a, xml) == 0;
        serve = serve || strcmp(a, "serve") == 0;
        domain = strcmp(a, "--domain") == 0;
    }
    return false;
}

/* Stop the server named by the pidfile, if it runs, and wait for it. */
static int stop_server(const char *dom, const struct paths *p)
{
    pid_t pid = read_pid(p->pid);
    if (pid < 0)
        return EXIT_OK;                 /* never started, or gone already */
    /* Only the server this hook started is ours to signal (a stale
     * pidfile may name another process now): its command line names
     * this domain's XML copy. (Not its binary: an upgrade replaces it.) */
    if (!serves(pid, p->xml)) {
        unlink(p->pid);
        return EXIT_OK;
    }
    kill(pid, SIGTERM);
    for (unsigned waited = 0; waited < STOP_TIMEOUT_MS; waited += 20) {
        if (kill(pid, 0) < 0 && errno == ESRCH) {
            unlink(p->pid);             /* the server removes it; a crash would not */
            return EXIT_OK;
        }
        sleep_ms(20);
    }
    return hook_fail(dom, "scuse serve (pid %d) did not stop within %u s; see %s", (int)pid,
                     STOP_TIMEOUT_MS / 1000, p->log);
}

/* Why the server stopped: its last error line (the other controllers'
 * processes log their own stop after it), else its last line. */
static void last_line(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char line[1024];
    bool error = false;
    while (fgets(line, sizeof(line), f)) {
        bool e = strncmp(line, "scuse serve:", 12) == 0;
        if (line[0] != '\n' && (e || !error))
            snprintf(buf, len, "%s", line);
        error = error || e;
    }
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
}

/* The hook's own options (before DOMAIN, and in the installed script). */
struct hook_opts {
    const char *configfs;           /* --configfs DIR, for tcmu up/down */
    const char *log;                /* --log=TARGET, also the server's */
};

static int start_server(const char *dom, const struct domain *d, const struct paths *p,
                        const char *xml, size_t len, const struct hook_opts *ho)
{
    if (mkdir(p->dir, 0755) < 0 && errno != EEXIST)
        return hook_fail(dom, "socket directory '%s': %s", p->dir, strerror(errno));
    stop_server(dom, p);                /* one left from a start that went wrong */
    unlink(p->pid);
    int r = write_file(p->xml, xml, len);
    if (r < 0)
        return hook_fail(dom, "'%s': %s", p->xml, strerror(-r));
    char self[PATH_MAX];
    ssize_t m = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (m <= 0)
        return hook_fail(dom, "cannot find the scuse binary: %s", strerror(errno));
    self[m] = '\0';
    int logfd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0)
        return hook_fail(dom, "'%s': %s", p->log, strerror(errno));
    pid_t pid = fork();
    if (pid == 0) {
        /* Detached: its own session, no pipe of libvirt's held open (the
         * hook's output is read until it closes). */
        setsid();
        int nul = open("/dev/null", O_RDONLY);
        dup2(nul, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        char logopt[64];
        snprintf(logopt, sizeof(logopt), "--log=%s", ho->log ? ho->log : "stderr");
        execl(self, "scuse", "serve", "--domain", p->xml, "--pidfile", p->pid, "-v", logopt,
              (char *)NULL);
        _exit(127);
    }
    close(logfd);
    if (pid < 0)
        return hook_fail(dom, "fork: %s", strerror(errno));
    for (unsigned waited = 0; waited < START_TIMEOUT_MS; waited += 20) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            char why[1024];
            last_line(p->log, why, sizeof(why));
            return hook_fail(dom, "scuse serve exited with status %d before it listened (%s): %s",
                             WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), p->log, why);
        }
        if (read_pid(p->pid) == pid) {
            fprintf(stderr, "scuse libvirt-hook: %s: scuse serve (pid %d) serves %u "
                    "controller%s\n", dom, (int)pid, d->n_ctrl, d->n_ctrl == 1 ? "" : "s");
            return EXIT_OK;
        }
        sleep_ms(20);
    }
    kill(pid, SIGTERM);
    return hook_fail(dom, "scuse serve did not listen within %u s; see %s",
                     START_TIMEOUT_MS / 1000, p->log);
}

static int install(const char *dir, const struct hook_opts *ho)
{
    char self[PATH_MAX], qd[PATH_MAX], path[PATH_MAX + 16], tmp[PATH_MAX + 32];
    ssize_t m = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (m <= 0)
        return cli_fail(EXIT_USAGE, "libvirt-hook", "cannot find this binary: %s",
                        strerror(errno));
    self[m] = '\0';
    snprintf(qd, sizeof(qd), "%s/qemu.d", dir);
    if ((mkdir(dir, 0755) < 0 && errno != EEXIST) || (mkdir(qd, 0755) < 0 && errno != EEXIST))
        return cli_fail(EXIT_USAGE, "libvirt-hook", "'%s': %s", qd, strerror(errno));
    snprintf(path, sizeof(path), "%s/scuse", qd);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    char script[3 * PATH_MAX + 128], opts[2 * PATH_MAX + 64] = "";
    if (ho->configfs)
        snprintf(opts, sizeof(opts), " --configfs '%s'", ho->configfs);
    if (ho->log)
        snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts), " --log=%s", ho->log);
    int n = snprintf(script, sizeof(script),
                     "#!/bin/sh\n# libvirt's qemu hook for domains scuse serves "
                     "(scuse-domain(5)).\nexec '%s' libvirt-hook%s \"$@\"\n", self, opts);
    int r = write_file(tmp, script, (size_t)n);
    if (r == 0 && (chmod(tmp, 0755) < 0 || rename(tmp, path) < 0))
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return cli_fail(EXIT_USAGE, "libvirt-hook", "'%s': %s", path, strerror(-r));
    }
    printf("%s\n", path);
    return EXIT_OK;
}

/* Leading options: --configfs DIR, --log=TARGET, --install DIR. Returns
 * the index of the first other argument, or -1 after a usage error. */
static int hook_options(int argc, char **argv, struct hook_opts *ho, const char **install_dir)
{
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0 && strcmp(argv[i], "--help") != 0; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--log=", 6) == 0) {
            if (log_parse_target(a + 6) < 0) {
                cli_fail(EXIT_USAGE, "libvirt-hook", "--log '%s': expected stderr, syslog or "
                         "journal", a + 6);
                return -1;
            }
            ho->log = a + 6;
        } else if ((strcmp(a, "--configfs") == 0 || strcmp(a, "--install") == 0) && i + 1 < argc) {
            *(a[2] == 'c' ? &ho->configfs : install_dir) = argv[++i];
        } else {
            cli_fail(EXIT_USAGE, "libvirt-hook", "unknown option '%s'", a);
            return -1;
        }
    }
    return i;
}

int cmd_libvirt_hook(int argc, char **argv)
{
    struct hook_opts ho = { 0 };
    const char *install_dir = NULL;
    int first = hook_options(argc, argv, &ho, &install_dir);
    if (first < 0)
        return EXIT_USAGE;
    if (ho.log) {
        /* What the hook does, at info; unreachable, it tells libvirt. */
        log_set_level(LOG_LVL_INFO);
        int r = log_open(log_parse_target(ho.log), "scuse-hook");
        if (r < 0)
            return cli_fail(EXIT_USAGE, "libvirt-hook", "--log=%s: %s: %s", ho.log,
                            log_socket_path(log_parse_target(ho.log)), strerror(-r));
    }
    if (install_dir) {
        if (first != argc)
            return cli_fail(EXIT_USAGE, "libvirt-hook", "--install: unexpected '%s'",
                            argv[first]);
        return install(install_dir, &ho);
    }
    argc -= first - 1;
    argv += first - 1;
    if (argc < 3 || strcmp(argv[1], "--help") == 0) {
        FILE *f = argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr;
        fprintf(f, "usage: scuse libvirt-hook [--configfs DIR] [--log=stderr|syslog|journal]\n"
                   "                          DOMAIN OPERATION SUB-OPERATION [EXTRA] < DOMAIN.xml\n"
                   "       scuse libvirt-hook --install HOOKS-DIR [--configfs DIR] [--log=...]\n"
                   "                          (writes HOOKS-DIR/qemu.d/scuse, with those options)\n"
                   "  libvirt's qemu hook: at 'prepare begin' starts scuse serve --domain for a\n"
                   "  domain converted by scuse domain (vhost-user-scsi), or makes its vhost-scsi\n"
                   "  targets (scuse tcmu up; vhost-scsi), at 'stopped end' and 'release end'\n"
                   "  stops it (scuse tcmu down); other domains and operations: nothing.\n");
        return f == stdout ? EXIT_OK : EXIT_USAGE;
    }
    const char *dom = argv[1], *op = argv[2], *sub = argc > 3 ? argv[3] : "";
    bool start = strcmp(op, "prepare") == 0 && strcmp(sub, "begin") == 0;
    bool stop = (strcmp(op, "release") == 0 || strcmp(op, "stopped") == 0) &&
                strcmp(sub, "end") == 0;
    if (!start && !stop)
        return EXIT_OK;
    size_t len = 0;
    char *xml = read_stdin(&len);
    if (!xml)
        return hook_fail(dom, "cannot read the domain XML from standard input");
    /* Only domains carrying scuse's element are looked at: another
     * domain's XML is not scuse's to judge. */
    if (!memmem(xml, len, DOM_NS, strlen(DOM_NS))) {
        free(xml);
        return EXIT_OK;
    }
    struct domain *d;
    struct scuse_err err = { 0 };
    char name[300];
    snprintf(name, sizeof(name), "domain %s (standard input)", dom);
    if (dom_parse(xml, len, name, &d, &err) < 0) {
        free(xml);
        fprintf(stderr, "scuse libvirt-hook: %s\n", err.msg);
        return stop ? EXIT_OK : EXIT_USAGE;
    }
    int rc = EXIT_OK;
    struct paths p;
    if (strcmp(d->transport, "vhost-scsi") == 0) {
        /* The kernel serves it: the targets are made before QEMU opens
         * /dev/vhost-scsi, removed once it is gone. */
        struct tcmu_domain_opts to = { .configfs = ho.configfs };
        struct scuse_err terr = { 0 };
        if ((start ? tcmu_domain_up(d, xml, len, &to, &terr)
                   : tcmu_domain_down(d, &to, &terr)) < 0)
            rc = hook_fail(dom, "scuse tcmu %s: %s", start ? "up" : "down", terr.msg);
        else
            log_info("libvirt-hook: %s: vhost-scsi targets %s", dom, start ? "made" : "removed");
    } else if (strcmp(d->transport, "vhost-user-scsi") != 0) {
        /* scuse's settings only, not converted: libvirt serves its disks. */
    } else if (paths_of(d, &p) < 0) {
        rc = hook_fail(dom, "the socket directory's path is too long");
    } else if (start) {
        rc = start_server(dom, d, &p, xml, len, &ho);
    } else {
        rc = stop_server(dom, &p);
    }
    dom_free(d);
    free(xml);
    return rc;
}
