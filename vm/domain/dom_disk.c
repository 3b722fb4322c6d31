/* One libvirt <disk> of scuse's: every element checked and mapped to the
 * LUN's settings and the image chain, as libvirt and QEMU would serve it
 * (libvirt.md section 2; docs/scuse-domain.5 has the table). */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "blk/format.h"
#include "domain/dom_int.h"

/* libvirt's disk name to index: the letters after the prefix in base 26
 * with "a" = 0, "z" = 25, "aa" = 26 (virDiskNameToIndex's rule). */
static int dev_index(const char *dev, unsigned *idx)
{
    static const char *const prefixes[] = { "fd", "hd", "vd", "sd", "xvd", "ubd" };
    const char *p = NULL;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]) && !p; i++)
        if (strncmp(dev, prefixes[i], strlen(prefixes[i])) == 0)
            p = dev + strlen(prefixes[i]);
    if (!p || !*p)
        return -1;
    unsigned long v = 0;
    for (unsigned i = 0; *p; i++, p++) {
        if (!islower((unsigned char)*p) || v > 100000)
            return -1;
        v = (v + (i ? 1 : 0)) * 26 + (unsigned long)(*p - 'a');
    }
    *idx = (unsigned)v;
    return 0;
}

int dom_disk_where(const struct dom_ctx *c, xmlNode *n, bool *scsi, struct dom_disk *d)
{
    *scsi = false;
    d->line = (unsigned)xmlGetLineNo(n);
    d->node = n;
    xmlNode *t = dom_child(n, "target");
    const char *dev = t ? dom_attr(t, "dev") : NULL;
    const char *bus = t ? dom_attr(t, "bus") : NULL;
    /* No bus: libvirt takes it from the name's prefix ("sd": SCSI). */
    if (bus ? strcmp(bus, "scsi") != 0 : !dev || strncmp(dev, "sd", 2) != 0)
        return 0;
    *scsi = true;
    if (!dev || !*dev)
        return dom_fail(c, t, "a SCSI disk needs dev='sdX'");
    if (strlen(dev) >= sizeof(d->dev))
        return dom_fail(c, t, "dev='%s' is longer than %zu characters", dev, sizeof(d->dev) - 1);
    strcpy(d->dev, dev);
    xmlNode *a = dom_child(n, "address");
    if (!a) {
        unsigned idx;
        if (dev_index(dev, &idx) < 0)
            return dom_fail(c, t, "dev='%s' is not a disk name libvirt can address (sda, sdb, "
                            "..., sdaa; or give an <address>)", dev);
        d->controller = idx / 7;    /* libvirt's QEMU driver: 7 units a controller */
        d->unit = idx % 7;
        return 0;
    }
    const char *type = dom_attr(a, "type");
    if (!type || strcmp(type, "drive") != 0)
        return dom_fail(c, a, "a SCSI disk's address has type='drive', not '%s'",
                        type ? type : "");
    int r;
    if ((r = dom_attr_uint(c, a, "controller", 0, DOM_MAX_CONTROLLERS - 1, &d->controller)) < 0 ||
        (r = dom_attr_uint(c, a, "bus", 0, 0xffff, &d->bus)) < 0 ||
        (r = dom_attr_uint(c, a, "target", 0, 0xffff, &d->target)) < 0 ||
        (r = dom_attr_uint(c, a, "unit", 0, 16383, &d->unit)) < 0)
        return r;
    return 0;
}

static char *dup_or_fail(const struct dom_ctx *c, const xmlNode *n, const char *s, int *r)
{
    char *p = strdup(s);
    if (!p)
        *r = dom_fail(c, n, "out of memory");
    return p;
}

static const char *format_of(const struct dom_ctx *c, const xmlNode *n, const char *type, int *r)
{
    const char *f = dom_format_from_libvirt(type);
    if (!f)
        *r = dom_fail(c, n, "unknown driver type '%s' (libvirt's names scuse knows: %s)", type,
                      dom_format_libvirt_names());
    return f;
}

static int parse_driver(const struct dom_ctx *c, const xmlNode *n, struct dom_disk *d)
{
    d->fmt = "raw";                 /* libvirt's QEMU driver never probes: raw */
    d->libvirt_fmt = "raw";
    d->cfg.discard = false;         /* QEMU's discard=ignore unless asked */
    const xmlNode *dr = dom_child(n, "driver");
    if (!dr)
        return 0;
    const char *name = dom_attr(dr, "name");
    if (name && strcmp(name, "qemu") != 0)
        return dom_fail(c, dr, "name='%s': libvirt's QEMU driver is 'qemu'", name);
    const char *type = dom_attr(dr, "type");
    int r = 0;
    if (type) {
        d->fmt = format_of(c, dr, type, &r);
        if (r < 0)
            return r;
        d->libvirt_fmt = dom_format_from_libvirt(type) ? type : "raw";
    }
    static const struct {
        const char *name;
        enum dom_cache mode;
    } caches[] = {
        { "default", DOM_CACHE_DEFAULT }, { "none", DOM_CACHE_NONE },
        { "writeback", DOM_CACHE_WRITEBACK }, { "writethrough", DOM_CACHE_WRITETHROUGH },
        { "directsync", DOM_CACHE_DIRECTSYNC }, { "unsafe", DOM_CACHE_UNSAFE },
    };
    const char *cache = dom_attr(dr, "cache");
    if (cache) {
        size_t i = 0;
        while (i < sizeof(caches) / sizeof(caches[0]) && strcmp(caches[i].name, cache) != 0)
            i++;
        if (i == sizeof(caches) / sizeof(caches[0]))
            return dom_fail(c, dr, "cache='%s': default, none, writeback, writethrough, "
                            "directsync or unsafe", cache);
        d->cache = caches[i].mode;
    }
    const char *discard = dom_attr(dr, "discard");
    if (discard) {
        if (strcmp(discard, "unmap") != 0 && strcmp(discard, "ignore") != 0)
            return dom_fail(c, dr, "discard='%s': unmap or ignore", discard);
        d->cfg.discard = strcmp(discard, "unmap") == 0;
    }
    return 0;
}

/* <source file=...> for type='file', <source dev=...> for type='block'. */
static const char *source_of(const struct dom_ctx *c, const xmlNode *n, bool block, int *r)
{
    const xmlNode *s = dom_child(n, "source");
    const char *key = block ? "dev" : "file";
    const char *v = s ? dom_attr(s, key) : NULL;
    if (!v || !*v)
        *r = dom_fail(c, s ? s : n, "missing source: a %s disk needs <source %s='...'/>",
                      block ? "block" : "file", key);
    return v;
}

static int disk_type(const struct dom_ctx *c, const xmlNode *n, bool *block)
{
    const char *type = dom_attr(n, "type");
    if (!type)
        type = "file";              /* libvirt's default */
    if (strcmp(type, "file") != 0 && strcmp(type, "block") != 0)
        return dom_fail(c, n, "type='%s': scuse serves file and block disks", type);
    *block = strcmp(type, "block") == 0;
    return 0;
}

static bool can_have_backing(const char *fmt)
{
    return blk_format_has(fmt, BLK_FMT_BACKING);
}

/* Nested <backingStore>s, as written: each names its format and source;
 * an empty one ends the chain; none below the last means the rest is read
 * from that image's header (libvirt.md section 3). */
static int parse_chain(const struct dom_ctx *c, const xmlNode *n, struct dom_disk *d)
{
    const char *above = d->fmt;
    const xmlNode *above_node = n;
    for (const xmlNode *b = dom_child(n, "backingStore"); b; b = dom_child(b, "backingStore")) {
        d->chain_given = true;
        bool empty = !b->properties;
        for (const xmlNode *k = b->children; k && empty; k = k->next)
            empty = k->type != XML_ELEMENT_NODE;
        if (empty) {
            d->chain_end = true;
            return 0;
        }
        if (d->n_chain == DOM_MAX_CHAIN)
            return dom_fail(c, b, "the backing chain is deeper than %d images", DOM_MAX_CHAIN);
        if (!can_have_backing(above))
            return dom_fail(c, b, "%s images have no backing file (the <backingStore> of the "
                            "image at line %ld)", above, xmlGetLineNo(above_node));
        bool block = false;
        int r = 0;
        if (!dom_attr(b, "type"))
            return dom_fail(c, b, "a backingStore needs type='file' or type='block'");
        if ((r = disk_type(c, b, &block)) < 0)
            return r;
        const xmlNode *f = dom_child(b, "format");
        const char *ftype = f ? dom_attr(f, "type") : NULL;
        if (!ftype)
            return dom_fail(c, b, "a backingStore without a <format type='...'/> (libvirt "
                            "never probes a backing file's format)");
        const char *fmt = format_of(c, f, ftype, &r);
        const char *src = r ? NULL : source_of(c, b, block, &r);
        if (r < 0)
            return r;
        struct blk_backing *l = &d->chain[d->n_chain];
        l->file = dup_or_fail(c, b, src, &r);
        l->fmt = fmt;
        if (r < 0)
            return r;
        d->n_chain++;
        above = fmt;
        above_node = b;
    }
    return 0;
}

static int parse_text(const struct dom_ctx *c, const xmlNode *n, const char *name, char *dst,
                      size_t cap, const char *allowed)
{
    const xmlNode *e = dom_child(n, name);
    if (!e)
        return 0;
    char *s = dom_text(e);
    int r = 0;
    if (!s)
        return dom_fail(c, e, "out of memory");
    if (!*s)
        r = dom_fail(c, e, "empty");
    else if (strlen(s) >= cap)
        r = dom_fail(c, e, "'%s' is longer than %zu characters", s, cap - 1);
    for (const char *p = s; !r && *p; p++)
        if (allowed ? !(isalnum((unsigned char)*p) || strchr(allowed, *p))
                    : (*p < 0x20 || *p > 0x7e))
            r = dom_fail(c, e, "'%s': '%c' is not allowed (%s)", s, *p,
                         allowed ? "letters, digits and _.+- or space" : "printable ASCII");
    if (!r)
        strcpy(dst, s);
    xmlFree(s);
    return r;
}

static int parse_wwn(const struct dom_ctx *c, const xmlNode *n, struct dom_disk *d)
{
    const xmlNode *e = dom_child(n, "wwn");
    if (!e)
        return 0;
    char *s = dom_text(e);
    if (!s)
        return dom_fail(c, e, "out of memory");
    const char *h = (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? s + 2 : s;
    int r = 0;
    bool hex = strlen(h) == 16;
    for (const char *p = h; hex && *p; p++)
        hex = isxdigit((unsigned char)*p);
    if (!hex) {
        r = dom_fail(c, e, "'%s': 16 hex digits, 0x optional", s);
    } else {
        uint64_t w = strtoull(h, NULL, 16);
        unsigned naa = (unsigned)(w >> 60);
        if (naa != 2 && naa != 3 && naa != 5 && naa != 6)
            r = dom_fail(c, e, "'%s': NAA %u is not a name (2, 3, 5 or 6)", s, naa);
        d->cfg.wwn = w;
    }
    xmlFree(s);
    return r;
}

static int parse_blockio(const struct dom_ctx *c, const xmlNode *n, struct dom_disk *d)
{
    const xmlNode *b = dom_child(n, "blockio");
    if (!b)
        return 0;
    unsigned lbs, pbs;
    int r;
    if ((r = dom_attr_uint(c, b, "logical_block_size", 512, 1u << 20, &lbs)) < 0 ||
        (r = dom_attr_uint(c, b, "physical_block_size", lbs, 1u << 20, &pbs)) < 0)
        return r;
    if (lbs != 512 && lbs != 4096)
        return dom_fail(c, b, "logical_block_size='%u': scuse serves 512 or 4096", lbs);
    if (pbs < lbs || (pbs & (pbs - 1)))
        return dom_fail(c, b, "physical_block_size='%u': a power of two, at least the logical "
                        "block size (%u)", pbs, lbs);
    d->cfg.block_size = lbs;
    d->cfg.phys_exp = 0;
    while ((lbs << d->cfg.phys_exp) < pbs)
        d->cfg.phys_exp++;
    return 0;
}

/* What libvirt could say of a disk that scuse would silently get wrong. */
static int refuse_unserved(const struct dom_ctx *c, const xmlNode *n)
{
    static const struct {
        const char *name, *why;
    } refused[] = {
        { "encryption", "encrypted disks are not served" },
        { "transient", "transient disks (writes thrown away at shutdown) are not served" },
        { "mirror", "a block job's mirror is libvirt's, not scuse's" },
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        const xmlNode *e = dom_child(n, refused[i].name);
        if (!e) {
            const xmlNode *s = dom_child(n, "source");
            e = s ? dom_child(s, refused[i].name) : NULL;
        }
        if (e)
            return dom_fail(c, e, "%s", refused[i].why);
    }
    return 0;
}

int dom_disk_parse(const struct dom_ctx *c, xmlNode *n, struct dom_disk *d)
{
    scsi_lun_config_default(&d->cfg);
    const char *device = dom_attr(n, "device");
    bool cdrom = device && strcmp(device, "cdrom") == 0;
    if (device && strcmp(device, "disk") != 0 && !cdrom) {
        if (strcmp(device, "lun") == 0)
            return dom_fail(c, n, "device='lun' passes a host SCSI device through; scuse "
                            "emulates disks (device='disk')");
        return dom_fail(c, n, "device='%s': scuse serves device='disk' and 'cdrom'", device);
    }
    if (cdrom)
        d->cfg.device = SCSI_DEVICE_CDROM;
    if (d->bus != 0 || d->target != 0)
        return dom_fail(c, dom_child(n, "address"), "bus='%u' target='%u': scuse serves "
                        "bus 0, target 0 of a controller (the LUN is the unit)", d->bus,
                        d->target);
    int r;
    if ((r = disk_type(c, n, &d->block)) < 0 || (r = parse_driver(c, n, d)) < 0 ||
        (r = refuse_unserved(c, n)) < 0)
        return r;
    /* A cdrom without a source (or with an empty one) is an empty drive,
     * as libvirt writes it; it has no chain. */
    const xmlNode *sn = dom_child(n, "source");
    const char *sv = sn ? dom_attr(sn, d->block ? "dev" : "file") : NULL;
    if (!cdrom || (sv && *sv)) {
        const char *src = source_of(c, n, d->block, &r);
        if (r < 0)
            return r;
        d->source = dup_or_fail(c, n, src, &r);
        if (r < 0 || (r = parse_chain(c, n, d)) < 0)
            return r;
    }

    if ((r = parse_text(c, n, "serial", d->cfg.serial, sizeof(d->cfg.serial), "_.+- ")) < 0 ||
        (r = parse_text(c, n, "vendor", d->cfg.vendor, sizeof(d->cfg.vendor), NULL)) < 0 ||
        (r = parse_text(c, n, "product", d->cfg.product, sizeof(d->cfg.product), NULL)) < 0 ||
        (r = parse_wwn(c, n, d)) < 0 || (r = parse_blockio(c, n, d)) < 0)
        return r;

    d->cfg.read_only = dom_child(n, "readonly") != NULL || cdrom;   /* a CD-ROM: implied */
    d->shareable = dom_child(n, "shareable") != NULL;
    if (d->shareable && !d->cfg.read_only && strcmp(d->fmt, "raw") != 0)
        return dom_fail(c, dom_child(n, "shareable"), "a shared %s disk: only raw images can "
                        "be written by several VMs at once", d->libvirt_fmt);
    const xmlNode *boot = dom_child(n, "boot");
    if (boot) {
        if (!dom_attr(boot, "order"))
            return dom_fail(c, boot, "needs order='N'");
        if ((r = dom_attr_uint(c, boot, "order", 0, 0xffff, &d->boot_order)) < 0)
            return r;
        if (!d->boot_order)
            return dom_fail(c, boot, "order='0': boot orders start at 1");
    }
    const xmlNode *t = dom_child(n, "target");
    unsigned rate;
    if ((r = dom_attr_uint(c, t, "rotation_rate", 0, 0xfffe, &rate)) < 0)
        return r;
    d->cfg.rotation_rate = (uint16_t)rate;

    /* cache=: the guest's write cache (WCE) and what a flush does, as
     * QEMU's modes set them. none and directsync bypass QEMU's host page
     * cache; scuse uses it, which the guest cannot tell: it sees the same
     * WCE and its flushes are honoured the same way. */
    d->cfg.write_cache = d->cache != DOM_CACHE_WRITETHROUGH && d->cache != DOM_CACHE_DIRECTSYNC;
    d->open_flags = d->cfg.read_only ? 0 : BLK_OPEN_RW;
    if (d->cache == DOM_CACHE_UNSAFE)
        d->open_flags |= BLK_OPEN_NO_FLUSH;
    if (d->shareable)
        d->open_flags |= BLK_OPEN_SHARE;
    return 0;
}

void dom_disk_release(struct dom_disk *d)
{
    free(d->source);
    for (unsigned i = 0; i < d->n_chain; i++)
        free((char *)d->chain[i].file);
    for (int i = 0; i < d->fmt_opts.n; i++) {
        free((char *)d->fmt_opts.kv[i].key);
        free((char *)d->fmt_opts.kv[i].val);
    }
}

int dom_disk_open(const struct dom_disk *d, struct blk_node **out, struct scuse_err *err)
{
    struct blk_opts o = {
        .backing = d->chain,
        .n_backing = d->n_chain,
        .backing_end = d->chain_end,
        .fmt = d->fmt_opts,
    };
    *out = NULL;
    if (!d->source)
        return 0;                   /* an empty cdrom drive: no medium */
    return blk_open(d->source, d->fmt, d->open_flags, &o, out, err);
}
