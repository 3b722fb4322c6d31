/* `scuse tcmu serve --control` (core/cli/cmd_tcmu_ctl.c) on the daemon
 * with a fake kernel (test_tcmu_daemon_env.h): the control socket's
 * commands reach the TCMU devices by UIO minor. query-luns lists the
 * device (name, image, size); lun-resize after the raw image grew raises
 * CAPACITY DATA HAS CHANGED on the ring and READ CAPACITY gives the new
 * size; an unknown minor is DeviceNotFound; lun-add and lun-remove name
 * `scuse tcmu create`/`delete`; medium commands refuse a disk; quit stops
 * the daemon. The loop's watch callback is called by this thread, as
 * tcmu_daemon_run would. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cli/cli.h"
#include "test_tcmu_daemon_env.h"

static int client;
static char inbuf[1 << 16];
static size_t inlen;

/* The next line from the socket, the daemon's watch run meanwhile. */
static json_t *next_line(void)
{
    for (int i = 0; i < 500; i++) {
        char *nl = memchr(inbuf, '\n', inlen);
        if (nl) {
            json_t *o = json_loadb(inbuf, (size_t)(nl - inbuf), 0, NULL);
            inlen -= (size_t)(nl - inbuf) + 1;
            memmove(inbuf, nl + 1, inlen);
            assert_non_null(o);
            return o;
        }
        dm->watch_cb(dm->watch_arg);
        struct pollfd p = { .fd = client, .events = POLLIN };
        if (poll(&p, 1, 10) == 1) {
            ssize_t n = recv(client, inbuf + inlen, sizeof(inbuf) - inlen, MSG_DONTWAIT);
            assert_true(n > 0);
            inlen += (size_t)n;
        }
    }
    fail_msg("no answer from the control socket");
    return NULL;
}

static json_t *ask(const char *line)
{
    assert_int_equal(send(client, line, strlen(line), 0), (ssize_t)strlen(line));
    for (;;) {
        json_t *o = next_line();
        if (!json_object_get(o, "event"))
            return o;
        json_decref(o);
    }
}

static void want_error(const char *line, const char *cls, const char *part)
{
    json_t *o = ask(line);
    json_t *e = json_object_get(o, "error");
    if (!e)
        fail_msg("%s: not an error", line);
    assert_string_equal(json_string_value(json_object_get(e, "class")), cls);
    if (!strstr(json_string_value(json_object_get(e, "desc")), part))
        fail_msg("%s: %s lacks '%s'", line, json_string_value(json_object_get(e, "desc")), part);
    json_decref(o);
}

static json_t *want_return(const char *line)
{
    json_t *o = ask(line);
    json_t *r = json_object_get(o, "return");
    if (!r)
        fail_msg("%s: %s", line, json_dumps(o, 0));
    json_incref(r);
    json_decref(o);
    return r;
}

static void test_tcmu_control(void **state)
{
    (void)state;
    struct kdev d;
    kdev_make(&d, 3, "rr", cfg_r);
    struct tcmu_nl_event ev = ev_make(TCMU_CMD_ADDED_DEVICE, "rr", cfg_r, 3, 1);
    handle(&ev);
    assert_non_null(served(3));
    ready(&d);

    struct tcmu_ctl *ctl;
    struct scuse_err err = { 0 };
    assert_int_equal(tcmu_ctl_start(dm, tu_path("ctl.sock"), 0, false, &ctl, &err), 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", tu_path("ctl.sock"));
    client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(client, (struct sockaddr *)&sa, sizeof(sa)), 0);
    inlen = 0;
    json_t *g = next_line();
    assert_non_null(json_object_get(g, "QMP"));
    json_decref(g);

    json_t *luns = want_return("{\"execute\": \"query-luns\"}\n");
    assert_int_equal(json_array_size(luns), 1);
    json_t *l = json_array_get(luns, 0);
    assert_int_equal(json_integer_value(json_object_get(l, "lun")), 3);
    assert_non_null(strstr(json_string_value(json_object_get(l, "name")), "rr"));
    assert_string_equal(json_string_value(json_object_get(l, "file")), tu_path("r.raw"));
    assert_string_equal(json_string_value(json_object_get(l, "format")), "raw");
    assert_int_equal(json_integer_value(json_object_get(l, "size")), 8 << 20);
    assert_string_equal(json_string_value(json_object_get(l, "device")), "disk");
    json_decref(luns);

    /* The raw image grows: the ring's initiator is told and sees it. */
    tu_run("truncate -s 12M r.raw");
    json_t *r = want_return("{\"execute\": \"lun-resize\", \"arguments\": {\"lun\": 3}}\n");
    assert_true(json_is_true(json_object_get(r, "changed")));
    assert_int_equal(json_integer_value(json_object_get(r, "size")), 12 << 20);
    json_decref(r);
    uint8_t tur[6] = { 0 };
    sense_is(run(&d, tur, 6, 0, NULL), 6, 0x2a, 0x09);
    uint64_t blocks;
    uint32_t bs;
    capacity(&d, &blocks, &bs);
    assert_int_equal(blocks, 12 << 11);

    want_error("{\"execute\": \"lun-resize\", \"arguments\": {\"lun\": 4}}\n", "DeviceNotFound",
               "no TCMU device served at uio4");
    want_error("{\"execute\": \"lun-add\", \"arguments\": {\"lun\": 4, \"file\": \"x\"}}\n",
               "GenericError", "scuse tcmu create");
    want_error("{\"execute\": \"lun-remove\", \"arguments\": {\"lun\": 3}}\n", "GenericError",
               "scuse tcmu delete");
    want_error("{\"execute\": \"medium-eject\", \"arguments\": {\"lun\": 3}}\n", "GenericError",
               "is not a CD-ROM");
    json_decref(want_return("{\"execute\": \"quit\"}\n"));
    assert_true(__atomic_load_n(&dm->stop, __ATOMIC_ACQUIRE));
    close(client);
    /* The daemon first (its LUNs report to the socket), then the socket. */
    assert_int_equal(tcmu_daemon_destroy(dm), 0);
    dm = NULL;
    tcmu_ctl_stop(ctl);
    kdev_drop(&d);
}

static int done(void **state)
{
    (void)state;
    if (dm)
        tcmu_daemon_destroy(dm);
    dm = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tcmu_control, per_test, done),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
