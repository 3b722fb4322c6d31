/* The bootindex of each scuse controller's device once its disks have left
 * <devices>, chosen so that neither libvirt nor QEMU assigns it too and
 * the original boot order is kept (what libvirt 9.0 + QEMU 7.2 were seen
 * to do, libvirt.md sections 5 and 9):
 *
 *   - libvirt turns each <boot order='N'/> into bootindex=N. When devices
 *     left in <devices> keep boot orders, every boot order (theirs and the
 *     scuse disks') is renumbered 1, 2, ... in the original order: those
 *     devices get their new <boot order>, each scuse controller the number
 *     of its first-booting disk. No two are equal.
 *   - With no boot order left in <devices>, libvirt boots by <os><boot
 *     dev=...> (or adds <boot dev='hd'/>) and gives bootindex 1, 2, ... to
 *     the first device of each kind listed. The scuse controller that held
 *     the boot disk (the disk with the lowest boot order, or libvirt's
 *     first disk when the list starts with hd) gets 0, which libvirt
 *     never assigns; the others come after libvirt's. With a direct kernel
 *     boot (<os><kernel>) QEMU takes 0 itself, and the kernel boots first
 *     anyway: every scuse controller comes after libvirt's.
 * The same input always gives the same numbers, and so does the output:
 * the scuse disks keep their boot orders inside scuse's element (renumbered
 * with the rest) and take part in the next run's renumbering in the same
 * place. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "domain/dom_conv.h"

struct bootable {
    unsigned order;
    xmlNode *boot;                  /* the <boot> of a device left in <devices> */
    int ctrl;                       /* or a scuse controller's slot, -1 */
};

static int by_order(const void *a, const void *b)
{
    const struct bootable *x = a, *y = b;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return x->ctrl - y->ctrl;
}

static unsigned node_order(xmlNode *boot)
{
    const char *v = boot ? dom_attr(boot, "order") : NULL;
    return v ? (unsigned)strtoul(v, NULL, 10) : 0;
}

/* libvirt keeps disks sorted by bus, then by name (virDomainDiskInsert);
 * <boot dev='hd'/> boots the first of them that is a disk. */
static int bus_rank(const char *bus)
{
    static const char *const order[] = { "ide", "fdc", "scsi", "virtio", "xen", "usb", "uml",
                                         "sata", "sd" };
    for (int i = 0; i < 9; i++)
        if (bus && strcmp(bus, order[i]) == 0)
            return i;
    return 9;
}

/* Disk names compare by index: sdb before sdaa. */
static int name_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    return la != lb ? (la < lb ? -1 : 1) : strcmp(a, b);
}

static bool is_scuse_disk(const struct domain *d, const xmlNode *n)
{
    for (unsigned i = 0; i < d->n_disks; i++)
        if (d->disks[i].node == n)
            return true;
    return false;
}

static bool first_disk_is_scuse(struct domain *d, xmlNode *devices, int *ctrl)
{
    int best_rank = 10;
    const char *best_dev = NULL;
    int best_ctrl = -1;
    for (xmlNode *n = devices ? dom_child(devices, "disk") : NULL; n; n = dom_next(n)) {
        const char *dev_type = dom_attr(n, "device");
        if ((dev_type && strcmp(dev_type, "disk") != 0) || is_scuse_disk(d, n))
            continue;
        xmlNode *t = dom_child(n, "target");
        const char *dev = t ? dom_attr(t, "dev") : NULL;
        const char *bus = t ? dom_attr(t, "bus") : NULL;
        if (!dev)
            continue;
        if (!bus && strncmp(dev, "sd", 2) == 0)
            bus = "scsi";
        int rank = bus_rank(bus);
        if (rank < best_rank || (rank == best_rank && name_cmp(dev, best_dev) < 0)) {
            best_rank = rank;
            best_dev = dev;
            best_ctrl = -1;
        }
    }
    for (unsigned i = 0; i < d->n_disks; i++) {
        const struct dom_disk *k = &d->disks[i];
        int rank = bus_rank("scsi");
        if (rank < best_rank || (rank == best_rank && (!best_dev || name_cmp(k->dev, best_dev) < 0))) {
            best_rank = rank;
            best_dev = k->dev;
            best_ctrl = (int)(dom_controller(d, k->controller) - d->ctrl);
        }
    }
    *ctrl = best_ctrl;
    return best_ctrl >= 0;
}

int dom_boot_plan(struct domain *d, xmlNode *root, const bool *served, unsigned *bootindex,
                  bool *has_index)
{
    xmlNode *devices = dom_child(root, "devices");
    xmlNode *os = dom_child(root, "os");
    bool kernel = os && dom_child(os, "kernel");
    unsigned nboot = 0;
    for (xmlNode *b = os ? dom_child(os, "boot") : NULL; b; b = dom_next(b))
        nboot++;
    const char *first_dev = NULL;
    if (os && dom_child(os, "boot"))
        first_dev = dom_attr(dom_child(os, "boot"), "dev");

    struct bootable *list = calloc(1024 + DOM_MAX_CONTROLLERS, sizeof(*list));
    if (!list)
        return -1;
    unsigned n = 0, libvirt_left = 0;
    for (xmlNode *k = devices ? devices->children : NULL; k; k = k->next) {
        xmlNode *boot = k->type == XML_ELEMENT_NODE ? dom_child(k, "boot") : NULL;
        if (!boot || !node_order(boot) || n == 1024)
            continue;
        bool moving = false;
        for (unsigned i = 0; i < d->n_disks; i++)
            if (d->disks[i].node == k && served[dom_controller(d, d->disks[i].controller) - d->ctrl])
                moving = true;
        if (moving)
            continue;
        list[n++] = (struct bootable){ .order = node_order(boot), .boot = boot, .ctrl = -1 };
        libvirt_left++;
    }
    for (unsigned c = 0; c < d->n_ctrl; c++) {
        has_index[c] = false;
        if (!served[c])
            continue;
        unsigned best = 0;
        for (unsigned i = 0; i < d->n_disks; i++)
            if (d->disks[i].controller == d->ctrl[c].index && d->disks[i].boot_order &&
                (!best || d->disks[i].boot_order < best))
                best = d->disks[i].boot_order;
        if (best)
            list[n++] = (struct bootable){ .order = best, .ctrl = (int)c };
    }
    qsort(list, n, sizeof(*list), by_order);

    if (libvirt_left) {
        /* Renumber everything 1, 2, ... in the original order. */
        for (unsigned i = 0; i < n; i++) {
            char num[16];
            snprintf(num, sizeof(num), "%u", i + 1);
            if (list[i].ctrl >= 0) {
                bootindex[list[i].ctrl] = i + 1;
                has_index[list[i].ctrl] = true;
                /* Its disks keep the new number too, so that the next run
                 * finds them in the same place among the renumbered. */
                for (unsigned k = 0; k < d->n_disks; k++) {
                    xmlNode *b = dom_child(d->disks[k].node, "boot");
                    if (d->disks[k].controller == d->ctrl[list[i].ctrl].index && node_order(b))
                        xmlSetProp(b, BAD_CAST "order", BAD_CAST num);
                }
            } else {
                xmlSetProp(list[i].boot, BAD_CAST "order", BAD_CAST num);
            }
        }
        /* Served controllers without a boot order: after all of them. */
        for (unsigned c = 0, next = n + 1; c < d->n_ctrl; c++)
            if (served[c] && !has_index[c])
                bootindex[c] = next++, has_index[c] = true;
        free(list);
        return 0;
    }

    /* libvirt boots by <os><boot dev>: 1.. nboot are its (one for the
     * implicit hd). The controller that held the boot disk goes first. */
    unsigned after = (nboot ? nboot : 1) + 1;
    int first = -1;
    if (n)
        first = list[0].ctrl;       /* only scuse disks had boot orders */
    else if (!first_dev || strcmp(first_dev, "hd") == 0)
        first_disk_is_scuse(d, devices, &first);
    if (first >= 0 && !kernel) {
        bootindex[first] = 0;
        has_index[first] = true;
    }
    for (unsigned i = 0; i < n; i++)
        if (!has_index[list[i].ctrl])
            bootindex[list[i].ctrl] = after++, has_index[list[i].ctrl] = true;
    for (unsigned c = 0; c < d->n_ctrl; c++)
        if (served[c] && !has_index[c])
            bootindex[c] = after++, has_index[c] = true;
    free(list);
    return 0;
}
