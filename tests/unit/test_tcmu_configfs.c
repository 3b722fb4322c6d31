/* Provisioning on a configfs stand-in (a directory tree of the test's
 * own): every attribute LIO expects, written with the values asked for,
 * in LIO's order (watched with inotify); the vhost and loopback exports;
 * teardown in reverse; create and delete repeated change nothing; a
 * backstore that is not scuse's is left alone; list; the ring reset. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tcmu/config.h"
#include "tcmu/configfs.h"
#include "tcmu/fsutil.h"
#include "testutil.h"

#define CFS "cfs"
#define DEV CFS "/target/core/user_5300/"

static void fresh_tree(void)
{
    tu_run("rm -rf " CFS " && mkdir -p " CFS "/target/core");
}

static void backstore(struct tcmu_backstore *b, const char *name, enum tcmu_fabric f)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->name, sizeof(b->name), "%s", name);
    snprintf(b->config, sizeof(b->config), "scuse/qcow2@/images/%s.qcow2", name);
    b->size = 10ull << 30;
    b->block_size = 4096;
    b->max_sectors = 8192;
    b->data_area_mb = 256;
    snprintf(b->serial, sizeof(b->serial), "SER-%s", name);
    b->fabric = f;
    tcmu_wwn_derive(name, 0, b->wwpn, sizeof(b->wwpn));
    tcmu_wwn_derive(b->wwpn, 1, b->initiator, sizeof(b->initiator));
}

static char *slurp(const char *rel)
{
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ & 7];
    int n = tcmu_read_file(tu_path(rel), b, sizeof(buf[0]));
    if (n < 0)
        fail_msg("%s: %s", rel, strerror(-n));
    return b;
}

/* The whole tree: paths, file contents, link targets. */
static char *snapshot(void)
{
    tu_run("cd " CFS " && find . | sort | while read p; do printf '%%s' \"$p\"; "
           "if [ -L \"$p\" ]; then printf ' -> %%s' \"$(readlink \"$p\")\"; "
           "elif [ -f \"$p\" ]; then printf ' = %%s' \"$(cat \"$p\")\"; fi; echo; done > ../snap");
    FILE *f = fopen(tu_path("snap"), "r");
    assert_non_null(f);
    char *s = calloc(1, 1 << 16);
    size_t n = fread(s, 1, (1 << 16) - 1, f);
    s[n] = '\0';
    fclose(f);
    return s;
}

static void test_create_vhost(void **state)
{
    (void)state;
    fresh_tree();
    struct tcmu_backstore b;
    backstore(&b, "vm1", TCMU_FABRIC_VHOST);
    struct scuse_err err = { 0 };
    if (tcmu_cfs_create(tu_path(CFS), &b, &err) < 0)
        fail_msg("create: %s", err.msg);
    assert_string_equal(slurp(DEV "vm1/control"),
                        "dev_config=scuse/qcow2@/images/vm1.qcow2,dev_size=10737418240,"
                        "hw_block_size=4096,hw_max_sectors=8192,max_data_area_mb=256,"
                        "nl_reply_supported=-1");
    assert_string_equal(slurp(DEV "vm1/attrib/emulate_write_cache"), "1");
    assert_string_equal(slurp(DEV "vm1/attrib/tmr_notification"), "1");
    assert_string_equal(slurp(DEV "vm1/wwn/vpd_unit_serial"), "SER-vm1");
    assert_string_equal(slurp(DEV "vm1/enable"), "1");
    char tpg[256], link[PATH_MAX], target[PATH_MAX];
    snprintf(tpg, sizeof(tpg), CFS "/target/vhost/%s/tpgt_1", b.wwpn);
    snprintf(link, sizeof(link), "%s/lun/lun_0/vm1", tpg);
    assert_string_equal(slurp(strcat(strcpy(target, tpg), "/nexus")), b.initiator);
    ssize_t n = readlink(tu_path(link), target, sizeof(target) - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, tu_path(DEV "vm1"));
    assert_true(tcmu_wwn_valid(b.wwpn) && tcmu_wwn_valid(b.initiator));
    assert_string_not_equal(b.wwpn, b.initiator);

    /* Again: nothing changes. */
    char *before = snapshot();
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &b, &err), 0);
    char *after = snapshot();
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* The kernel shows the dev_config it was given; another image under
     * the same name is refused. */
    tu_run("echo scuse/qcow2@/images/vm1.qcow2 > " DEV "vm1/attrib/dev_config");
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &b, &err), 0);
    struct tcmu_backstore other = b;
    snprintf(other.config, sizeof(other.config), "scuse/raw@/images/other.raw");
    err_clear(&err);
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &other, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "vm1"));
}

/* ---- order, watched ---- */

struct watch {
    int fd;
    int wd[16];
    const char *label[16];
    int n;
    char log[4096];
};

static void watch_add(struct watch *w, const char *rel, const char *label, uint32_t mask)
{
    assert_true(w->n < 16);
    int wd = inotify_add_watch(w->fd, tu_path(rel), mask);
    if (wd < 0)
        fail_msg("inotify %s: %s", rel, strerror(errno));
    w->wd[w->n] = wd;
    w->label[w->n++] = label;
}

/* Append "label/name:op " for every event so far. */
static void watch_drain(struct watch *w)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    ssize_t len;
    while ((len = read(w->fd, buf, sizeof(buf))) > 0) {
        for (char *p = buf; p < buf + len;) {
            struct inotify_event *e = (struct inotify_event *)p;
            const char *label = "?";
            for (int i = 0; i < w->n; i++)
                if (w->wd[i] == e->wd)
                    label = w->label[i];
            const char *op = e->mask & IN_CLOSE_WRITE ? "w" : e->mask & IN_CREATE ? "+" : "-";
            size_t used = strlen(w->log);
            snprintf(w->log + used, sizeof(w->log) - used, "%s/%s:%s ", label,
                     e->len ? e->name : "", op);
            p += sizeof(*e) + e->len;
        }
    }
}

/* Position of needle in the log, failing when absent. */
static long at(const struct watch *w, const char *needle)
{
    const char *p = strstr(w->log, needle);
    if (!p)
        fail_msg("'%s' not in: %s", needle, w->log);
    return p - w->log;
}

/* The groups configfs makes with each item are there beforehand, so
 * every write can be watched: attributes before enable, the export's
 * nexus before its LUN link, and the teardown the other way round. */
static void test_order(void **state)
{
    (void)state;
    fresh_tree();
    struct tcmu_backstore b;
    backstore(&b, "ord", TCMU_FABRIC_VHOST);
    char tpg[256];
    snprintf(tpg, sizeof(tpg), CFS "/target/vhost/%s/tpgt_1", b.wwpn);
    tu_run("mkdir -p " DEV "ord/attrib " DEV "ord/wwn " DEV "ord/action %s/lun/lun_0", tpg);
    struct watch w = { .fd = inotify_init1(IN_NONBLOCK) };
    const uint32_t m = IN_CLOSE_WRITE | IN_CREATE | IN_DELETE;
    watch_add(&w, DEV "ord", "dev", m);
    watch_add(&w, DEV "ord/attrib", "attrib", m);
    watch_add(&w, DEV "ord/wwn", "wwn", m);
    watch_add(&w, tpg, "tpg", m);
    char lun[300];
    snprintf(lun, sizeof(lun), "%s/lun/lun_0", tpg);
    watch_add(&w, lun, "lun0", m);
    struct scuse_err err = { 0 };
    if (tcmu_cfs_create(tu_path(CFS), &b, &err) < 0)
        fail_msg("create: %s", err.msg);
    watch_drain(&w);
    long control = at(&w, "dev/control:w"), enable = at(&w, "dev/enable:w");
    assert_true(control < at(&w, "attrib/emulate_write_cache:w"));
    assert_true(at(&w, "attrib/tmr_notification:w") < enable);
    assert_true(at(&w, "wwn/vpd_unit_serial:w") < enable);
    assert_true(enable < at(&w, "tpg/nexus:w"));
    assert_true(at(&w, "tpg/nexus:w") < at(&w, "lun0/ord:+"));

    /* Teardown: watch the parents of what goes. */
    w.log[0] = '\0';
    char wwn[256], vhost[64];
    snprintf(wwn, sizeof(wwn), CFS "/target/vhost/%s", b.wwpn);
    snprintf(vhost, sizeof(vhost), CFS "/target/vhost");
    char lund[300];
    snprintf(lund, sizeof(lund), "%s/lun", tpg);
    watch_add(&w, lund, "lun", m);
    watch_add(&w, wwn, "wwn", m);
    watch_add(&w, vhost, "vhost", m);
    watch_add(&w, CFS "/target/core/user_5300", "hba", m);
    bool found;
    assert_int_equal(tcmu_cfs_delete(tu_path(CFS), "ord", &found, &err), 0);
    assert_true(found);
    watch_drain(&w);
    long unlink_at = at(&w, "lun0/ord:-"), lun_gone = at(&w, "lun/lun_0:-");
    long nexus = at(&w, "tpg/nexus:w"), tpg_gone = at(&w, "wwn/tpgt_1:-");
    long wwn_gone = at(&w, "vhost/naa."), dev_gone = at(&w, "hba/ord:-");
    assert_true(unlink_at < lun_gone);
    assert_true(lun_gone < nexus);
    assert_true(nexus < tpg_gone);
    assert_true(tpg_gone < wwn_gone);
    assert_true(wwn_gone < dev_gone);
    close(w.fd);
    tu_run("test ! -e " CFS "/target/core/user_5300 && test -z \"$(ls " CFS "/target/vhost)\"");
}

static void test_delete(void **state)
{
    (void)state;
    fresh_tree();
    struct tcmu_backstore a, l;
    backstore(&a, "a", TCMU_FABRIC_VHOST);
    backstore(&l, "l", TCMU_FABRIC_LOOPBACK);
    struct scuse_err err = { 0 };
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &a, &err), 0);
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &l, &err), 0);
    /* Someone else's backstore of the same name, and a LUN of theirs in
     * another TPG of our target. */
    tu_run("mkdir -p " CFS "/target/core/user_0/a/attrib && "
           "echo file//srv/a.img > " CFS "/target/core/user_0/a/attrib/dev_config");
    bool found;
    err_clear(&err);
    assert_int_equal(tcmu_cfs_delete(tu_path(CFS), "a", &found, &err), -EPERM);
    assert_non_null(strstr(err.msg, "user_0/a"));
    tu_run("rm -rf " CFS "/target/core/user_0");
    char *before = snapshot();
    assert_int_equal(tcmu_cfs_delete(tu_path(CFS), "a", &found, &err), 0);
    assert_true(found);
    assert_int_equal(tcmu_cfs_delete(tu_path(CFS), "a", &found, &err), 0);
    assert_false(found);
    char *after = snapshot();
    /* The loopback backstore is untouched. */
    assert_non_null(strstr(after, "user_5300/l/enable = 1"));
    assert_null(strstr(after, "user_5300/a"));
    assert_null(strstr(after, a.wwpn));
    assert_non_null(strstr(before, a.wwpn));
    assert_non_null(strstr(after, l.wwpn));
    free(before);
    free(after);
    assert_int_equal(tcmu_cfs_delete(tu_path(CFS), "l", &found, &err), 0);
    tu_run("test ! -e " CFS "/target/core/user_5300 && test -z \"$(ls " CFS "/target/loopback)\"");
}

/* An interrupted create (the device made, nothing written) is finished. */
static void test_resume(void **state)
{
    (void)state;
    fresh_tree();
    tu_run("mkdir -p " DEV "half");
    struct tcmu_backstore b;
    backstore(&b, "half", TCMU_FABRIC_LOOPBACK);
    struct scuse_err err = { 0 };
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &b, &err), 0);
    assert_string_equal(slurp(DEV "half/enable"), "1");
    char p[1024];
    snprintf(p, sizeof(p), CFS "/target/loopback/%s/tpgt_1/nexus", b.wwpn);
    assert_string_equal(slurp(p), b.initiator);
}

static void test_conflicts(void **state)
{
    (void)state;
    struct scuse_err err = { 0 };
    struct tcmu_backstore b, c;
    /* No LIO in this "kernel". */
    tu_run("rm -rf " CFS " && mkdir " CFS);
    backstore(&b, "x", TCMU_FABRIC_VHOST);
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &b, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "modprobe target_core_user"));
    /* A target port whose LUN 0 already serves another backstore. */
    fresh_tree();
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &b, &err), 0);
    backstore(&c, "y", TCMU_FABRIC_VHOST);
    snprintf(c.wwpn, sizeof(c.wwpn), "%s", b.wwpn);
    err_clear(&err);
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &c, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "already serves"));
    /* A nexus someone else set is kept. */
    backstore(&c, "z", TCMU_FABRIC_VHOST);
    char p[1024];
    snprintf(p, sizeof(p), "mkdir -p " CFS "/target/vhost/%s/tpgt_1 && echo naa.5001405aaaaaaaaa "
             "> " CFS "/target/vhost/%s/tpgt_1/nexus", c.wwpn, c.wwpn);
    tu_run("%s", p);
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &c, &err), 0);
    snprintf(p, sizeof(p), CFS "/target/vhost/%s/tpgt_1/nexus", c.wwpn);
    assert_string_equal(slurp(p), "naa.5001405aaaaaaaaa\n");
}

static void test_list(void **state)
{
    (void)state;
    fresh_tree();
    struct tcmu_backstore a, l, n;
    backstore(&a, "a", TCMU_FABRIC_VHOST);
    backstore(&l, "l", TCMU_FABRIC_LOOPBACK);
    backstore(&n, "n", TCMU_FABRIC_NONE);
    struct scuse_err err = { 0 };
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &a, &err), 0);
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &l, &err), 0);
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &n, &err), 0);
    /* What the kernel shows after enable; plus a foreign device, and a
     * targetcli-made user:scuse one in another HBA. */
    tu_run("for d in a l n; do echo scuse/qcow2@/images/$d.qcow2 > " DEV "$d/attrib/dev_config; "
           "echo 10737418240 > " DEV "$d/attrib/dev_size; done; "
           "mkdir -p " CFS "/target/core/user_0/f/attrib " CFS "/target/core/user_1/t/attrib && "
           "echo file//srv/f > " CFS "/target/core/user_0/f/attrib/dev_config && "
           "echo scuse//srv/t.raw > " CFS "/target/core/user_1/t/attrib/dev_config && "
           "echo 0 > " CFS "/target/core/user_1/t/enable");
    struct tcmu_cfs_dev *d;
    size_t cnt;
    assert_int_equal(tcmu_cfs_list(tu_path(CFS), &d, &cnt, &err), 0);
    assert_int_equal(cnt, 4);
    assert_string_equal(d[0].name, "t");
    assert_int_equal(d[0].hba, 1);
    assert_false(d[0].enabled);
    assert_int_equal(d[0].fabric, TCMU_FABRIC_NONE);
    assert_string_equal(d[1].name, "a");
    assert_int_equal(d[1].hba, 5300);
    assert_true(d[1].enabled);
    assert_int_equal(d[1].size, 10ull << 30);
    assert_int_equal(d[1].fabric, TCMU_FABRIC_VHOST);
    assert_string_equal(d[1].wwpn, a.wwpn);
    assert_int_equal(d[1].tpgt, 1);
    assert_int_equal(d[1].lun, 0);
    assert_string_equal(d[1].config, "scuse/qcow2@/images/a.qcow2");
    assert_int_equal(d[2].fabric, TCMU_FABRIC_LOOPBACK);
    assert_string_equal(d[2].wwpn, l.wwpn);
    assert_string_equal(d[3].name, "n");
    assert_int_equal(d[3].fabric, TCMU_FABRIC_NONE);
    free(d);
}

static void test_reset_ring(void **state)
{
    (void)state;
    fresh_tree();
    tu_run("mkdir -p " DEV "r/action");
    struct watch w = { .fd = inotify_init1(IN_NONBLOCK) };
    watch_add(&w, DEV "r/action", "action", IN_CLOSE_WRITE);
    struct scuse_err err = { 0 };
    assert_int_equal(tcmu_cfs_reset_ring(tu_path(CFS), 5300, "r", &err), 0);
    watch_drain(&w);
    assert_string_equal(w.log, "action/block_dev:w action/reset_ring:w action/block_dev:w ");
    assert_string_equal(slurp(DEV "r/action/block_dev"), "0");
    assert_string_equal(slurp(DEV "r/action/reset_ring"), "1");
    close(w.fd);
    /* No such device: an error naming the file. */
    err_clear(&err);
    assert_true(tcmu_cfs_reset_ring(tu_path(CFS), 5300, "none", &err) < 0);
    assert_non_null(strstr(err.msg, "none/action/block_dev"));
}

static void test_names(void **state)
{
    (void)state;
    assert_true(tcmu_name_valid("vm-1_a.b"));
    assert_false(tcmu_name_valid(""));
    assert_false(tcmu_name_valid(".hidden"));
    assert_false(tcmu_name_valid("a/b"));
    assert_false(tcmu_name_valid("a b"));
    char longname[80];
    memset(longname, 'a', 65);
    longname[65] = '\0';
    assert_false(tcmu_name_valid(longname));
    assert_true(tcmu_wwn_valid("naa.5001405123456789"));
    assert_true(tcmu_wwn_valid("naa.6001405123456789"));
    assert_false(tcmu_wwn_valid("naa.500140512345678"));
    assert_false(tcmu_wwn_valid("naa.50014051234567890"));
    assert_false(tcmu_wwn_valid("naa.1001405123456789"));
    assert_false(tcmu_wwn_valid("iqn.2003-01.org.x"));
    assert_false(tcmu_wwn_valid("naa.500140512345678g"));
    char w1[64], w2[64], w3[64];
    tcmu_wwn_derive("vm1", 0, w1, sizeof(w1));
    tcmu_wwn_derive("vm1", 0, w2, sizeof(w2));
    tcmu_wwn_derive("vm2", 0, w3, sizeof(w3));
    assert_string_equal(w1, w2);
    assert_string_not_equal(w1, w3);
    assert_true(tcmu_wwn_valid(w1));
    assert_memory_equal(w1, "naa.55ac5e0", 11);
}
/* A domain's controller: one port, a LUN per disk (tcmu up), the port's
 * backstores listed, the port kept while a LUN serves one and removed
 * whole once none does (tcmu down), half-made ports included. */
static void test_port_luns(void **state)
{
    (void)state;
    fresh_tree();
    struct tcmu_backstore a, b;
    backstore(&a, "vm-scsi0-0", TCMU_FABRIC_VHOST);
    backstore(&b, "vm-scsi0-3", TCMU_FABRIC_VHOST);
    snprintf(b.wwpn, sizeof(b.wwpn), "%s", a.wwpn);
    b.lun = 3;
    b.no_write_cache = true;
    struct scuse_err err = { 0 };
    char root[PATH_MAX];
    snprintf(root, sizeof(root), "%s", tu_path(CFS));
    assert_int_equal(tcmu_cfs_create(root, &a, &err), 0);
    assert_int_equal(tcmu_cfs_create(root, &b, &err), 0);
    char tpg[256], link[512];
    snprintf(tpg, sizeof(tpg), CFS "/target/vhost/%s/tpgt_1", a.wwpn);
    snprintf(link, sizeof(link), "%s/lun/lun_3/vm-scsi0-3", tpg);
    assert_true(tcmu_cfs_links_to(tu_path(link), tu_path(DEV "vm-scsi0-3")));
    snprintf(link, sizeof(link), "%s/lun/lun_0/vm-scsi0-0", tpg);
    assert_true(tcmu_cfs_links_to(tu_path(link), tu_path(DEV "vm-scsi0-0")));
    assert_string_equal(slurp(DEV "vm-scsi0-3/attrib/emulate_write_cache"), "0");
    assert_string_equal(slurp(DEV "vm-scsi0-0/attrib/emulate_write_cache"), "1");
    char *before = snapshot();
    assert_int_equal(tcmu_cfs_create(root, &b, &err), 0);        /* again: no change */
    char *again = snapshot();
    assert_string_equal(before, again);
    free(before);
    free(again);

    uint32_t hba[4];
    char names[4][TCMU_NAME_MAX];
    unsigned n = 0;
    assert_int_equal(tcmu_fabric_wwn_devs(root, TCMU_FABRIC_VHOST, a.wwpn, hba, names, 4, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(hba[0], TCMU_SCUSE_HBA);
    assert_true((!strcmp(names[0], "vm-scsi0-0") && !strcmp(names[1], "vm-scsi0-3")) ||
                (!strcmp(names[1], "vm-scsi0-0") && !strcmp(names[0], "vm-scsi0-3")));
    /* not while a LUN serves a backstore */
    assert_int_equal(tcmu_fabric_remove_wwn(root, TCMU_FABRIC_VHOST, a.wwpn, &err), -ENOTEMPTY);
    assert_non_null(strstr(err.msg, "still serves"));
    err_clear(&err);
    bool found;
    assert_int_equal(tcmu_cfs_delete(root, "vm-scsi0-0", &found, &err), 0);
    assert_true(found);
    assert_true(tcmu_cfs_is_dir(tu_path(tpg)));                 /* LUN 3 is left */
    assert_int_equal(tcmu_cfs_delete(root, "vm-scsi0-3", &found, &err), 0);
    assert_false(tcmu_cfs_is_dir(tu_path(tpg)));
    /* a crash's leftovers: a port with an empty LUN and a nexus */
    tu_run("mkdir -p %s/lun/lun_2 && echo naa.5001405000000001 > %s/nexus", tpg, tpg);
    assert_int_equal(tcmu_fabric_wwn_devs(root, TCMU_FABRIC_VHOST, a.wwpn, hba, names, 4, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tcmu_fabric_remove_wwn(root, TCMU_FABRIC_VHOST, a.wwpn, &err), 0);
    snprintf(link, sizeof(link), CFS "/target/vhost/%s", a.wwpn);
    assert_false(tcmu_cfs_is_dir(tu_path(link)));
    /* nothing there: nothing to do */
    assert_int_equal(tcmu_fabric_remove_wwn(root, TCMU_FABRIC_VHOST, a.wwpn, &err), 0);
    assert_int_equal(err.code, 0);
}

/* dev_config naming a domain's disk: made, parsed, refused when malformed. */
static void test_domain_config(void **state)
{
    (void)state;
    char buf[TCMU_CONFIG_MAX];
    struct scuse_err err = { 0 };
    assert_int_equal(tcmu_config_format_domain(1, 12, "/run/scuse/vm1.tcmu.xml", buf, sizeof(buf),
                                               &err), 0);
    assert_string_equal(buf, "scuse/domain=1.12@/run/scuse/vm1.tcmu.xml");
    struct tcmu_image_cfg c;
    assert_int_equal(tcmu_config_parse(buf, &c, &err), 1);
    assert_true(c.domain);
    assert_int_equal(c.ctrl, 1);
    assert_int_equal(c.unit, 12);
    assert_string_equal(c.path, "/run/scuse/vm1.tcmu.xml");
    assert_string_equal(c.fmt, "");
    assert_int_equal(tcmu_config_parse("scuse/domain=0.0@/x.xml\n", &c, &err), 1);
    assert_string_equal(c.path, "/x.xml");
    assert_int_equal(tcmu_config_parse("scuse/qcow2@/x.qcow2", &c, &err), 1);
    assert_false(c.domain);
    static const char *const bad[] = { "scuse/domain=0@/x.xml", "scuse/domain=a.1@/x.xml",
                                       "scuse/domain=0.1/x.xml", "scuse/domain=0.1@x.xml",
                                       "scuse/domain=0.70000@/x.xml", "scuse/domain=.1@/x" };
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err_clear(&err);
        assert_int_equal(tcmu_config_parse(bad[i], &c, &err), -EINVAL);
        assert_true(err.msg[0] != '\0');
    }
    char lng[300];
    memset(lng, 'a', sizeof(lng));
    lng[0] = '/';
    lng[sizeof(lng) - 1] = '\0';
    assert_int_equal(tcmu_config_format_domain(0, 0, lng, buf, sizeof(buf), &err), -ENAMETOOLONG);
    assert_int_equal(tcmu_config_format_domain(0, 0, "/a,b.xml", buf, sizeof(buf), &err), -EINVAL);
}

static int setup(void **state)
{
    (void)state;
    return tu_dir_make("tcmu-configfs");
}

/* The iSCSI fabric: a target IQN, TPG 1 with LUN 0, the portal, no
 * authentication, an ACL mapping LUN 0 per initiator (or demo mode), the
 * TPG enabled; list finds it; delete removes the ACLs' mappings, the ACLs,
 * the portal and the TPG, and leaves another target alone. */
static void test_iscsi(void **state)
{
    (void)state;
    fresh_tree();
    struct tcmu_backstore b, d;
    backstore(&b, "i", TCMU_FABRIC_ISCSI);
    snprintf(b.wwpn, sizeof(b.wwpn), "iqn.2026-12.org.scuse:i");
    snprintf(b.portal, sizeof(b.portal), "127.0.0.1:3260");
    b.n_acls = 2;
    snprintf(b.acls[0], sizeof(b.acls[0]), "iqn.1994-05.com.example:one");
    snprintf(b.acls[1], sizeof(b.acls[1]), "iqn.1994-05.com.example:two");
    backstore(&d, "demo", TCMU_FABRIC_ISCSI);
    snprintf(d.wwpn, sizeof(d.wwpn), "iqn.2026-12.org.scuse:demo");
    snprintf(d.portal, sizeof(d.portal), "[::1]:3261");
    d.demo_mode = true;
    struct scuse_err err = { 0 };
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &b, &err), 0);
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &d, &err), 0);
    /* Again: confirmed, nothing changes. */
    assert_int_equal(tcmu_cfs_create(tu_path(CFS), &b, &err), 0);
#define TPG CFS "/target/iscsi/iqn.2026-12.org.scuse:i/tpgt_1"
    tu_run("test -d '" TPG "/np/127.0.0.1:3260' && test -L '" TPG "/lun/lun_0/i'");
    assert_string_equal(slurp(TPG "/attrib/authentication"), "0");
    assert_string_equal(slurp(TPG "/attrib/generate_node_acls"), "0");
    assert_string_equal(slurp(TPG "/attrib/demo_mode_write_protect"), "0");
    assert_string_equal(slurp(TPG "/enable"), "1");
    for (int i = 0; i < 2; i++) {
        char link[512];
        snprintf(link, sizeof(link), TPG "/acls/%s/lun_0/i", b.acls[i]);
        assert_true(tcmu_cfs_links_to(tu_path(link), tu_path(TPG "/lun/lun_0")));
    }
    assert_string_equal(slurp(CFS "/target/iscsi/iqn.2026-12.org.scuse:demo/tpgt_1/attrib/"
                              "generate_node_acls"), "1");
    tu_run("test -d '" CFS "/target/iscsi/iqn.2026-12.org.scuse:demo/tpgt_1/np/[::1]:3261' && "
           "test ! -e '" CFS "/target/iscsi/iqn.2026-12.org.scuse:demo/tpgt_1/acls/x'");
    struct tcmu_cfs_dev *list;
    size_t n;
    assert_int_equal(tcmu_cfs_list(tu_path(CFS), &list, &n, &err), 0);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(list[i].fabric, TCMU_FABRIC_ISCSI);
        assert_string_equal(tcmu_fabric_name(list[i].fabric), "iscsi");
    }
    free(list);
    bool found;
    assert_int_equal(tcmu_cfs_delete(tu_path(CFS), "i", &found, &err), 0);
    assert_true(found);
    tu_run("test ! -e '" CFS "/target/iscsi/iqn.2026-12.org.scuse:i' && "
           "test -d '" CFS "/target/iscsi/iqn.2026-12.org.scuse:demo/tpgt_1/np/[::1]:3261'");
    assert_int_equal(tcmu_cfs_delete(tu_path(CFS), "demo", &found, &err), 0);
    tu_run("test -z \"$(ls " CFS "/target/iscsi)\"");
#undef TPG
}

/* iSCSI names and portals as the options take them. */
static void test_iscsi_names(void **state)
{
    (void)state;
    static const char *const good[] = { "iqn.2026-12.org.scuse:disk0", "iqn.1994-05.com.redhat:x",
                                        "eui.0123456789abcdef",
                                        "naa.5001405000000001", "iqn.2007-10.com.github:a:b-c" };
    static const char *const bad[] = { "", "iqn.", "iqn.26-12.org.x", "iqn.2026-12.Org.x",
                                       "iqn.2026-12.org.x:A", "iqn.2026-12.org x", "eui.012",
                                       "naa.50014050000000011", "foo.2026-12.org.x" };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!tcmu_iscsi_name_valid(good[i]))
            fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (tcmu_iscsi_name_valid(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    char longname[300] = "iqn.2026-12.org.scuse:";
    memset(longname + strlen(longname), 'a', 210);
    assert_false(tcmu_iscsi_name_valid(longname));
    static const char *const pgood[] = { "0.0.0.0:3260", "127.0.0.1:3260", "10.1.2.3:1",
                                         "[::1]:3260", "[fe80::1]:65535" };
    static const char *const pbad[] = { "", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536",
                                        "256.0.0.1:3260", "1.2.3:3260", "::1:3260", "[::1]",
                                        "1.2.3.4:32a0", "host:3260", "1.2.3.4.5:3260" };
    for (size_t i = 0; i < sizeof(pgood) / sizeof(pgood[0]); i++)
        if (!tcmu_iscsi_portal_valid(pgood[i]))
            fail_msg("portal '%s' refused", pgood[i]);
    for (size_t i = 0; i < sizeof(pbad) / sizeof(pbad[0]); i++)
        if (tcmu_iscsi_portal_valid(pbad[i]))
            fail_msg("portal '%s' accepted", pbad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_vhost), cmocka_unit_test(test_order),
        cmocka_unit_test(test_delete),       cmocka_unit_test(test_resume),
        cmocka_unit_test(test_conflicts),    cmocka_unit_test(test_list),
        cmocka_unit_test(test_reset_ring),   cmocka_unit_test(test_names),
        cmocka_unit_test(test_port_luns),    cmocka_unit_test(test_domain_config),
        cmocka_unit_test(test_iscsi),        cmocka_unit_test(test_iscsi_names),
    };
    return cmocka_run_group_tests(tests, setup, tu_teardown);
}
