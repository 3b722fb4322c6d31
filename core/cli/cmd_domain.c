/* scuse domain: a libvirt domain's virtio-scsi disks as scuse serves them.
 *   scuse domain IN.xml            list the controllers and LUNs scuse would serve
 * (the conversion to a transport comes with vm/domain's converter). */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "domain/domain.h"

static void domain_usage(FILE *f)
{
    fprintf(f,
            "usage: scuse domain IN.xml\n"
            "  Reads a libvirt domain and lists what scuse serves of it: each\n"
            "  <controller type='scsi' model='virtio-scsi'> with its disks (LUN = the\n"
            "  disk's unit), their images, backing chains and SCSI settings. Bad input\n"
            "  is one line naming the file, the line and the element (exit 1).\n"
            "  See scuse-domain(5) for the elements and scuse's <metadata>.\n");
}

static const char *cache_name(enum dom_cache c)
{
    static const char *const names[] = { "default", "none", "writeback", "writethrough",
                                         "directsync", "unsafe" };
    return names[c];
}

static void print_disk(FILE *f, const struct dom_disk *k)
{
    fprintf(f, "  LUN %u: %s %s", k->unit, k->dev, k->libvirt_fmt);
    if (strcmp(k->fmt, k->libvirt_fmt) != 0)
        fprintf(f, " (scuse's %s)", k->fmt);
    fprintf(f, " '%s'", k->source);
    for (unsigned i = 0; i < k->n_chain; i++)
        fprintf(f, " <- %s '%s'", k->chain[i].fmt, k->chain[i].file);
    fprintf(f, "%s\n", k->chain_end ? " (chain ends)" : k->chain_given || k->n_chain
                       ? " (then from the headers)" : " (chain from the headers)");
    fprintf(f, "    cache=%s (WCE %s%s) discard=%s block=%u/%u%s%s", cache_name(k->cache),
            k->cfg.write_cache ? "on" : "off",
            k->open_flags & BLK_OPEN_NO_FLUSH ? ", flushes ignored" : "",
            k->cfg.discard ? "unmap" : "ignore", k->cfg.block_size,
            k->cfg.block_size << k->cfg.phys_exp, k->cfg.read_only ? " readonly" : "",
            k->shareable ? " shareable" : "");
    if (k->boot_order)
        fprintf(f, " boot=%u", k->boot_order);
    if (k->cfg.rotation_rate)
        fprintf(f, " rotation_rate=%u", k->cfg.rotation_rate);
    fprintf(f, "\n    vendor='%s' product='%s'", k->cfg.vendor, k->cfg.product);
    if (k->cfg.serial[0])
        fprintf(f, " serial='%s'", k->cfg.serial);
    if (k->cfg.wwn)
        fprintf(f, " wwn=0x%016llx", (unsigned long long)k->cfg.wwn);
    if (k->cfg.n_policy || k->cfg.policy_allow)
        fprintf(f, " policy=%s(%u)", k->cfg.policy_allow ? "allow" : "deny", k->cfg.n_policy);
    for (int i = 0; i < k->fmt_opts.n; i++)
        fprintf(f, " %s=%s", k->fmt_opts.kv[i].key, k->fmt_opts.kv[i].val);
    fprintf(f, "\n");
}

static void list_domain(FILE *f, const struct domain *d)
{
    fprintf(f, "domain '%s'%s%s\n", d->name, d->transport[0] ? ", converted for " : "",
            d->transport);
    for (unsigned c = 0; c < d->n_ctrl; c++) {
        const struct dom_controller *k = &d->ctrl[c];
        fprintf(f, "controller %u: virtio-scsi, %u request queue%s, %u LUN%s%s\n", k->index,
                k->queues ? k->queues : 1, k->queues > 1 ? "s" : "", k->n_disks,
                k->n_disks == 1 ? "" : "s", k->in_metadata ? " (in scuse's metadata)" : "");
        for (unsigned i = 0; i < d->n_disks; i++)
            if (d->disks[i].controller == k->index)
                print_disk(f, &d->disks[i]);
    }
}

int cmd_domain(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': domain_usage(stdout); return EXIT_OK;
        case ':':
            return cli_fail(EXIT_USAGE, "domain", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_fail(EXIT_USAGE, "domain", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return cli_fail(EXIT_USAGE, "domain", optind == argc ? "a domain XML file is required"
                        : "one domain XML file, not several");
    struct domain *d;
    struct scuse_err err = { 0 };
    if (dom_load(argv[optind], &d, &err) < 0) {
        fprintf(stderr, "scuse domain: %s\n", err.msg);
        return EXIT_USAGE;
    }
    list_domain(stdout, d);
    dom_free(d);
    return EXIT_OK;
}
