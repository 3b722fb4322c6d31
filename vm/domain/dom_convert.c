/* The domain libvirt runs when scuse serves its virtio-scsi disks.
 *
 * vhost-user-scsi (libvirt has no such disk, libvirt.md section 1): per
 * controller with disks, in <qemu:commandline>,
 *     -chardev socket,id=scuse-scsiN,path=DIR/NAME-scsiN.sock
 *     -device {"driver":"vhost-user-scsi-pci","id":"scuse-scsiN-dev",
 *              "chardev":"scuse-scsiN","num_queues":Q,"bootindex":B}
 * (the JSON form: QEMU creates a legacy -device string before libvirt's own
 * devices and it takes a PCI slot libvirt gave another one), and shared
 * guest memory (<memoryBacking> memfd + shared, what is there kept).
 * vhost-scsi (the kernel path): per controller a vhost-scsi <hostdev>
 * (alias ua-scuse-scsiN) with the controller's WWPN, its bootindex through
 * <qemu:override> (libvirt refuses <boot order> on it).
 * Both move each such controller and its disks verbatim into scuse's
 * element of <metadata>, where `scuse serve --domain` and the hook find
 * them. What scuse added before (ids and aliases starting "scuse-" and
 * "ua-scuse-") is taken out first, so converting the output again gives
 * the same output. Bootindex values: dom_boot.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/xmlsave.h>

#include "domain/dom_conv.h"
#include "tcmu/configfs.h"

#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"

/* ------------------------------------------------------------ whitespace */

static bool is_ws(const xmlNode *n)
{
    if (!n || n->type != XML_TEXT_NODE)
        return false;
    for (const xmlChar *p = n->content; p && *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return false;
    return true;
}

/* The indentation of n's line: what follows the last newline of the
 * white space before it ("" when none). */
static void indent_of(const xmlNode *n, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!n || !is_ws(n->prev))
        return;
    const char *s = (const char *)n->prev->content;
    const char *nl = strrchr(s, '\n');
    snprintf(buf, len, "%s", nl ? nl + 1 : s);
}

static xmlNode *ws_node(const char *indent)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "\n%s", indent);
    return xmlNewText(BAD_CAST buf);
}

static void strip_trailing_ws(xmlNode *w)
{
    char *t = (char *)xmlNodeGetContent(w);
    if (!t)
        return;
    size_t len = strlen(t);
    while (len && (t[len - 1] == ' ' || t[len - 1] == '\t' || t[len - 1] == '\n' ||
                   t[len - 1] == '\r'))
        t[--len] = '\0';
    xmlNodeSetContent(w, NULL);
    xmlNodeAddContent(w, BAD_CAST t);
    xmlFree(t);
}

/* The white space that put n on its line goes with it (other text
 * before it stays, without its trailing white space). */
static void drop_ws_before(xmlNode *n)
{
    xmlNode *w = n->prev;
    if (!w || w->type != XML_TEXT_NODE)
        return;
    if (is_ws(w)) {
        xmlUnlinkNode(w);
        xmlFreeNode(w);
        return;
    }
    strip_trailing_ws(w);
}

static void remove_node(xmlNode *n)
{
    drop_ws_before(n);
    xmlUnlinkNode(n);
    xmlFreeNode(n);
}

static void detach(xmlNode *n)
{
    drop_ws_before(n);
    xmlUnlinkNode(n);
}

/* child becomes parent's last element, on its own line, indented one
 * step (two spaces) deeper than parent. (Elements are placed first and
 * white space next to them: libxml2 merges a text node added beside
 * another text node into it.) */
static void append_indented(xmlNode *parent, xmlNode *child)
{
    char pin[128], cin[160];
    indent_of(parent, pin, sizeof(pin));
    snprintf(cin, sizeof(cin), "%s  ", pin);
    if (is_ws(parent->last)) {
        xmlAddPrevSibling(parent->last, child);
    } else {
        /* Other text last: its trailing white space makes way for ours
         * (the same text comes out whatever white space it had). */
        if (parent->last && parent->last->type == XML_TEXT_NODE)
            strip_trailing_ws(parent->last);
        xmlAddChild(parent, child);
        xmlAddNextSibling(child, ws_node(pin));
    }
    xmlAddPrevSibling(child, ws_node(cin));
}

/* A moved subtree's own line breaks take the indentation of its new
 * place (only white space changes). */
static void reindent(xmlNode *n, size_t from, size_t to)
{
    if (from == to)
        return;
    for (xmlNode *k = n->children; k; k = k->next) {
        if (k->type == XML_ELEMENT_NODE) {
            reindent(k, from, to);
            continue;
        }
        if (!is_ws(k))
            continue;
        char out[1024];
        size_t o = 0;
        for (const char *p = (const char *)k->content; *p && o + to + 2 < sizeof(out); p++) {
            out[o++] = *p;
            if (*p != '\n')
                continue;
            size_t sp = 0;
            while (p[1 + sp] == ' ')
                sp++;
            size_t want = sp >= from ? sp - from + to : sp;
            if (want > 200)
                want = 200;
            memset(out + o, ' ', want);
            o += want;
            p += sp;
        }
        out[o] = '\0';
        xmlNodeSetContent(k, BAD_CAST out);
    }
}

/* Move n (with its subtree) to the end of parent. */
static void move_indented(xmlNode *n, xmlNode *parent)
{
    char before[128], after[128];
    indent_of(n, before, sizeof(before));
    detach(n);
    append_indented(parent, n);
    indent_of(n, after, sizeof(after));
    reindent(n, strlen(before), strlen(after));
}

static void insert_after_indented(xmlNode *ref, xmlNode *node)
{
    char in[128];
    indent_of(ref, in, sizeof(in));
    xmlAddNextSibling(ref, node);
    xmlAddPrevSibling(node, ws_node(in));
}

/* ----------------------------------------------------------------- names */

static const char *socket_dir_of(const struct domain *d, const char *dir)
{
    return dir ? dir : d->socket_dir ? d->socket_dir : DOM_SOCKET_DIR;
}

int dom_socket_path(const struct domain *d, const struct dom_controller *k, const char *dir,
                    char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s-scsi%u.sock", socket_dir_of(d, dir), d->name, k->index);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

void dom_controller_wwpn(const struct domain *d, const struct dom_controller *k, char out[24])
{
    if (k->wwpn[0]) {
        snprintf(out, 24, "%s", k->wwpn);
        return;
    }
    char from[64];
    if (d->has_uuid) {
        const uint8_t *u = d->uuid;
        snprintf(from, sizeof(from), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                 "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7],
                 u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    } else {
        snprintf(from, sizeof(from), "name:%.58s", d->name);
    }
    /* The salt keeps controller WWPNs apart from `tcmu create`'s (0, 1). */
    tcmu_wwn_derive(from, 0x5c00u + k->index, out, 24);
}

/* ------------------------------------------------------- scuse's element */

static xmlNode *scuse_element(xmlNode *root, xmlNs **ns)
{
    xmlNode *meta = dom_child(root, "metadata");
    if (!meta) {
        meta = xmlNewNode(NULL, BAD_CAST "metadata");
        xmlNode *devices = dom_child(root, "devices");
        if (devices)
            insert_after_indented(devices, meta);
        else
            append_indented(root, meta);
    }
    xmlNode *mine = dom_child_ns(meta, "domain");
    if (mine) {
        *ns = mine->ns;
        return mine;
    }
    mine = xmlNewNode(NULL, BAD_CAST "domain");
    *ns = xmlNewNs(mine, BAD_CAST DOM_NS, BAD_CAST "scuse");
    xmlSetNs(mine, *ns);
    append_indented(meta, mine);
    return mine;
}

static xmlNode *scuse_child(xmlNode *mine, xmlNs *ns, const char *name, const char *key,
                            const char *val)
{
    for (xmlNode *k = dom_child_ns(mine, name); k; k = dom_next(k))
        if (!key || (dom_attr(k, key) && strcmp(dom_attr(k, key), val) == 0))
            return k;
    xmlNode *k = xmlNewNode(ns, BAD_CAST name);
    if (key)
        xmlSetProp(k, BAD_CAST key, BAD_CAST val);
    append_indented(mine, k);
    return k;
}

/* -------------------------------------------------- what scuse added before */

static bool ours(const char *v, const char *prefix)
{
    return v && strncmp(v, prefix, strlen(prefix)) == 0;
}

/* libvirt's QEMU namespace on the root: the one declared, else "qemu"
 * (or "qemu2"... when that prefix is bound to something else). */
static xmlNs *qemu_ns(xmlNode *root)
{
    xmlNs *ns = xmlSearchNsByHref(root->doc, root, BAD_CAST QEMU_NS);
    for (unsigned i = 1; !ns && i < 100; i++) {
        char prefix[16] = "qemu";
        if (i > 1)
            snprintf(prefix, sizeof(prefix), "qemu%u", i);
        ns = xmlNewNs(root, BAD_CAST QEMU_NS, BAD_CAST prefix);
    }
    return ns;
}

static xmlNode *qemu_child(xmlNode *parent, const char *name)
{
    for (xmlNode *k = parent->children; k; k = k->next)
        if (k->type == XML_ELEMENT_NODE && k->ns && k->ns->href &&
            strcmp((const char *)k->ns->href, QEMU_NS) == 0 &&
            strcmp((const char *)k->name, name) == 0)
            return k;
    return NULL;
}

static xmlNode *next_element(xmlNode *n)
{
    for (n = n ? n->next : NULL; n && n->type != XML_ELEMENT_NODE; n = n->next)
        ;
    return n;
}

static bool has_elements(const xmlNode *n)
{
    for (const xmlNode *k = n->children; k; k = k->next)
        if (k->type == XML_ELEMENT_NODE)
            return true;
    return false;
}

/* Our -chardev/-device argument pairs, our hostdevs and overrides. */
static void remove_ours(xmlNode *root)
{
    xmlNode *cl = qemu_child(root, "commandline");
    for (xmlNode *a = cl ? cl->children : NULL; a;) {
        xmlNode *val = a->type == XML_ELEMENT_NODE ? next_element(a) : NULL;
        const char *flag = val ? dom_attr(a, "value") : NULL;
        const char *v = val ? dom_attr(val, "value") : NULL;
        bool mine = flag && v &&
                    ((strcmp(flag, "-chardev") == 0 && ours(v, "socket,id=scuse-scsi")) ||
                     (strcmp(flag, "-device") == 0 && strstr(v, "\"id\":\"scuse-scsi")));
        if (!mine) {
            a = a->next;
            continue;
        }
        xmlNode *after = next_element(val);
        remove_node(a);
        remove_node(val);
        a = after;
    }
    if (cl && !has_elements(cl))
        remove_node(cl);

    xmlNode *ov = qemu_child(root, "override");
    for (xmlNode *dv = ov ? ov->children : NULL; dv;) {
        xmlNode *next = dv->next;
        if (dv->type == XML_ELEMENT_NODE && ours(dom_attr(dv, "alias"), "ua-scuse-scsi"))
            remove_node(dv);
        dv = next;
    }
    if (ov && !has_elements(ov))
        remove_node(ov);

    xmlNode *devices = dom_child(root, "devices");
    for (xmlNode *h = devices ? dom_child(devices, "hostdev") : NULL; h;) {
        xmlNode *next = dom_next(h);
        xmlNode *alias = dom_child(h, "alias");
        if (alias && ours(dom_attr(alias, "name"), "ua-scuse-scsi"))
            remove_node(h);
        h = next;
    }
}

/* Controller slots in index order: what scuse adds follows the indexes,
 * not where the controllers stood (converted again, they stand elsewhere). */
static void by_index(const struct domain *d, unsigned *order)
{
    for (unsigned i = 0; i < d->n_ctrl; i++)
        order[i] = i;
    for (unsigned i = 1; i < d->n_ctrl; i++)
        for (unsigned j = i; j > 0 && d->ctrl[order[j - 1]].index > d->ctrl[order[j]].index; j--) {
            unsigned t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
}

/* -------------------------------------------------------------- transports */

static void ensure_shared_memory(xmlNode *root)
{
    xmlNode *mb = dom_child(root, "memoryBacking");
    if (!mb) {
        mb = xmlNewNode(NULL, BAD_CAST "memoryBacking");
        xmlNode *after = dom_child(root, "currentMemory");
        if (!after)
            after = dom_child(root, "memory");
        if (after)
            insert_after_indented(after, mb);
        else
            append_indented(root, mb);
    }
    /* memfd unless a shareable source is there already (a file). */
    xmlNode *src = dom_child(mb, "source");
    const char *type = src ? dom_attr(src, "type") : NULL;
    if (!src) {
        src = xmlNewNode(NULL, BAD_CAST "source");
        append_indented(mb, src);
    }
    if (!type || strcmp(type, "anonymous") == 0)
        xmlSetProp(src, BAD_CAST "type", BAD_CAST "memfd");
    xmlNode *acc = dom_child(mb, "access");
    if (!acc) {
        acc = xmlNewNode(NULL, BAD_CAST "access");
        append_indented(mb, acc);
    }
    xmlSetProp(acc, BAD_CAST "mode", BAD_CAST "shared");
}

static void add_arg(xmlNode *cl, xmlNs *ns, const char *value)
{
    xmlNode *a = xmlNewNode(ns, BAD_CAST "arg");
    xmlSetProp(a, BAD_CAST "value", BAD_CAST value);
    append_indented(cl, a);
}

static int add_vhost_user(struct domain *d, xmlNode *root, const char *dir, const bool *served,
                          const unsigned *bootindex, const bool *has_index, struct scuse_err *err)
{
    bool any = false;
    for (unsigned c = 0; c < d->n_ctrl; c++)
        any = any || served[c];
    if (!any)
        return 0;                   /* nothing to serve: nothing to add */
    /* First: a <memoryBacking> made here goes before the commandline that
     * is made (and, converted again, made anew) at the end. */
    ensure_shared_memory(root);
    xmlNs *ns = qemu_ns(root);
    xmlNode *cl = qemu_child(root, "commandline");
    if (!cl) {
        cl = xmlNewNode(ns, BAD_CAST "commandline");
        append_indented(root, cl);
    }
    unsigned order[DOM_MAX_CONTROLLERS];
    by_index(d, order);
    for (unsigned o = 0; o < d->n_ctrl; o++) {
        unsigned c = order[o];
        if (!served[c])
            continue;
        const struct dom_controller *k = &d->ctrl[c];
        char path[4096], esc[8192], chardev[8300], dev[512], extra[64] = "";
        if (dom_socket_path(d, k, dir, path, sizeof(path)) < 0)
            return err_set(err, -ENAMETOOLONG, "%s: the socket path of controller %u is too "
                           "long", d->file, k->index);
        /* QEMU's option syntax doubles a comma inside a value. */
        size_t j = 0;
        for (const char *p = path; *p && j + 2 < sizeof(esc); p++) {
            esc[j++] = *p;
            if (*p == ',')
                esc[j++] = ',';
        }
        esc[j] = '\0';
        snprintf(chardev, sizeof(chardev), "socket,id=scuse-scsi%u,path=%s", k->index, esc);
        if (k->queues)
            snprintf(extra, sizeof(extra), ",\"num_queues\":%u", k->queues);
        if (has_index[c])
            snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), ",\"bootindex\":%u",
                     bootindex[c]);
        snprintf(dev, sizeof(dev), "{\"driver\":\"vhost-user-scsi-pci\",\"id\":\"scuse-scsi%u-dev\","
                 "\"chardev\":\"scuse-scsi%u\"%s}", k->index, k->index, extra);
        add_arg(cl, ns, "-chardev");
        add_arg(cl, ns, chardev);
        add_arg(cl, ns, "-device");
        add_arg(cl, ns, dev);
    }
    return 0;
}

static void add_vhost_scsi(struct domain *d, xmlNode *root, xmlNode *mine, xmlNs *sns,
                           const bool *served, const unsigned *bootindex, const bool *has_index)
{
    xmlNode *devices = dom_child(root, "devices");
    if (!devices) {
        devices = xmlNewNode(NULL, BAD_CAST "devices");
        append_indented(root, devices);
    }
    xmlNode *ov = NULL;
    unsigned order[DOM_MAX_CONTROLLERS];
    by_index(d, order);
    for (unsigned o = 0; o < d->n_ctrl; o++) {
        unsigned c = order[o];
        if (!served[c])
            continue;
        const struct dom_controller *k = &d->ctrl[c];
        char wwpn[24], idx[16], alias[48];
        dom_controller_wwpn(d, k, wwpn);
        snprintf(idx, sizeof(idx), "%u", k->index);
        snprintf(alias, sizeof(alias), "ua-scuse-scsi%u", k->index);
        xmlSetProp(scuse_child(mine, sns, "controller", "index", idx), BAD_CAST "wwpn",
                   BAD_CAST wwpn);
        xmlNode *h = xmlNewNode(NULL, BAD_CAST "hostdev");
        xmlSetProp(h, BAD_CAST "mode", BAD_CAST "subsystem");
        xmlSetProp(h, BAD_CAST "type", BAD_CAST "scsi_host");
        xmlSetProp(h, BAD_CAST "managed", BAD_CAST "no");
        xmlSetProp(h, BAD_CAST "model", BAD_CAST "virtio");
        append_indented(devices, h);
        xmlNode *s = xmlNewNode(NULL, BAD_CAST "source");
        xmlSetProp(s, BAD_CAST "protocol", BAD_CAST "vhost");
        xmlSetProp(s, BAD_CAST "wwpn", BAD_CAST wwpn);
        append_indented(h, s);
        xmlNode *a = xmlNewNode(NULL, BAD_CAST "alias");
        xmlSetProp(a, BAD_CAST "name", BAD_CAST alias);
        append_indented(h, a);
        if (!has_index[c])
            continue;
        /* libvirt refuses <boot order> on a vhost-scsi hostdev: QEMU's
         * bootindex property through an override of its frontend. */
        xmlNs *qns = qemu_ns(root);
        if (!ov && !(ov = qemu_child(root, "override"))) {
            ov = xmlNewNode(qns, BAD_CAST "override");
            append_indented(root, ov);
        }
        xmlNode *dv = xmlNewNode(qns, BAD_CAST "device");
        xmlSetProp(dv, BAD_CAST "alias", BAD_CAST alias);
        append_indented(ov, dv);
        xmlNode *fe = xmlNewNode(qns, BAD_CAST "frontend");
        append_indented(dv, fe);
        xmlNode *p = xmlNewNode(qns, BAD_CAST "property");
        char num[16];
        snprintf(num, sizeof(num), "%u", bootindex[c]);
        xmlSetProp(p, BAD_CAST "name", BAD_CAST "bootindex");
        xmlSetProp(p, BAD_CAST "type", BAD_CAST "unsigned");
        xmlSetProp(p, BAD_CAST "value", BAD_CAST num);
        append_indented(fe, p);
    }
}

/* ------------------------------------------------------------------ whole */


int dom_convert(struct domain *d, enum dom_transport t, const char *socket_dir,
                int socket_mode, const char *socket_group, char **out, size_t *len,
                struct scuse_err *err)
{
    *out = NULL;
    *len = 0;
    xmlDoc *doc = d->doc;
    xmlNode *root = xmlDocGetRootElement(doc);
    bool served[DOM_MAX_CONTROLLERS] = { false }, has_index[DOM_MAX_CONTROLLERS];
    unsigned bootindex[DOM_MAX_CONTROLLERS] = { 0 };
    for (unsigned c = 0; c < d->n_ctrl; c++)
        served[c] = d->ctrl[c].n_disks > 0;
    if (dom_boot_plan(d, root, served, bootindex, has_index) < 0)
        return err_set(err, -ENOMEM, "out of memory");

    remove_ours(root);
    xmlNs *sns;
    xmlNode *mine = scuse_element(root, &sns);
    xmlNode *tr = scuse_child(mine, sns, "transport", NULL, NULL);
    xmlSetProp(tr, BAD_CAST "type", BAD_CAST(t == DOM_VHOST_SCSI ? "vhost-scsi"
                                                                  : "vhost-user-scsi"));
    if (t == DOM_VHOST_USER_SCSI) {
        xmlSetProp(tr, BAD_CAST "socket-dir", BAD_CAST socket_dir_of(d, socket_dir));
        char mode[8];
        snprintf(mode, sizeof(mode), "%04o", socket_mode & 0777);
        if (socket_mode >= 0)
            xmlSetProp(tr, BAD_CAST "socket-mode", BAD_CAST mode);
        if (socket_group)
            xmlSetProp(tr, BAD_CAST "socket-group", BAD_CAST socket_group);
    } else {
        /* vhost-scsi has no socket: the directory given is where `scuse
         * tcmu up` keeps the domain's XML copy (its state directory). */
        if (socket_dir)
            xmlSetProp(tr, BAD_CAST "socket-dir", BAD_CAST socket_dir);
        else if (!d->socket_dir)
            xmlUnsetProp(tr, BAD_CAST "socket-dir");
        xmlUnsetProp(tr, BAD_CAST "socket-mode");
        xmlUnsetProp(tr, BAD_CAST "socket-group");
    }

    /* The controllers and their disks, verbatim, in index order. */
    for (unsigned c = 0; c < d->n_ctrl; c++) {
        struct dom_controller *k = &d->ctrl[c];
        if (!served[c] || k->in_metadata)
            continue;
        move_indented(k->node, mine);
        k->in_metadata = true;
        for (unsigned i = 0; i < d->n_disks; i++) {
            struct dom_disk *disk = &d->disks[i];
            if (disk->controller != k->index || disk->in_metadata)
                continue;
            move_indented(disk->node, mine);
            disk->in_metadata = true;
        }
    }
    int r = 0;
    if (t == DOM_VHOST_USER_SCSI)
        r = add_vhost_user(d, root, socket_dir, served, bootindex, has_index, err);
    else
        add_vhost_scsi(d, root, mine, sns, served, bootindex, has_index);
    if (r < 0)
        return r;

    xmlBuffer *buf = xmlBufferCreate();
    xmlSaveCtxt *sc = buf ? xmlSaveToBuffer(buf, "UTF-8", XML_SAVE_NO_DECL) : NULL;
    if (!sc || xmlSaveDoc(sc, doc) < 0) {
        if (sc)
            xmlSaveClose(sc);
        xmlBufferFree(buf);
        return err_set(err, -ENOMEM, "out of memory");
    }
    xmlSaveClose(sc);
    *len = (size_t)xmlBufferLength(buf);
    *out = malloc(*len + 1);
    if (*out) {
        memcpy(*out, xmlBufferContent(buf), *len);
        (*out)[*len] = '\0';
    }
    xmlBufferFree(buf);
    return *out ? 0 : err_set(err, -ENOMEM, "out of memory");
}
