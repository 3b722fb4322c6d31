/* The control socket server (core/ctl/ctl_server.c) over real unix
 * sockets, the server driven by this thread as a daemon's loop would:
 * the socket's mode (0600, 0660 with a group), a stale socket replaced
 * and other files refused, the greeting, requests cut anywhere (bytes
 * one at a time), several in one write, CRLF and empty lines, the last
 * line without newline, an oversize line (one error, the next request
 * answered), several clients with events to each, events sent from
 * other threads while the loop answers (TSan runs this), and a client
 * that reads nothing dropped without hurting the others. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl/ctl.h"
#include "testutil.h"

static int removes;                 /* lun-remove calls (loop thread only) */

static int b_remove(void *o, uint16_t lun, struct scuse_err *err)
{
    (void)o;
    removes++;
    return lun == 404 ? err_set(err, -ENODEV, "LUN %u does not exist", lun) : 0;
}

static int b_query(void *o, json_t **ret, struct scuse_err *err)
{
    (void)o;
    (void)err;
    *ret = json_array();
    return 0;
}

static const struct ctl_backend be = { .lun_remove = b_remove, .query_luns = b_query,
                                       .name = "test" };

static struct ctl_server *start(const char *name, const struct ctl_server_config *over)
{
    struct ctl_server_config cfg = { .path = tu_path(name), .version = "0.1.0" };
    if (over) {
        cfg = *over;
        cfg.path = tu_path(name);
        cfg.version = "0.1.0";
    }
    struct ctl_server *s;
    struct scuse_err err = { 0 };
    if (ctl_server_create(&cfg, &be, NULL, &s, &err) < 0)
        fail_msg("server: %s", err.msg);
    return s;
}

static int dial(const char *name)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", tu_path(name));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* A client's received bytes, split into lines as they come. */
struct cli {
    int fd;
    char buf[1 << 17];
    size_t len;
    bool eof;
};

static void cli_open(struct cli *c, const char *name)
{
    memset(c, 0, sizeof(*c));
    c->fd = dial(name);
}

/* Run the server until c has a whole line (or EOF): the line, parsed. */
static json_t *next(struct ctl_server *s, struct cli *c)
{
    uint64_t until = now_ms() + 5000;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            json_error_t jerr;
            json_t *o = json_loadb(c->buf, (size_t)(nl - c->buf), 0, &jerr);
            if (!o)
                fail_msg("not JSON: %.*s", (int)(nl - c->buf), c->buf);
            c->len -= (size_t)(nl - c->buf) + 1;
            memmove(c->buf, nl + 1, c->len);
            return o;
        }
        if (c->eof)
            return NULL;
        if (now_ms() > until)
            fail_msg("no line from the server within 5 s");
        ctl_server_handle(s);
        struct pollfd p[2] = { { .fd = ctl_server_fd(s), .events = POLLIN },
                               { .fd = c->fd, .events = POLLIN } };
        poll(p, 2, 20);
        if (p[1].revents) {
            ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN))
                c->eof = true;
            else if (n > 0)
                c->len += (size_t)n;
        }
    }
}

static void say(struct cli *c, const char *text)
{
    size_t n = strlen(text);
    assert_int_equal(send(c->fd, text, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void want_greeting(struct ctl_server *s, struct cli *c)
{
    json_t *g = next(s, c);
    assert_non_null(json_object_get(g, "QMP"));
    json_decref(g);
}

static void want_return(struct ctl_server *s, struct cli *c)
{
    json_t *o = next(s, c);
    if (!o || !json_object_get(o, "return"))
        fail_msg("not a return: %s", o ? json_dumps(o, 0) : "(EOF)");
    json_decref(o);
}

static void want_error(struct ctl_server *s, struct cli *c, const char *cls, const char *part)
{
    json_t *o = next(s, c);
    json_t *e = json_object_get(o, "error");
    if (!e)
        fail_msg("not an error: %s", o ? json_dumps(o, 0) : "(EOF)");
    assert_string_equal(json_string_value(json_object_get(e, "class")), cls);
    if (!strstr(json_string_value(json_object_get(e, "desc")), part))
        fail_msg("desc lacks '%s': %s", part, json_dumps(o, 0));
    json_decref(o);
}

static void test_socket_mode(void **state)
{
    (void)state;
    struct ctl_server *s = start("m.sock", NULL);
    struct stat st;
    assert_int_equal(stat(tu_path("m.sock"), &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    ctl_server_destroy(s);
    assert_int_equal(stat(tu_path("m.sock"), &st), -1);
    /* With a group: 0660 and that group (ours: no privilege needed). */
    struct ctl_server_config g = { .gid = getgid(), .have_gid = true };
    s = start("g.sock", &g);
    assert_int_equal(stat(tu_path("g.sock"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0660);
    assert_int_equal(st.st_gid, getgid());
    ctl_server_destroy(s);
}

static void test_stale_and_busy(void **state)
{
    (void)state;
    /* A socket nobody listens on is replaced. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", tu_path("st.sock"));
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    struct ctl_server *s = start("st.sock", NULL);
    /* One that listens is not. */
    struct ctl_server_config cfg = { .path = tu_path("st.sock") };
    struct ctl_server *s2;
    struct scuse_err err = { 0 };
    assert_int_equal(ctl_server_create(&cfg, &be, NULL, &s2, &err), -EADDRINUSE);
    assert_non_null(strstr(err.msg, "another process is listening"));
    ctl_server_destroy(s);
    /* Nor is a regular file. */
    tu_run("echo data > plain");
    cfg.path = tu_path("plain");
    err_clear(&err);
    assert_int_equal(ctl_server_create(&cfg, &be, NULL, &s2, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "is not a socket"));
}

static void test_framing(void **state)
{
    (void)state;
    struct ctl_server *s = start("f.sock", NULL);
    struct cli *c = malloc(sizeof(*c));
    cli_open(c, "f.sock");
    want_greeting(s, c);
    /* One byte at a time, the server running between them. */
    const char *req = "{\"execute\": \"lun-remove\", \"arguments\": {\"lun\": 3}}\n";
    int before = removes;
    for (const char *p = req; *p; p++) {
        assert_int_equal(send(c->fd, p, 1, 0), 1);
        ctl_server_handle(s);
        if (p[1])
            assert_int_equal(removes, before);      /* nothing before the newline */
    }
    want_return(s, c);
    assert_int_equal(removes, before + 1);
    /* Three in one write (CRLF, an empty line, blanks), answered in order. */
    say(c, "{\"execute\": \"lun-remove\", \"arguments\": {\"lun\": 404}}\r\n\n   \n"
           "{\"execute\": \"nope\"}\n{\"execute\": \"query-luns\"}\n");
    want_error(s, c, "DeviceNotFound", "LUN 404 does not exist");
    want_error(s, c, "CommandNotFound", "nope");
    want_return(s, c);
    /* An oversize line: one error, the rest of it skipped, then served. */
    size_t big = CTL_LINE_MAX + 5000;
    char *junk = malloc(big);
    memset(junk, 'x', big);
    size_t off = 0;
    while (off < big) {
        ssize_t n = send(c->fd, junk + off, big - off, MSG_DONTWAIT);
        if (n > 0)
            off += (size_t)n;
        ctl_server_handle(s);
    }
    free(junk);
    say(c, "yyy\n{\"execute\": \"query-luns\"}\n");
    want_error(s, c, "GenericError", "longer than 65536 bytes");
    want_return(s, c);
    /* A line of exactly the limit is read (and is not JSON). */
    char *edge = malloc(CTL_LINE_MAX + 2);
    memset(edge, ' ', CTL_LINE_MAX);
    edge[0] = '[';
    edge[CTL_LINE_MAX] = '\n';
    edge[CTL_LINE_MAX + 1] = '\0';
    say(c, edge);
    free(edge);
    want_error(s, c, "GenericError", "JSON parse error");
    /* The last request without its newline, then the write side closed. */
    say(c, "{\"execute\": \"query-luns\"}");
    shutdown(c->fd, SHUT_WR);
    want_return(s, c);
    assert_null(next(s, c));                        /* and the server hung up */
    close(c->fd);
    free(c);
    ctl_server_destroy(s);
}

struct emitter {
    struct ctl_server *s;
    int n;
};

static void *emit_main(void *arg)
{
    struct emitter *e = arg;
    for (int i = 0; i < e->n; i++)
        ctl_server_event(e->s, "LUN_ADDED", json_pack("{s:i}", "lun", i));
    return NULL;
}

static void test_clients_and_events(void **state)
{
    (void)state;
    struct ctl_server *s = start("e.sock", NULL);
    enum { NC = 3, NEV = 200 };
    struct cli *c = calloc(NC, sizeof(*c));
    for (int i = 0; i < NC; i++) {
        cli_open(&c[i], "e.sock");
        want_greeting(s, &c[i]);
    }
    /* Events from another thread while the loop answers requests. */
    struct emitter em = { .s = s, .n = NEV };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, emit_main, &em), 0);
    for (int k = 0; k < 20; k++)
        say(&c[0], "{\"execute\": \"query-luns\"}\n");
    pthread_join(th, NULL);
    /* Every client sees every event, in order; client 0 its 20 answers
     * too, somewhere among them. */
    for (int i = 0; i < NC; i++) {
        int seen = 0, answers = 0;
        while (seen < NEV || (i == 0 && answers < 20)) {
            json_t *o = next(s, &c[i]);
            assert_non_null(o);
            if (json_object_get(o, "event")) {
                assert_string_equal(json_string_value(json_object_get(o, "event")), "LUN_ADDED");
                json_t *d = json_object_get(o, "data");
                assert_int_equal(json_integer_value(json_object_get(d, "lun")), seen);
                seen++;
            } else {
                assert_non_null(json_object_get(o, "return"));
                answers++;
            }
            json_decref(o);
        }
        assert_int_equal(answers, i == 0 ? 20 : 0);
    }
    for (int i = 0; i < NC; i++)
        close(c[i].fd);
    free(c);
    ctl_server_destroy(s);
}

static void test_deaf_client_dropped(void **state)
{
    (void)state;
    struct ctl_server *s = start("d.sock", NULL);
    struct cli *deaf = malloc(sizeof(*deaf)), *good = malloc(sizeof(*good));
    cli_open(deaf, "d.sock");
    cli_open(good, "d.sock");
    want_greeting(s, deaf);
    want_greeting(s, good);
    /* The deaf one never reads: its socket fills, then the server's
     * buffer for it (4 MiB), and it is let go. The good one reads along. */
    char pad[1000];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int i = 0; i < 6000; i++) {
        ctl_server_event(s, "PAD", json_pack("{s:s}", "pad", pad));
        json_t *o = next(s, good);
        json_decref(o);
    }
    ctl_server_handle(s);
    /* The deaf client finds the end of its stream after what was sent. */
    size_t got = 0;
    char buf[65536];
    for (;;) {
        ctl_server_handle(s);
        ssize_t n = recv(deaf->fd, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    assert_true(got < 6000u * 1100u);
    /* The good one is still served. */
    say(good, "{\"execute\": \"query-luns\"}\n");
    want_return(s, good);
    close(deaf->fd);
    close(good->fd);
    free(deaf);
    free(good);
    ctl_server_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socket_mode),
        cmocka_unit_test(test_stale_and_busy),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_clients_and_events),
        cmocka_unit_test(test_deaf_client_dropped),
    };
    if (tu_dir_make("ctl-server") < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, tu_teardown);
}
