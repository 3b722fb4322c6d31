/* A libvirt domain: its name and UUID, the virtio-scsi controllers and
 * their disks (in <devices>, or moved into scuse's <metadata> element by
 * `scuse domain`), and scuse's own per-LUN settings from that element:
 *
 *   <metadata>
 *     <scuse:domain xmlns:scuse='urn:scuse:domain:1'>
 *       <scuse:transport type='vhost-user-scsi' socket-dir='/run/scuse'
 *                        socket-mode='0660' socket-group='kvm'/>
 *       <scuse:controller index='0' wwpn='naa.5001405...'/>
 *       <scuse:lun dev='sda' deny='UNMAP:WRITE_SAME_16'>  (or allow=, policy-file=)
 *         <scuse:option name='l2-cache-size' value='4M'/>
 *       </scuse:lun>
 *       <controller .../> <disk .../>   (moved, in libvirt's syntax)
 *     </scuse:domain>
 *   </metadata> */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libxml/parser.h>

#include "domain/dom_int.h"

#define DOM_MAX_FILE (16u << 20)

struct dom_controller *dom_controller(struct domain *d, unsigned index)
{
    for (unsigned i = 0; i < d->n_ctrl; i++)
        if (d->ctrl[i].index == index)
            return &d->ctrl[i];
    return NULL;
}

static int parse_uuid(const struct dom_ctx *c, const xmlNode *n, struct domain *d)
{
    char *s = dom_text(n);
    if (!s)
        return dom_fail(c, n, "out of memory");
    unsigned nd = 0;
    bool ok = true;
    for (const char *p = s; *p && ok; p++) {
        if (*p == '-')
            continue;
        int v = isdigit((unsigned char)*p) ? *p - '0'
                : isxdigit((unsigned char)*p) ? tolower((unsigned char)*p) - 'a' + 10 : -1;
        if (v < 0 || nd == 32)
            ok = false;
        else
            d->uuid[nd / 2] = (uint8_t)(d->uuid[nd / 2] << 4 | v), nd++;
    }
    int r = ok && nd == 32 ? 0 : dom_fail(c, n, "'%s' is not a UUID (32 hex digits)", s);
    xmlFree(s);
    d->has_uuid = r == 0;
    return r;
}

static int wwpn_check(const struct dom_ctx *c, const xmlNode *n, const char *w)
{
    bool ok = strncmp(w, "naa.", 4) == 0 && strlen(w) == 20;
    for (const char *p = w + 4; ok && *p; p++)
        ok = isxdigit((unsigned char)*p);
    return ok ? 0 : dom_fail(c, n, "wwpn='%s': libvirt takes 'naa.' and 16 hex digits", w);
}

/* <controller type='scsi' model='virtio-scsi'>: scuse's. Others: NULL. */
static int add_controller(const struct dom_ctx *c, struct domain *d, xmlNode *n, bool meta)
{
    const char *type = dom_attr(n, "type");
    const char *model = dom_attr(n, "model");
    if (!type || strcmp(type, "scsi") != 0 || !model || strcmp(model, "virtio-scsi") != 0) {
        if (meta)
            return dom_fail(c, n, "scuse's element holds virtio-scsi controllers only");
        return 0;
    }
    unsigned index;
    int r = dom_attr_uint(c, n, "index", 0, DOM_MAX_CONTROLLERS - 1, &index);
    if (r < 0)
        return r;
    if (dom_controller(d, index))
        return dom_fail(c, n, "a second SCSI controller with index='%u'", index);
    struct dom_controller *k = &d->ctrl[d->n_ctrl++];
    memset(k, 0, sizeof(*k));
    k->line = (unsigned)xmlGetLineNo(n);
    k->index = index;
    k->in_metadata = meta;
    k->node = n;
    const xmlNode *dr = dom_child(n, "driver");
    if (dr && (r = dom_attr_uint(c, dr, "queues", 0, 62, &k->queues)) < 0)
        return r;
    if (dr && dom_attr(dr, "queues") && !k->queues)
        return dom_fail(c, dr, "queues='0': at least one request queue");
    return 0;
}

/* Other SCSI controllers still count for the index check: libvirt would
 * refuse two controllers with one index whatever their models. */
static int scan_controllers(const struct dom_ctx *c, struct domain *d, xmlNode *parent, bool meta)
{
    unsigned seen[DOM_MAX_CONTROLLERS] = { 0 };
    for (xmlNode *n = dom_child(parent, "controller"); n; n = dom_next(n)) {
        const char *type = dom_attr(n, "type");
        if (type && strcmp(type, "scsi") == 0 && !meta) {
            unsigned index;
            int r = dom_attr_uint(c, n, "index", 0, DOM_MAX_CONTROLLERS - 1, &index);
            if (r < 0)
                return r;
            if (seen[index]++)
                return dom_fail(c, n, "a second SCSI controller with index='%u'", index);
        }
        if (d->n_ctrl == DOM_MAX_CONTROLLERS)
            return dom_fail(c, n, "more than %d controllers", DOM_MAX_CONTROLLERS);
        int r = add_controller(c, d, n, meta);
        if (r < 0)
            return r;
    }
    return 0;
}

static int add_disk(const struct dom_ctx *c, struct domain *d, xmlNode *n, bool meta)
{
    struct dom_disk tmp;
    memset(&tmp, 0, sizeof(tmp));
    bool scsi;
    int r = dom_disk_where(c, n, &scsi, &tmp);
    if (r < 0)
        return r;
    struct dom_controller *k = scsi ? dom_controller(d, tmp.controller) : NULL;
    if (!k) {
        if (meta)
            return dom_fail(c, n, "a disk in scuse's element must be on one of its virtio-scsi "
                            "controllers");
        return 0;                   /* another bus or controller: libvirt's */
    }
    if (d->n_disks == DOM_MAX_DISKS)
        return dom_fail(c, n, "more than %d SCSI disks", DOM_MAX_DISKS);
    for (unsigned i = 0; i < d->n_disks; i++) {
        const struct dom_disk *o = &d->disks[i];
        if (o->controller == tmp.controller && o->unit == tmp.unit && o->bus == tmp.bus &&
            o->target == tmp.target)
            return dom_fail(c, n, "controller %u unit %u is taken by the disk at line %u "
                            "(target dev '%s')", tmp.controller, tmp.unit, o->line, o->dev);
        if (strcmp(o->dev, tmp.dev) == 0)
            return dom_fail(c, n, "target dev '%s' is used by the disk at line %u too", tmp.dev,
                            o->line);
    }
    struct dom_disk *disk = &d->disks[d->n_disks++];
    *disk = tmp;
    disk->in_metadata = meta;
    k->n_disks++;
    return dom_disk_parse(c, n, disk);
}

static int scan_disks(const struct dom_ctx *c, struct domain *d, xmlNode *parent, bool meta)
{
    for (xmlNode *n = dom_child(parent, "disk"); n; n = dom_next(n)) {
        int r = add_disk(c, d, n, meta);
        if (r < 0)
            return r;
    }
    return 0;
}

static struct dom_disk *disk_by_dev(struct domain *d, const char *dev)
{
    for (unsigned i = 0; i < d->n_disks; i++)
        if (strcmp(d->disks[i].dev, dev) == 0)
            return &d->disks[i];
    return NULL;
}

/* <scuse:lun dev=... allow|deny=...> and its <scuse:option>s. */
static int apply_lun(const struct dom_ctx *c, struct domain *d, const xmlNode *n)
{
    const char *dev = dom_attr(n, "dev");
    if (!dev)
        return dom_fail(c, n, "needs dev='sdX' (the disk's target dev)");
    struct dom_disk *disk = disk_by_dev(d, dev);
    if (!disk)
        return dom_fail(c, n, "dev='%s': no disk on a virtio-scsi controller has that target",
                        dev);
    const char *allow = dom_attr(n, "allow"), *deny = dom_attr(n, "deny");
    const char *file = dom_attr(n, "policy-file");
    if (!!allow + !!deny + !!file > 1)
        return dom_fail(c, n, "%s: a LUN has one command policy",
                        allow && deny ? "allow= and deny=" : "policy-file= and a list");
    struct scuse_err perr = { 0 };
    if (file && scsi_policy_load(file, &disk->cfg, &perr) < 0)
        return dom_fail(c, n, "%s", perr.msg);
    if (allow || deny) {
        char spec[2048];
        if (snprintf(spec, sizeof(spec), "%s=%s", allow ? "allow" : "deny",
                     allow ? allow : deny) >= (int)sizeof(spec))
            return dom_fail(c, n, "the command policy is too long");
        if (scsi_policy_parse(spec, &disk->cfg, &perr) < 0)
            return dom_fail(c, n, "%s", perr.msg);
    }
    for (const xmlNode *o = dom_child_ns(n, "option"); o; o = dom_next(o)) {
        const char *name = dom_attr(o, "name"), *value = dom_attr(o, "value");
        if (!name || !*name || !value)
            return dom_fail(c, o, "needs name='...' and value='...' (the format's open option)");
        if (disk->fmt_opts.n == BLK_MAX_KV)
            return dom_fail(c, o, "more than %d options", BLK_MAX_KV);
        char *k = strdup(name), *v = strdup(value);
        int i = disk->fmt_opts.n;
        disk->fmt_opts.kv[i].key = k;
        disk->fmt_opts.kv[i].val = v;
        if (k || v)
            disk->fmt_opts.n++;
        if (!k || !v)
            return dom_fail(c, o, "out of memory");
    }
    return 0;
}

static int parse_scuse_settings(const struct dom_ctx *c, struct domain *d, const xmlNode *m)
{
    const xmlNode *t = dom_child_ns(m, "transport");
    if (t) {
        const char *type = dom_attr(t, "type");
        if (!type || (strcmp(type, "vhost-user-scsi") != 0 && strcmp(type, "vhost-scsi") != 0))
            return dom_fail(c, t, "type='%s': vhost-user-scsi or vhost-scsi", type ? type : "");
        strcpy(d->transport, type);
        const char *dir = dom_attr(t, "socket-dir");
        if (dir && dir[0] != '/')
            return dom_fail(c, t, "socket-dir='%s': an absolute path", dir);
        if (dir && !(d->socket_dir = strdup(dir)))
            return dom_fail(c, t, "out of memory");
        const char *mode = dom_attr(t, "socket-mode");
        if (mode) {
            char *end;
            long m = strtol(mode, &end, 8);
            if (!*mode || *end || m < 0 || m > 0777)
                return dom_fail(c, t, "socket-mode='%s': octal, 0 to 0777", mode);
            d->socket_mode = (int)m;
        }
        const char *group = dom_attr(t, "socket-group");
        if (group && !*group)
            return dom_fail(c, t, "socket-group='': a group name or number");
        if (group && !(d->socket_group = strdup(group)))
            return dom_fail(c, t, "out of memory");
    }
    for (const xmlNode *k = dom_child_ns(m, "controller"); k; k = dom_next(k)) {
        unsigned index;
        int r = dom_attr_uint(c, k, "index", 0, DOM_MAX_CONTROLLERS - 1, &index);
        if (r < 0)
            return r;
        struct dom_controller *ctrl = dom_controller(d, index);
        if (!ctrl)
            return dom_fail(c, k, "index='%u': no virtio-scsi controller has it", index);
        const char *w = dom_attr(k, "wwpn");
        if (w) {
            if ((r = wwpn_check(c, k, w)) < 0)
                return r;
            strcpy(ctrl->wwpn, w);
        }
    }
    for (const xmlNode *l = dom_child_ns(m, "lun"); l; l = dom_next(l)) {
        int r = apply_lun(c, d, l);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The vhost-scsi hostdevs a converted domain carries must have a WWPN
 * libvirt takes (its own message for a bad one is vague). */
static int check_hostdevs(const struct dom_ctx *c, const xmlNode *devices)
{
    for (const xmlNode *h = dom_child(devices, "hostdev"); h; h = dom_next(h)) {
        const xmlNode *s = dom_child(h, "source");
        const char *proto = s ? dom_attr(s, "protocol") : NULL;
        const char *w = s ? dom_attr(s, "wwpn") : NULL;
        if (proto && strcmp(proto, "vhost") == 0) {
            int r = wwpn_check(c, s, w ? w : "");
            if (r < 0)
                return r;
        }
    }
    return 0;
}

static int parse_root(const struct dom_ctx *c, struct domain *d, xmlNode *root)
{
    if (!dom_is(root, "domain"))
        return dom_fail(c, root, "not a libvirt domain (the root element is <domain>)");
    const xmlNode *name = dom_child(root, "name");
    if (!name)
        return dom_fail(c, root, "a domain needs a <name>");
    d->name = dom_text(name);
    if (!d->name || !*d->name)
        return dom_fail(c, name, "empty");
    if (strchr(d->name, '/'))
        return dom_fail(c, name, "'%s': a domain name has no '/'", d->name);
    const xmlNode *uuid = dom_child(root, "uuid");
    int r;
    if (uuid && (r = parse_uuid(c, uuid, d)) < 0)
        return r;
    xmlNode *devices = dom_child(root, "devices");
    const xmlNode *meta = dom_child(root, "metadata");
    xmlNode *mine = meta ? dom_child_ns(meta, "domain") : NULL;
    if (mine && dom_next(mine))
        return dom_fail(c, dom_next(mine), "a second scuse element (libvirt keeps one per "
                        "namespace)");
    if ((devices && (r = scan_controllers(c, d, devices, false)) < 0) ||
        (mine && (r = scan_controllers(c, d, mine, true)) < 0))
        return r;
    d->disks = calloc(DOM_MAX_DISKS, sizeof(*d->disks));
    if (!d->disks)
        return dom_fail(c, root, "out of memory");
    if ((devices && (r = scan_disks(c, d, devices, false)) < 0) ||
        (mine && (r = scan_disks(c, d, mine, true)) < 0) ||
        (mine && (r = parse_scuse_settings(c, d, mine)) < 0) ||
        (devices && (r = check_hostdevs(c, devices)) < 0))
        return r;
    return 0;
}

/* libxml2 keeps no line for the DTD node: count the lines before it. */
static unsigned doctype_line(const char *buf, size_t len)
{
    const char *at = memmem(buf, len, "<!DOCTYPE", 9);
    unsigned line = 1;
    for (const char *p = buf; at && p < at; p++)
        line += *p == '\n';
    return line;
}

int dom_parse(const char *buf, size_t len, const char *file, struct domain **out,
              struct scuse_err *err)
{
    *out = NULL;
    struct dom_ctx c = { .file = file, .err = err };
    if (len > DOM_MAX_FILE || len > 0x7fffffff)
        return err_set(err, -EFBIG, "%s: larger than %u MiB", file, DOM_MAX_FILE >> 20);
    struct domain *d = calloc(1, sizeof(*d));
    xmlParserCtxt *pc = xmlNewParserCtxt();
    if (d)
        d->socket_mode = -1;
    if (!d || !pc || !(d->file = strdup(file))) {
        free(d);
        xmlFreeParserCtxt(pc);
        return err_set(err, -ENOMEM, "out of memory");
    }
    /* No network, no DTD loading, no entity substitution; the parser's
     * own messages go to err, not stderr. */
    xmlDoc *doc = xmlCtxtReadMemory(pc, buf, (int)len, NULL, NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                                    XML_PARSE_BIG_LINES);
    int r = 0;
    if (!doc) {
        const xmlError *e = xmlCtxtGetLastError(pc);
        char msg[256] = "not well-formed";
        if (e && e->message) {
            snprintf(msg, sizeof(msg), "%s", e->message);
            msg[strcspn(msg, "\n")] = '\0';
            dom_one_line(msg);
        }
        r = err_set(err, -EINVAL, "%s:%d: malformed XML: %s", file, e ? e->line : 0, msg);
    } else if (!pc->nsWellFormed) {
        /* A prefix bound nowhere: libvirt would not read this either. */
        const xmlError *e = xmlCtxtGetLastError(pc);
        char msg[256] = "namespace error";
        if (e && e->message) {
            snprintf(msg, sizeof(msg), "%s", e->message);
            msg[strcspn(msg, "\n")] = '\0';
            dom_one_line(msg);
        }
        r = err_set(err, -EINVAL, "%s:%d: malformed XML: %s", file, e ? e->line : 0, msg);
    } else if (doc->intSubset || doc->extSubset) {
        r = err_set(err, -EINVAL, "%s:%u: <!DOCTYPE>: a domain has no document type "
                    "declaration", file, doctype_line(buf, len));
    }
    xmlFreeParserCtxt(pc);
    d->doc = doc;
    if (!r) {
        xmlNode *root = xmlDocGetRootElement(doc);
        r = root ? parse_root(&c, d, root) : err_set(err, -EINVAL, "%s: empty document", file);
    }
    if (r < 0) {
        dom_free(d);
        return r;
    }
    *out = d;
    return 0;
}

int dom_load(const char *file, struct domain **out, struct scuse_err *err)
{
    *out = NULL;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(err, -errno, "%s: %s", file, strerror(errno));
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) < 0)
        why = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        why = "not a regular file";
    else if (st.st_size > DOM_MAX_FILE)
        why = "larger than 16 MiB";
    if (why) {
        close(fd);
        return err_set(err, -EINVAL, "%s: %s", file, why);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!buf)
        return err_set(err, -ENOMEM, "out of memory");
    int r = dom_parse(buf, got, file, out, err);
    free(buf);
    return r;
}

void dom_free(struct domain *d)
{
    if (!d)
        return;
    for (unsigned i = 0; d->disks && i < d->n_disks; i++)
        dom_disk_release(&d->disks[i]);
    free(d->disks);
    if (d->name)
        xmlFree(d->name);
    free(d->socket_dir);
    free(d->socket_group);
    free(d->file);
    if (d->doc)
        xmlFreeDoc(d->doc);
    free(d);
}
