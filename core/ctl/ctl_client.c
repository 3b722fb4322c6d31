/* `scuse ctl SOCKET COMMAND [JSON-ARGS]`: one request, its answer
 * printed as indented JSON (exit 0 for a return, 1 for an error), events
 * that arrive meanwhile left out; `scuse ctl SOCKET --events [-n N]`:
 * every event, one compact line each, until the daemon goes (or N
 * events). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "ctl/ctl.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: scuse ctl SOCKET COMMAND ['{\"ARG\": VALUE, ...}']\n"
            "       scuse ctl SOCKET --events [-n N]\n"
            "  Sends COMMAND to the control socket of `scuse serve --control SOCKET` (or\n"
            "  `scuse tcmu serve --control`) and prints its answer as JSON; exit status 1\n"
            "  when the answer is an error. Commands: query-luns, lun-add, lun-remove,\n"
            "  lun-resize, medium-eject, medium-insert, quit (see scuse(1), CONTROL SOCKET).\n"
            "  --events  print every event, one JSON object a line (-n N: stop after N)\n");
}

/* Reads lines from a socket: what one read brought may hold several. */
struct reader {
    int fd;
    char buf[CTL_LINE_MAX + 2];
    size_t len;
};

/* The next line (without its newline) as a parsed object, or NULL at
 * the end of the stream or on garbage (msg says which). */
static json_t *next_object(struct reader *r, const char **msg)
{
    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        if (nl) {
            size_t n = (size_t)(nl - r->buf);
            json_error_t jerr;
            json_t *o = json_loadb(r->buf, n, 0, &jerr);
            memmove(r->buf, nl + 1, r->len - n - 1);
            r->len -= n + 1;
            if (!json_is_object(o)) {
                json_decref(o);
                *msg = "the daemon sent something that is not a JSON object";
                return NULL;
            }
            return o;
        }
        if (r->len == sizeof(r->buf)) {
            *msg = "the daemon sent a line too long";
            return NULL;
        }
        ssize_t n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *msg = n < 0 ? strerror(errno) : "the daemon closed the connection";
            return NULL;
        }
        r->len += (size_t)n;
    }
}

static int connect_to(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path)) {
        cli_fail(EXIT_USAGE, "ctl", "'%s': socket path too long", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        cli_fail(EXIT_USAGE, "ctl", "'%s': %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int follow_events(struct reader *r, long count)
{
    const char *msg;
    for (long seen = 0; count < 0 || seen < count;) {
        json_t *o = next_object(r, &msg);
        if (!o)
            return seen || count < 0 ? EXIT_OK : cli_fail(EXIT_USAGE, "ctl", "%s", msg);
        if (json_object_get(o, "event")) {
            char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (s)
                printf("%s\n", s);
            fflush(stdout);
            free(s);
            seen++;
        }
        json_decref(o);
    }
    return EXIT_OK;
}

static int one_command(struct reader *r, const char *cmd, const char *args_text)
{
    json_t *req = json_pack("{s:s}", "execute", cmd);
    if (args_text) {
        json_error_t jerr;
        json_t *args = json_loads(args_text, 0, &jerr);
        if (!json_is_object(args)) {
            json_decref(args);
            json_decref(req);
            return cli_fail(EXIT_USAGE, "ctl", "arguments must be a JSON object: %s",
                            args ? "not an object" : jerr.text);
        }
        json_object_set_new(req, "arguments", args);
    }
    json_object_set_new(req, "id", json_string("scuse-ctl"));
    char *line = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(req);
    if (!line)
        return cli_fail(EXIT_USAGE, "ctl", "out of memory");
    int w = write_all(r->fd, line, strlen(line));
    w = w ? w : write_all(r->fd, "\n", 1);
    free(line);
    if (w < 0)
        return cli_fail(EXIT_USAGE, "ctl", "cannot send the command: %s", strerror(errno));
    const char *msg;
    for (;;) {
        json_t *o = next_object(r, &msg);
        if (!o)
            return cli_fail(EXIT_USAGE, "ctl", "no answer: %s", msg);
        bool is_ret = json_object_get(o, "return") != NULL;
        bool is_err = json_object_get(o, "error") != NULL;
        if (is_ret || is_err) {
            json_object_del(o, "id");
            char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            if (s)
                printf("%s\n", s);
            free(s);
            json_decref(o);
            return is_ret ? EXIT_OK : EXIT_USAGE;
        }
        json_decref(o);             /* an event */
    }
}

int cmd_ctl(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        usage(stdout);
        return EXIT_OK;
    }
    if (argc < 3 || argc > 5) {
        usage(stderr);
        return EXIT_USAGE;
    }
    bool events = !strcmp(argv[2], "--events");
    long count = -1;
    if (events && argc == 5 && !strcmp(argv[3], "-n")) {
        char *end;
        count = strtol(argv[4], &end, 10);
        if (*end || count <= 0)
            return cli_fail(EXIT_USAGE, "ctl", "-n '%s': a positive count", argv[4]);
    } else if ((events && argc != 3) || (!events && argc > 4)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!events && argv[2][0] == '-')
        return cli_fail(EXIT_USAGE, "ctl", "unknown option '%s'", argv[2]);
    struct reader *r = calloc(1, sizeof(*r));
    if (!r)
        return cli_fail(EXIT_USAGE, "ctl", "out of memory");
    r->fd = connect_to(argv[1]);
    int rc = EXIT_USAGE;
    if (r->fd >= 0) {
        const char *msg;
        json_t *greet = next_object(r, &msg);
        if (!greet || !json_object_get(greet, "QMP"))
            rc = cli_fail(EXIT_USAGE, "ctl", "'%s': no control-socket greeting (%s)", argv[1],
                          greet ? "another protocol" : msg);
        else
            rc = events ? follow_events(r, count) : one_command(r, argv[2], argc == 4 ? argv[3]
                                                                                      : NULL);
        json_decref(greet);
        close(r->fd);
    }
    free(r);
    return rc;
}
