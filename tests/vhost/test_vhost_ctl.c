/* The control socket of `scuse serve` with a front-end playing a Linux
 * guest's virtio-scsi driver (HOTPLUG and CHANGE negotiated, event
 * buffers posted), driven through `scuse ctl` itself:
 *  - lun-add: a TRANSPORT_RESET/RESCAN event naming the LUN as REPORT
 *    LUNS lists it, REPORTED LUNS DATA HAS CHANGED on LUN 0, the new LUN
 *    in REPORT LUNS with its power-on attention, its data readable and
 *    writable; LUN_ADDED on a `scuse ctl --events` follower;
 *  - lun-remove: TRANSPORT_RESET/REMOVED, the LUN gone (LOGICAL UNIT NOT
 *    SUPPORTED), its image flushed and closed while scuse runs on:
 *    qemu-io reads what the guest wrote, without -U;
 *  - lun-resize of a grown raw image: PARAM_CHANGE, CAPACITY DATA HAS
 *    CHANGED, the new READ CAPACITY; of an unchanged one: no event;
 *  - errors through the client (exit 1, the error object); query-luns'
 *    I/O counters; quit ends the daemon with exit status 0. */
#define _GNU_SOURCE
#include <endian.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "front.h"
#include "testutil.h"

#define FEATURES                                                                         \
    ((1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |           \
     (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_SCSI_F_CHANGE) |               \
     (1ull << VIRTIO_SCSI_F_HOTPLUG))

static struct f_server srv;

static void be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static const uint8_t TUR[6] = { 0 };
static const uint8_t RC16[16] = { 0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0 };
static const uint8_t REPORT_LUNS[12] = { 0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0 };

static void sense_of(const struct f_scsi *r, int *k, int *a, int *q)
{
    *k = *a = *q = 0;
    if (r->resp.status)
        f_sense(r, k, a, q);
}

static void want_sense(const struct f_scsi *r, int key, int asc, int ascq)
{
    int k, a, q;
    assert_int_equal(r->resp.response, VIRTIO_SCSI_S_OK);
    sense_of(r, &k, &a, &q);
    if (k != key || a != asc || q != ascq)
        fail_msg("CDB %02x: status 0x%x sense %x/%02x/%02x, expected %x/%02x/%02x", r->cdb[0],
                 r->resp.status, k, a, q, key, asc, ascq);
}

static void tur(struct front *f, unsigned lun, int key, int asc, int ascq)
{
    struct f_scsi r = { 0 };
    f_cmd(f, 2, lun, TUR, 6, NULL, 0, 0, &r);
    want_sense(&r, key, asc, ascq);
    f_scsi_free(&r);
}

static uint64_t capacity16(struct front *f, unsigned lun)
{
    struct f_scsi r = { 0 };
    f_cmd(f, 2, lun, RC16, 16, NULL, 0, 32, &r);
    want_sense(&r, 0, 0, 0);
    uint64_t n = get_be(r.din, 8) + 1;
    f_scsi_free(&r);
    return n;
}

/* REPORT LUNS through LUN 0: the LUN numbers. */
static unsigned report_luns(struct front *f, unsigned *ids, unsigned max)
{
    struct f_scsi r = { 0 };
    f_cmd(f, 2, 0, REPORT_LUNS, 12, NULL, 0, 256, &r);
    want_sense(&r, 0, 0, 0);
    unsigned n = (unsigned)get_be(r.din, 4) / 8;
    for (unsigned i = 0; i < n && i < max; i++)
        ids[i] = (unsigned)get_be(r.din + 8 + 8 * i, 2) & 0x3fff;
    f_scsi_free(&r);
    return n;
}

/* Event buffers: 16 writable bytes each. */
static uint64_t ev_gpa[8];
static unsigned ev_next;

static void post_events(struct front *f, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t g = f_alloc(f, 16, 8);
        ev_gpa[i] = g;
        memset(f_ptr(f, g), 0xee, 16);
        uint16_t d = f_desc_get(f, 1);
        struct vring_desc *t = f_desc(f, 1);
        t[d] = (struct vring_desc){ htole64(g), htole32(16), htole16(VRING_DESC_F_WRITE), 0 };
        f_publish(f, 1, d, i + 1 == n);
    }
}

/* The next event the device sends (within the front-end's timeout). */
static struct virtio_scsi_event next_event(struct front *f)
{
    struct f_used u;
    f_used_wait(f, 1, &u, 1);
    assert_int_equal(u.len, sizeof(struct virtio_scsi_event));
    struct virtio_scsi_event e;
    memcpy(&e, f_ptr(f, ev_gpa[ev_next++]), sizeof(e));
    return e;
}

static void want_event(struct front *f, uint32_t event, uint32_t reason, unsigned lun)
{
    struct virtio_scsi_event e = next_event(f);
    assert_int_equal(le32toh(e.event), event);
    assert_int_equal(le32toh(e.reason), reason);
    uint8_t want[8] = { 1, 0, 0, (uint8_t)lun, 0, 0, 0, 0 };
    assert_memory_equal(e.lun, want, 8);
}

/* `scuse ctl CTL.sock CMD [ARGS]`: its exit status, its output parsed. */
static int ctl(const char *cmd, const char *args, json_t **out)
{
    char line[1024];
    snprintf(line, sizeof(line), "'%s' ctl '%s' %s %s%s%s", getenv("SCUSE"), tu_path("ctl.sock"),
             cmd, args ? "'" : "", args ? args : "", args ? "'" : "");
    FILE *p = popen(line, "r");
    assert_non_null(p);
    char *text = calloc(1, 1 << 16);
    size_t n = fread(text, 1, (1 << 16) - 1, p);
    text[n] = '\0';
    int st = pclose(p);
    json_error_t jerr;
    *out = json_loads(text, 0, &jerr);
    if (!*out)
        fail_msg("scuse ctl %s: not JSON (%s): %s", cmd, jerr.text, text);
    free(text);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_t *ctl_ok(const char *cmd, const char *args)
{
    json_t *o;
    int rc = ctl(cmd, args, &o);
    if (rc != 0 || !json_object_get(o, "return"))
        fail_msg("scuse ctl %s: exit %d, %s", cmd, rc, json_dumps(o, 0));
    json_t *ret = json_incref(json_object_get(o, "return"));
    json_decref(o);
    return ret;
}

static void ctl_err(const char *cmd, const char *args, const char *cls, const char *part)
{
    json_t *o;
    int rc = ctl(cmd, args, &o);
    assert_int_equal(rc, 1);
    json_t *e = json_object_get(o, "error");
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "class")), cls);
    if (!strstr(json_string_value(json_object_get(e, "desc")), part))
        fail_msg("scuse ctl %s: %s does not say '%s'", cmd, json_dumps(o, 0), part);
    json_decref(o);
}

static json_t *lun_entry(json_t *luns, unsigned id)
{
    for (size_t i = 0; i < json_array_size(luns); i++) {
        json_t *l = json_array_get(luns, i);
        if (json_integer_value(json_object_get(l, "lun")) == id)
            return l;
    }
    return NULL;
}

static void linux_guest(struct front *f)
{
    f_init_device(f, 3);
    assert_true(f->features & (1ull << VIRTIO_SCSI_F_HOTPLUG));
    f_add_memory(f);
    f_set_features(f, FEATURES);
    for (unsigned i = 0; i < 3; i++)
        f_vq_setup(f, i, 128, 0, true);
    for (unsigned i = 0; i < 3; i++)
        f_vq_enable(f, i, true);
    for (unsigned i = 0; i < 3; i++)
        f_vq_call_fd(f, i);
}

static void test_hotplug(void **state)
{
    (void)state;
    tu_run("qemu-img create -q -f raw a.raw 4M && qemu-img create -q -f qcow2 hot.qcow2 2M && "
           "qemu-io -f qcow2 -c 'write -P 0x3c 0 64k' hot.qcow2 >/dev/null && "
           "qemu-img create -q -f raw grow.raw 1M");
    char lun0[300];
    snprintf(lun0, sizeof(lun0), "0=%s,format=raw", tu_path("a.raw"));
    f_server_start(&srv, "vm", "--lun", lun0, "--control", tu_path("ctl.sock"), NULL);
    /* A follower of events, started first. */
    char follow[700];
    snprintf(follow, sizeof(follow), "'%s' ctl '%s' --events -n 3 > '%s' 2>&1 &", getenv("SCUSE"),
             tu_path("ctl.sock"), tu_path("events.txt"));
    assert_int_equal(system(follow), 0);

    struct front *f = calloc(1, sizeof(*f));
    f_connect(f, &srv);
    linux_guest(f);
    post_events(f, 8);
    tur(f, 0, 6, 0x29, 0);
    tur(f, 0, 0, 0, 0);
    unsigned ids[8];
    assert_int_equal(report_luns(f, ids, 8), 1);

    /* ---- lun-add ---- */
    char args[600];
    snprintf(args, sizeof(args), "{\"lun\": 5, \"file\": \"%s\", \"format\": \"qcow2\"}",
             tu_path("hot.qcow2"));
    json_t *ret = ctl_ok("lun-add", args);
    assert_int_equal(json_integer_value(json_object_get(ret, "lun")), 5);
    assert_string_equal(json_string_value(json_object_get(ret, "format")), "qcow2");
    assert_int_equal(json_integer_value(json_object_get(ret, "size")), 2 << 20);
    json_decref(ret);
    want_event(f, VIRTIO_SCSI_T_TRANSPORT_RESET, VIRTIO_SCSI_EVT_RESET_RESCAN, 5);
    tur(f, 0, 6, 0x3f, 0x0e);       /* REPORTED LUNS DATA HAS CHANGED */
    assert_int_equal(report_luns(f, ids, 8), 2);
    assert_int_equal(ids[1], 5);
    tur(f, 5, 6, 0x29, 0);          /* the new unit powered on */
    assert_int_equal(capacity16(f, 5), 4096);
    struct f_scsi r = { 0 };
    uint8_t c[16] = { 0x88 };
    be(c + 10, 8, 4);
    f_cmd(f, 2, 5, c, 16, NULL, 0, 8 * 512, &r);
    want_sense(&r, 0, 0, 0);
    for (unsigned i = 0; i < 8 * 512; i++)
        if (r.din[i] != 0x3c)
            fail_msg("LUN 5 byte %u: 0x%02x, qemu-io wrote 0x3c", i, r.din[i]);
    uint8_t pat[4 * 512];
    memset(pat, 0xd7, sizeof(pat));
    uint8_t w[16] = { 0x8a };
    be(w + 2, 100, 8);
    be(w + 10, 4, 4);
    f_cmd(f, 2, 5, w, 16, pat, sizeof(pat), 0, &r);
    want_sense(&r, 0, 0, 0);
    f_scsi_free(&r);
    /* Refused: the same LUN again, a missing file, a LUN out of range. */
    ctl_err("lun-add", args, "GenericError", "LUN 5 exists already");
    ctl_err("lun-add", "{\"lun\": 6, \"file\": \"/nonexistent/x.raw\"}", "GenericError",
            "/nonexistent/x.raw");
    ctl_err("lun-add", "{\"lun\": 16384, \"file\": \"x\"}", "GenericError", "0 to 16383");
    snprintf(args, sizeof(args), "{\"lun\": 7, \"file\": \"%s\", \"format\": \"qed\"}",
             tu_path("grow.raw"));
    ctl_err("lun-add", args, "GenericError", "cannot open QED images");
    assert_int_equal(report_luns(f, ids, 8), 2);

    /* ---- query-luns: the I/O counters ---- */
    json_t *luns = ctl_ok("query-luns", NULL);
    assert_int_equal(json_array_size(luns), 2);
    json_t *io = json_object_get(lun_entry(luns, 5), "io");
    assert_int_equal(json_integer_value(json_object_get(io, "reads")), 1);
    assert_int_equal(json_integer_value(json_object_get(io, "read-bytes")), 8 * 512);
    assert_int_equal(json_integer_value(json_object_get(io, "writes")), 1);
    assert_int_equal(json_integer_value(json_object_get(io, "written-bytes")), 4 * 512);
    assert_string_equal(json_string_value(json_object_get(lun_entry(luns, 5), "medium")),
                        "present");
    json_decref(luns);

    /* ---- lun-remove ---- */
    json_decref(ctl_ok("lun-remove", "{\"lun\": 5}"));
    want_event(f, VIRTIO_SCSI_T_TRANSPORT_RESET, VIRTIO_SCSI_EVT_RESET_REMOVED, 5);
    tur(f, 0, 6, 0x3f, 0x0e);
    assert_int_equal(report_luns(f, ids, 8), 1);
    tur(f, 5, 5, 0x25, 0);          /* LOGICAL UNIT NOT SUPPORTED */
    ctl_err("lun-remove", "{\"lun\": 5}", "DeviceNotFound", "LUN 5 does not exist");
    /* Closed and unlocked while scuse runs: qemu-io (no -U) finds the write. */
    tu_run("qemu-io -f qcow2 -c 'read -P 0xd7 51200 2048' -c 'read -P 0x3c 0 51200' "
           "%s >/dev/null", tu_path("hot.qcow2"));
    tu_run("qemu-img check -q %s", tu_path("hot.qcow2"));

    /* ---- lun-resize ---- */
    snprintf(args, sizeof(args), "{\"lun\": 2, \"file\": \"%s\"}", tu_path("grow.raw"));
    json_decref(ctl_ok("lun-add", args));
    want_event(f, VIRTIO_SCSI_T_TRANSPORT_RESET, VIRTIO_SCSI_EVT_RESET_RESCAN, 2);
    tur(f, 2, 6, 0x29, 0);
    assert_int_equal(capacity16(f, 2), 2048);
    ret = ctl_ok("lun-resize", "{\"lun\": 2}");
    assert_false(json_is_true(json_object_get(ret, "changed")));
    json_decref(ret);
    tu_run("truncate -s 3M %s", tu_path("grow.raw"));
    ret = ctl_ok("lun-resize", "{\"lun\": 2}");
    assert_true(json_is_true(json_object_get(ret, "changed")));
    assert_int_equal(json_integer_value(json_object_get(ret, "size")), 3 << 20);
    json_decref(ret);
    want_event(f, VIRTIO_SCSI_T_PARAM_CHANGE, 0x2a | 0x09 << 8, 2);
    tur(f, 2, 6, 0x2a, 0x09);
    assert_int_equal(capacity16(f, 2), 6144);
    ctl_err("lun-resize", "{\"lun\": 9}", "DeviceNotFound", "LUN 9 does not exist");
    ctl_err("medium-eject", "{\"lun\": 0}", "GenericError", "cdrom");
    /* No event for the calls that changed nothing: the next one is what
     * a later change sends (none left over in the ring). */
    struct f_used u;
    assert_int_equal(f_used(f, 1, &u, 1, 200), 0);

    /* The follower saw LUN_ADDED, LUN_REMOVED, LUN_ADDED, in order. */
    for (int i = 0; i < 100 && tu_sh("test $(wc -l < events.txt) -ge 3") != 0; i++)
        usleep(50 * 1000);
    tu_run("grep -c '\"event\":\"LUN_ADDED\",\"data\":{\"lun\":5' events.txt");
    tu_run("sed -n 2p events.txt | grep -q '\"event\":\"LUN_REMOVED\",\"data\":{\"lun\":5}'");
    tu_run("sed -n 3p events.txt | grep -q '\"event\":\"LUN_ADDED\",\"data\":{\"lun\":2'");

    json_decref(ctl_ok("quit", NULL));
    f_disconnect(f);
    free(f);
    assert_int_equal(f_server_wait(&srv), 0);
    assert_true(f_log_has(&srv, "control: quit"));
    assert_int_equal(tu_sh("test -e ctl.sock"), 1);     /* the socket file is gone */
}

static int kill_server(void **state)
{
    (void)state;
    if (srv.pid > 0) {
        kill(srv.pid, SIGKILL);
        f_server_wait(&srv);
    }
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return tu_qemu_setup("vhost-ctl", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hotplug, tu_need_qemu, kill_server),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_teardown);
}
