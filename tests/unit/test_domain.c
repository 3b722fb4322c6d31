/* The domain XML parser (vm/domain): which disks are scuse's, every
 * <disk> element mapped to the LUN settings and the image chain, scuse's
 * metadata, and each kind of bad input refused with one line naming the
 * file, the line and the element. The chain a disk names is opened and
 * read against what qemu-img wrote. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "domain/domain.h"
#include "testutil.h"

/* A domain whose <devices> hold body (its first line is file line 6) and
 * whose <metadata> holds meta (after devices). */
static char *domain_xml(const char *body, const char *meta)
{
    char *x = NULL;
    int n = asprintf(&x,
                     "<domain type='kvm'>\n"
                     "  <name>vm1</name>\n"
                     "  <uuid>3e3fce45-4f53-4fa7-bb32-11f34168b82b</uuid>\n"
                     "  <memory unit='MiB'>256</memory>\n"
                     "  <devices>\n"
                     "%s"
                     "  </devices>\n"
                     "%s%s%s"
                     "</domain>\n",
                     body, meta ? "  <metadata>\n" : "", meta ? meta : "",
                     meta ? "  </metadata>\n" : "");
    assert_true(n > 0);
    return x;
}

static struct domain *parse_ok(const char *body, const char *meta)
{
    char *x = domain_xml(body, meta);
    struct domain *d = NULL;
    struct scuse_err err = { 0 };
    int r = dom_parse(x, strlen(x), "vm1.xml", &d, &err);
    free(x);
    if (r < 0)
        fail_msg("dom_parse: %d: %s", r, err.msg);
    assert_non_null(d);
    return d;
}

/* Must fail with a message starting "vm1.xml:LINE: <ELEM>:" and holding
 * want. */
static void parse_bad(const char *body, const char *meta, unsigned line, const char *elem,
                      const char *want)
{
    char *x = domain_xml(body, meta);
    struct domain *d = (struct domain *)0x1;
    struct scuse_err err = { 0 };
    int r = dom_parse(x, strlen(x), "vm1.xml", &d, &err);
    free(x);
    if (r >= 0)
        fail_msg("parsed, but '%s' was expected", want);
    assert_null(d);
    char head[128];
    snprintf(head, sizeof(head), "vm1.xml:%u: <%s>: ", line, elem);
    if (strncmp(err.msg, head, strlen(head)) != 0 || !strstr(err.msg, want) ||
        strchr(err.msg, '\n'))
        fail_msg("message '%s': want one line starting '%s' with '%s'", err.msg, head, want);
}

#define CTRL0 "    <controller type='scsi' index='0' model='virtio-scsi'/>\n"

static const struct dom_disk *disk_dev(const struct domain *d, const char *dev)
{
    for (unsigned i = 0; i < d->n_disks; i++)
        if (strcmp(d->disks[i].dev, dev) == 0)
            return &d->disks[i];
    fail_msg("no disk %s", dev);
    return NULL;
}

/* ------------------------------------------------------- the whole disk */

static void test_full_disk(void **state)
{
    (void)state;
    struct domain *d = parse_ok(
        "    <controller type='scsi' index='0' model='virtio-scsi'>\n"
        "      <driver queues='4'/>\n"
        "    </controller>\n"
        "    <disk type='file' device='disk'>\n"
        "      <driver name='qemu' type='qcow2' cache='writethrough' discard='unmap' io='threads'/>\n"
        "      <source file='/img/top.qcow2'/>\n"
        "      <target dev='sda' bus='scsi' rotation_rate='1'/>\n"
        "      <serial>SER-0001</serial>\n"
        "      <wwn>0x5000c5005ca1ab1e</wwn>\n"
        "      <vendor>ACME</vendor>\n"
        "      <product>ImageDisk</product>\n"
        "      <blockio logical_block_size='512' physical_block_size='4096'/>\n"
        "      <boot order='2'/>\n"
        "      <readonly/>\n"
        "      <address type='drive' controller='0' bus='0' target='0' unit='3'/>\n"
        "    </disk>\n", NULL);
    assert_string_equal(d->name, "vm1");
    assert_true(d->has_uuid);
    assert_int_equal(d->uuid[0], 0x3e);
    assert_int_equal(d->uuid[15], 0x2b);
    assert_int_equal(d->n_ctrl, 1);
    assert_int_equal(d->ctrl[0].queues, 4);
    assert_int_equal(d->ctrl[0].n_disks, 1);
    assert_int_equal(d->n_disks, 1);
    const struct dom_disk *k = &d->disks[0];
    assert_int_equal(k->line, 9);
    assert_string_equal(k->source, "/img/top.qcow2");
    assert_false(k->block);
    assert_string_equal(k->fmt, "qcow2");
    assert_int_equal(k->cache, DOM_CACHE_WRITETHROUGH);
    assert_false(k->cfg.write_cache);          /* writethrough: WCE 0 */
    assert_true(k->cfg.discard);
    assert_int_equal(k->cfg.rotation_rate, 1);
    assert_string_equal(k->cfg.serial, "SER-0001");
    assert_true(k->cfg.wwn == 0x5000c5005ca1ab1eull);
    assert_string_equal(k->cfg.vendor, "ACME");
    assert_string_equal(k->cfg.product, "ImageDisk");
    assert_int_equal(k->cfg.block_size, 512);
    assert_int_equal(k->cfg.phys_exp, 3);
    assert_int_equal(k->boot_order, 2);
    assert_true(k->cfg.read_only);
    assert_int_equal(k->open_flags, 0);        /* read-only, flushes honoured */
    assert_int_equal(k->controller, 0);
    assert_int_equal(k->unit, 3);
    assert_false(k->chain_given);
    assert_int_equal(k->n_chain, 0);
    dom_free(d);
}

/* Defaults as libvirt's QEMU driver has them: raw, writeback, discard
 * ignored, no identity beyond scuse's own. */
static void test_defaults(void **state)
{
    (void)state;
    struct domain *d = parse_ok(CTRL0
        "    <disk type='block'>\n"
        "      <source dev='/dev/vg/lv0'/>\n"
        "      <target dev='sdb'/>\n"
        "    </disk>\n", NULL);
    const struct dom_disk *k = disk_dev(d, "sdb");
    assert_true(k->block);
    assert_string_equal(k->source, "/dev/vg/lv0");
    assert_string_equal(k->fmt, "raw");
    assert_true(k->cfg.write_cache);
    assert_false(k->cfg.discard);
    assert_false(k->cfg.read_only);
    assert_int_equal(k->open_flags, BLK_OPEN_RW);
    assert_int_equal(k->cfg.block_size, 512);
    assert_int_equal(k->unit, 1);              /* sdb: index 1 */
    assert_int_equal(k->boot_order, 0);
    dom_free(d);
}

/* <disk device='cdrom'>: a cdrom LUN, read-only; without a <source>, an
 * empty drive (no node to open). */
static void test_cdrom(void **state)
{
    (void)state;
    struct domain *d = parse_ok(CTRL0
        "    <disk type='file' device='cdrom'>\n"
        "      <driver name='qemu' type='raw'/>\n"
        "      <source file='/iso/debian.iso'/>\n"
        "      <target dev='sda' bus='scsi'/>\n"
        "    </disk>\n"
        "    <disk type='file' device='cdrom'>\n"
        "      <target dev='sdb' bus='scsi'/>\n"
        "      <readonly/>\n"
        "    </disk>\n", NULL);
    const struct dom_disk *k = disk_dev(d, "sda");
    assert_int_equal(k->cfg.device, SCSI_DEVICE_CDROM);
    assert_string_equal(k->source, "/iso/debian.iso");
    assert_true(k->cfg.read_only);
    assert_int_equal(k->open_flags, 0);
    k = disk_dev(d, "sdb");
    assert_int_equal(k->cfg.device, SCSI_DEVICE_CDROM);
    assert_null(k->source);
    assert_true(k->cfg.read_only);
    struct blk_node *bs = (struct blk_node *)1;
    struct scuse_err err = { 0 };
    assert_int_equal(dom_disk_open(k, &bs, &err), 0);
    assert_null(bs);
    dom_free(d);
    /* A disk still needs its source. */
    parse_bad(CTRL0 "    <disk type='file' device='disk'><target dev='sda'/></disk>\n", NULL, 7,
              "disk", "missing source");
}

static void test_cache_modes(void **state)
{
    (void)state;
    static const struct {
        const char *mode;
        bool wce;
        unsigned flags;
    } t[] = {
        { "default", true, BLK_OPEN_RW }, { "none", true, BLK_OPEN_RW },
        { "writeback", true, BLK_OPEN_RW }, { "writethrough", false, BLK_OPEN_RW },
        { "directsync", false, BLK_OPEN_RW }, { "unsafe", true, BLK_OPEN_RW | BLK_OPEN_NO_FLUSH },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        char body[512];
        snprintf(body, sizeof(body), CTRL0
                 "    <disk type='file'><driver name='qemu' type='raw' cache='%s'/>"
                 "<source file='/a'/><target dev='sda' bus='scsi'/></disk>\n", t[i].mode);
        struct domain *d = parse_ok(body, NULL);
        assert_int_equal(d->disks[0].cfg.write_cache, t[i].wce);
        assert_int_equal(d->disks[0].open_flags, t[i].flags);
        dom_free(d);
    }
}

static void test_format_names(void **state)
{
    (void)state;
    static const char *const map[][2] = {
        { "raw", "raw" }, { "qcow2", "qcow2" }, { "qcow", "qcow" }, { "vmdk", "vmdk" },
        { "vpc", "vpc" }, { "vhd", "vhdx" },
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        assert_string_equal(dom_format_from_libvirt(map[i][0]), map[i][1]);
        char body[512];
        snprintf(body, sizeof(body), CTRL0
                 "    <disk type='file'><driver name='qemu' type='%s'/>"
                 "<source file='/a'/><target dev='sda' bus='scsi'/></disk>\n", map[i][0]);
        struct domain *d = parse_ok(body, NULL);
        assert_string_equal(d->disks[0].fmt, map[i][1]);
        assert_string_equal(d->disks[0].libvirt_fmt, map[i][0]);
        dom_free(d);
    }
    /* libvirt 9.0 rejects "vhdx" itself; scuse says so the same way */
    assert_null(dom_format_from_libvirt("vhdx"));
    parse_bad(CTRL0 "    <disk type='file'><driver name='qemu' type='vhdx'/>"
              "<source file='/a'/><target dev='sda'/></disk>\n", NULL, 7, "driver",
              "unknown driver type 'vhdx'");
    parse_bad(CTRL0 "    <disk type='file'>\n      <driver type='luks'/>"
              "<source file='/a'/><target dev='sda'/></disk>\n", NULL, 8, "driver",
              "unknown driver type 'luks' (libvirt's names scuse knows: raw, qcow2");
}

/* ------------------------------------------------ which disks are scuse's */

static void test_which_disks(void **state)
{
    (void)state;
    char body[4096] = CTRL0
        "    <controller type='scsi' index='1' model='lsilogic'/>\n"
        "    <disk type='file'><source file='/v'/><target dev='vda' bus='virtio'/></disk>\n"
        "    <disk type='file'><source file='/h'/><target dev='hda'/></disk>\n"
        "    <disk type='file' device='cdrom'><source file='/i.iso'/><target dev='sdc' bus='sata'/></disk>\n";
    /* sda..sdi without addresses: 7 on controller 0 (scuse's), sdh and
     * sdi on controller 1 (lsilogic: libvirt's). */
    for (char c = 'a'; c <= 'i'; c++) {
        char line[160];
        snprintf(line, sizeof(line), "    <disk type='file'><source file='/d%c'/>"
                 "<target dev='sd%c' bus='scsi'/></disk>\n", c, c);
        strcat(body, line);
    }
    struct domain *d = parse_ok(body, NULL);
    assert_int_equal(d->n_ctrl, 1);
    assert_int_equal(d->ctrl[0].index, 0);
    assert_int_equal(d->n_disks, 7);
    for (unsigned i = 0; i < 7; i++) {
        assert_int_equal(d->disks[i].controller, 0);
        assert_int_equal(d->disks[i].unit, i);
    }
    dom_free(d);

    /* the 28th disk name, "sdab", is index 27: controller 3, unit 6 */
    d = parse_ok("    <controller type='scsi' index='3' model='virtio-scsi'/>\n"
                 "    <disk type='file'><source file='/x'/><target dev='sdab'/></disk>\n", NULL);
    assert_int_equal(d->n_disks, 1);
    assert_int_equal(d->disks[0].controller, 3);
    assert_int_equal(d->disks[0].unit, 6);
    dom_free(d);

    /* a controller without a model is libvirt's default (lsilogic on x86) */
    d = parse_ok("    <controller type='scsi' index='0'/>\n"
                 "    <disk type='network' device='lun'><target dev='sda'/></disk>\n", NULL);
    assert_int_equal(d->n_disks, 0);
    assert_int_equal(d->n_ctrl, 0);
    dom_free(d);
}

/* ---------------------------------------------------------- backingStore */

static void test_chain(void **state)
{
    (void)state;
    struct domain *d = parse_ok(CTRL0
        "    <disk type='file'>\n"
        "      <driver name='qemu' type='qcow2'/>\n"
        "      <source file='/img/top.qcow2'/>\n"
        "      <backingStore type='file'>\n"
        "        <format type='qcow2'/>\n"
        "        <source file='/img/mid.qcow2'/>\n"
        "        <backingStore type='block' index='2'>\n"
        "          <format type='raw'/>\n"
        "          <source dev='/dev/vg/base'/>\n"
        "          <backingStore/>\n"
        "        </backingStore>\n"
        "      </backingStore>\n"
        "      <target dev='sda' bus='scsi'/>\n"
        "    </disk>\n"
        "    <disk type='file'>\n"
        "      <driver name='qemu' type='qcow2'/>\n"
        "      <source file='/img/b.qcow2'/>\n"
        "      <backingStore type='file'><format type='vpc'/><source file='/img/b.vhd'/></backingStore>\n"
        "      <target dev='sdb' bus='scsi'/>\n"
        "    </disk>\n"
        "    <disk type='file'>\n"
        "      <driver name='qemu' type='qcow2'/>\n"
        "      <source file='/img/c.qcow2'/>\n"
        "      <backingStore/>\n"
        "      <target dev='sdc' bus='scsi'/>\n"
        "    </disk>\n", NULL);
    const struct dom_disk *a = disk_dev(d, "sda");
    assert_true(a->chain_given);
    assert_true(a->chain_end);
    assert_int_equal(a->n_chain, 2);
    assert_string_equal(a->chain[0].file, "/img/mid.qcow2");
    assert_string_equal(a->chain[0].fmt, "qcow2");
    assert_string_equal(a->chain[1].file, "/dev/vg/base");
    assert_string_equal(a->chain[1].fmt, "raw");
    const struct dom_disk *b = disk_dev(d, "sdb");   /* partial: the rest from headers */
    assert_true(b->chain_given);
    assert_false(b->chain_end);
    assert_int_equal(b->n_chain, 1);
    assert_string_equal(b->chain[0].fmt, "vpc");
    const struct dom_disk *c = disk_dev(d, "sdc");   /* <backingStore/>: none at all */
    assert_true(c->chain_given);
    assert_true(c->chain_end);
    assert_int_equal(c->n_chain, 0);
    dom_free(d);

    parse_bad(CTRL0 "    <disk type='file'><driver type='qcow2'/><source file='/a'/>\n"
              "      <backingStore type='file'><source file='/b'/></backingStore>\n"
              "      <target dev='sda'/></disk>\n", NULL, 8, "backingStore",
              "a backingStore without a <format type='...'/>");
    parse_bad(CTRL0 "    <disk type='file'><driver type='qcow2'/><source file='/a'/>\n"
              "      <backingStore type='file'><format type='raw'/></backingStore>\n"
              "      <target dev='sda'/></disk>\n", NULL, 8, "backingStore",
              "missing source");
    parse_bad(CTRL0 "    <disk type='file'><driver type='qcow2'/><source file='/a'/>\n"
              "      <backingStore><format type='raw'/><source file='/b'/></backingStore>\n"
              "      <target dev='sda'/></disk>\n", NULL, 8, "backingStore",
              "needs type='file' or type='block'");
    parse_bad(CTRL0 "    <disk type='file'><driver type='raw'/><source file='/a'/>\n"
              "      <backingStore type='file'><format type='raw'/><source file='/b'/></backingStore>\n"
              "      <target dev='sda'/></disk>\n", NULL, 8, "backingStore",
              "raw images have no backing file");
    parse_bad(CTRL0 "    <disk type='file'><driver type='qcow2'/><source file='/a'/>\n"
              "      <backingStore type='file'><format type='vhdx'/><source file='/b'/></backingStore>\n"
              "      <target dev='sda'/></disk>\n", NULL, 8, "format",
              "unknown driver type 'vhdx'");
}

/* The chain as written is what gets opened (top.qcow2 records another
 * backing file): the guest's bytes are qemu-img's for that chain. */
static void test_chain_open(void **state)
{
    (void)state;
    tu_run("qemu-io -f raw -c 'write -P 0x11 0 1M' -c 'write -P 0x22 128k 64k' "
           "$(qemu-img create -q -f raw base.raw 1M; echo base.raw) >/dev/null");
    tu_run("qemu-img create -q -f raw decoy.raw 1M");
    tu_run("qemu-img create -q -f qcow2 -b decoy.raw -F raw top.qcow2 1M");
    tu_run("qemu-io -f qcow2 -c 'write -P 0x33 0 64k' top.qcow2 >/dev/null");
    char body[1024];
    snprintf(body, sizeof(body), CTRL0
             "    <disk type='file'><driver type='qcow2'/><source file='%s'/>\n"
             "      <backingStore type='file'><format type='raw'/><source file='%s'/>"
             "<backingStore/></backingStore>\n"
             "      <target dev='sda'/></disk>\n", tu_path("top.qcow2"), tu_path("base.raw"));
    /* qemu-img reads the same chain when told it the same way */
    tu_run("qemu-img convert -O raw 'json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\","
           "\"filename\":\"top.qcow2\"},\"backing\":{\"driver\":\"raw\",\"file\":"
           "{\"driver\":\"file\",\"filename\":\"base.raw\"}}}' want.raw");
    struct domain *d = parse_ok(body, NULL);
    struct blk_node *bs = NULL;
    struct scuse_err err = { 0 };
    if (dom_disk_open(&d->disks[0], &bs, &err) < 0)
        fail_msg("dom_disk_open: %s", err.msg);
    assert_true(!bs->read_only);
    assert_int_equal(blk_chain_length(bs), 2);
    uint8_t *want = tu_load("want.raw", 1u << 20);
    uint8_t *got = malloc(1u << 20);
    assert_non_null(got);
    assert_int_equal(blk_pread(bs, 0, got, 1u << 20, NULL), 0);
    assert_memory_equal(got, want, 1u << 20);
    assert_int_equal(got[0], 0x33);
    assert_int_equal(got[128 << 10], 0x22);
    free(want);
    free(got);
    blk_close(bs);
    dom_free(d);
}

/* -------------------------------------------------------- scuse metadata */

static void test_metadata(void **state)
{
    (void)state;
    struct domain *d = parse_ok(
        "    <disk type='file'><source file='/v'/><target dev='vda' bus='virtio'/></disk>\n",
        "    <scuse:domain xmlns:scuse='urn:scuse:domain:1'>\n"
        "      <scuse:transport type='vhost-user-scsi' socket-dir='/run/scuse' socket-mode='660'"
        " socket-group='kvm'/>\n"
        "      <scuse:controller index='2' wwpn='naa.5001405df3e54061'/>\n"
        "      <scuse:lun dev='sdb' deny='UNMAP:write-same-16'>\n"
        "        <scuse:option name='l2-cache-size' value='4M'/>\n"
        "      </scuse:lun>\n"
        "      <controller type='scsi' index='2' model='virtio-scsi'><driver queues='2'/></controller>\n"
        "      <disk type='file'><driver type='qcow2'/><source file='/q'/><target dev='sdb' bus='scsi'/>\n"
        "        <address type='drive' controller='2' bus='0' target='0' unit='5'/></disk>\n"
        "    </scuse:domain>\n");
    assert_string_equal(d->transport, "vhost-user-scsi");
    assert_string_equal(d->socket_dir, "/run/scuse");
    assert_int_equal(d->socket_mode, 0660);
    assert_string_equal(d->socket_group, "kvm");
    assert_int_equal(d->n_ctrl, 1);
    assert_true(d->ctrl[0].in_metadata);
    assert_string_equal(d->ctrl[0].wwpn, "naa.5001405df3e54061");
    assert_int_equal(d->ctrl[0].queues, 2);
    assert_int_equal(d->n_disks, 1);
    const struct dom_disk *k = &d->disks[0];
    assert_true(k->in_metadata);
    assert_int_equal(k->controller, 2);
    assert_int_equal(k->unit, 5);
    assert_false(k->cfg.policy_allow);
    assert_int_equal(k->cfg.n_policy, 2);
    assert_int_equal(k->fmt_opts.n, 1);
    assert_string_equal(k->fmt_opts.kv[0].key, "l2-cache-size");
    assert_string_equal(k->fmt_opts.kv[0].val, "4M");
    dom_free(d);

    /* settings for a disk that is not scuse's, a bad policy, both lists */
    parse_bad(CTRL0, "    <scuse:domain xmlns:scuse='urn:scuse:domain:1'>\n"
              "      <scuse:lun dev='sdq'/>\n    </scuse:domain>\n", 10, "scuse:lun",
              "dev='sdq': no disk");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/></disk>\n",
              "    <scuse:domain xmlns:scuse='urn:scuse:domain:1'>\n"
              "      <scuse:lun dev='sda' deny='UNMAP:FROB'/>\n    </scuse:domain>\n", 11, "scuse:lun",
              "FROB");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/></disk>\n",
              "    <scuse:domain xmlns:scuse='urn:scuse:domain:1'>\n"
              "      <scuse:lun dev='sda' policy-file='/nonexistent/p'/>\n    </scuse:domain>\n",
              11, "scuse:lun", "/nonexistent/p");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/></disk>\n",
              "    <scuse:domain xmlns:scuse='urn:scuse:domain:1'>\n"
              "      <scuse:lun dev='sda' deny='0x42' allow='0x28'/>\n    </scuse:domain>\n", 11,
              "scuse:lun", "one command policy");
    parse_bad(CTRL0, "    <scuse:domain xmlns:scuse='urn:scuse:domain:1'>\n"
              "      <scuse:controller index='0' wwpn='naa.5001405df3e5406'/>\n"
              "    </scuse:domain>\n", 10, "scuse:controller", "wwpn='naa.5001405df3e5406'");
    parse_bad(CTRL0, "    <scuse:domain xmlns:scuse='urn:scuse:domain:1'>\n"
              "      <scuse:controller index='0' wwpn='iqn.2003-01.org.x:y'/>\n"
              "    </scuse:domain>\n", 10, "scuse:controller", "'naa.' and 16 hex digits");
    parse_bad("    <hostdev mode='subsystem' type='scsi_host'>\n"
              "      <source protocol='vhost' wwpn='naa.50014O5df3e54061'/>\n"
              "    </hostdev>\n", NULL, 7, "source", "wwpn='naa.50014O5df3e54061'");
    parse_bad(CTRL0, "    <scuse:domain xmlns:scuse='urn:scuse:domain:1'>\n"
              "      <scuse:transport type='nbd'/>\n    </scuse:domain>\n", 10, "scuse:transport",
              "vhost-user-scsi or vhost-scsi");
    parse_bad(CTRL0, "    <scuse:domain xmlns:scuse='urn:scuse:domain:1'>\n"
              "      <scuse:transport type='vhost-user-scsi' socket-mode='0999'/>\n"
              "    </scuse:domain>\n", 10, "scuse:transport", "socket-mode='0999': octal");
    parse_bad(CTRL0, "    <scuse:domain xmlns:scuse='urn:scuse:domain:1'>\n"
              "      <scuse:transport type='vhost-user-scsi' socket-dir='run'/>\n"
              "    </scuse:domain>\n", 10, "scuse:transport", "an absolute path");
    parse_bad(CTRL0, "    <scuse:domain xmlns:scuse='urn:scuse:domain:1'>\n"
              "      <disk><source file='/a'/><target dev='vda' bus='virtio'/></disk>\n"
              "    </scuse:domain>\n", 10, "disk", "one of its virtio-scsi controllers");
}

/* ------------------------------------------------------------ bad input */

static void test_bad_input(void **state)
{
    (void)state;
    /* malformed XML: the parser's line */
    struct domain *d = (struct domain *)0x1;
    struct scuse_err err = { 0 };
    const char *x = "<domain>\n  <name>a</name>\n  <devices>\n  </device>\n</domain>\n";
    assert_int_equal(dom_parse(x, strlen(x), "m.xml", &d, &err), -EINVAL);
    assert_null(d);
    if (strncmp(err.msg, "m.xml:4: malformed XML: ", 24) != 0)
        fail_msg("%s", err.msg);
    err_clear(&err);
    x = "<!DOCTYPE domain [<!ENTITY a 'b'>]>\n<domain><name>&a;</name></domain>\n";
    assert_int_equal(dom_parse(x, strlen(x), "e.xml", &d, &err), -EINVAL);
    if (!strstr(err.msg, "e.xml:1: <!DOCTYPE>"))
        fail_msg("%s", err.msg);
    err_clear(&err);
    x = "<domain>\n<name>a</name>\n<qemu:commandline/>\n</domain>\n";
    assert_int_equal(dom_parse(x, strlen(x), "ns.xml", &d, &err), -EINVAL);
    if (strncmp(err.msg, "ns.xml:3: malformed XML: ", 25) != 0 || !strstr(err.msg, "qemu"))
        fail_msg("%s", err.msg);
    err_clear(&err);
    x = "<network><name>n</name></network>";
    assert_int_equal(dom_parse(x, strlen(x), "n.xml", &d, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "n.xml:1: <network>: not a libvirt domain"));
    err_clear(&err);
    assert_int_equal(dom_load("/nonexistent/vm.xml", &d, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/vm.xml"));

    parse_bad(CTRL0 "    <disk type='file'>\n      <target dev='sda' bus='scsi'/>\n    </disk>\n",
              NULL, 7, "disk", "missing source");
    parse_bad(CTRL0 "    <disk type='block'>\n      <source file='/a'/>\n"
              "      <target dev='sda'/></disk>\n", NULL, 8, "source",
              "a block disk needs <source dev='...'/>");
    parse_bad(CTRL0 "    <disk type='file'><source file='/a'/><target dev='sda'/></disk>\n"
              "    <disk type='file'><source file='/b'/><target dev='sdb'/>\n"
              "      <address type='drive' controller='0' unit='0'/></disk>\n", NULL, 8, "disk",
              "controller 0 unit 0 is taken by the disk at line 7 (target dev 'sda')");
    parse_bad(CTRL0 "    <disk type='block' device='lun'><source dev='/dev/sdz'/>"
              "<target dev='sda'/></disk>\n", NULL, 7, "disk", "device='lun'");
    parse_bad(CTRL0 "    <disk type='file' device='floppy'><source file='/a.img'/>"
              "<target dev='sda'/></disk>\n", NULL, 7, "disk",
              "device='floppy': scuse serves device='disk' and 'cdrom'");
    parse_bad(CTRL0 "    <disk type='network'><source protocol='nbd' name='x'/>"
              "<target dev='sda'/></disk>\n", NULL, 7, "disk",
              "type='network': scuse serves file and block disks");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/>\n"
              "      <wwn>0x5000c5005ca1ab1</wwn></disk>\n", NULL, 8, "wwn", "16 hex digits");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/>\n"
              "      <wwn>1000c5005ca1ab1e</wwn></disk>\n", NULL, 8, "wwn", "NAA 1");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/>\n"
              "      <vendor>TOOLONGVENDOR</vendor></disk>\n", NULL, 8, "vendor",
              "longer than 8 characters");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/>\n"
              "      <serial>a/b</serial></disk>\n", NULL, 8, "serial", "'/' is not allowed");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/>\n"
              "      <blockio logical_block_size='1024'/></disk>\n", NULL, 8, "blockio",
              "512 or 4096");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/>\n"
              "      <blockio logical_block_size='4096' physical_block_size='512'/></disk>\n",
              NULL, 8, "blockio", "at least the logical block size");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/>\n"
              "      <address type='drive' controller='0' bus='0' target='1' unit='0'/></disk>\n",
              NULL, 8, "address", "target 0 of a controller");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/>\n"
              "      <address type='pci' bus='0x00' slot='0x07'/></disk>\n",
              NULL, 8, "address", "type='drive'");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/>\n"
              "      <address type='drive' unit='x'/></disk>\n",
              NULL, 8, "address", "unit='x': a number");
    parse_bad(CTRL0 "    <disk><driver type='raw' cache='sometimes'/><source file='/a'/>"
              "<target dev='sda'/></disk>\n", NULL, 7, "driver", "cache='sometimes'");
    parse_bad(CTRL0 "    <disk><driver type='raw' discard='yes'/><source file='/a'/>"
              "<target dev='sda'/></disk>\n", NULL, 7, "driver", "discard='yes'");
    parse_bad(CTRL0 "    <disk><driver type='qcow2'/><source file='/a'/><target dev='sda'/>\n"
              "      <shareable/></disk>\n", NULL, 8, "shareable", "only raw images");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/>\n"
              "      <encryption format='luks'/></disk>\n", NULL, 8, "encryption",
              "encrypted disks");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda'/><boot order='0'/></disk>\n",
              NULL, 7, "boot", "order='0'");
    parse_bad(CTRL0 "    <disk><source file='/a'/><target dev='sda1'/></disk>\n",
              NULL, 7, "target", "dev='sda1' is not a disk name");
    parse_bad(CTRL0 "    <controller type='scsi' index='0' model='lsilogic'/>\n", NULL, 7,
              "controller", "a second SCSI controller with index='0'");
    parse_bad("    <controller type='scsi' index='0' model='virtio-scsi'>\n"
              "      <driver queues='0'/></controller>\n", NULL, 7, "driver", "queues='0'");
}

static int group_setup(void **state)
{
    (void)state;
    return tu_qemu_setup("domain", NULL, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_disk),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_cdrom),
        cmocka_unit_test(test_cache_modes),
        cmocka_unit_test(test_format_names),
        cmocka_unit_test(test_which_disks),
        cmocka_unit_test(test_chain),
        cmocka_unit_test_setup(test_chain_open, tu_need_qemu),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_teardown);
}
