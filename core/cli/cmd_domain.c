/* scuse domain: a libvirt domain's virtio-scsi disks as scuse serves them.
 *   scuse domain IN.xml            list the controllers and LUNs scuse would serve
 *   scuse domain IN.xml --transport vhost-user-scsi|vhost-scsi [--socket-dir DIR] [-o OUT]
 *                                  the domain libvirt runs with scuse serving them */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "domain/domain.h"

static void domain_usage(FILE *f)
{
    fprintf(f,
            "usage: scuse domain IN.xml\n"
            "       scuse domain IN.xml --transport vhost-user-scsi|vhost-scsi\n"
            "                    [--socket-dir DIR] [--socket-mode M] [--socket-group G] [-o OUT.xml]\n"
            "  Without --transport: lists what scuse serves of the domain: each\n"
            "  <controller type='scsi' model='virtio-scsi'> with its disks (LUN = the\n"
            "  disk's unit), their images, backing chains and SCSI settings.\n"
            "  --transport T      write the domain libvirt runs while scuse serves those\n"
            "                     disks: they and their controllers move into scuse's\n"
            "                     <metadata>; vhost-user-scsi adds QEMU's device to\n"
            "                     <qemu:commandline> and shared memory, vhost-scsi a\n"
            "                     <hostdev> per controller. Idempotent.\n"
            "  --socket-dir DIR   vhost-user-scsi sockets: DIR/<name>-scsiN.sock (default:\n"
            "                     the one the domain records, else " DOM_SOCKET_DIR "); with\n"
            "                     vhost-scsi: where scuse tcmu up keeps the domain's XML copy\n"
            "  --socket-mode M    --socket-group G  recorded for serve --domain and the hook:\n"
            "                     the sockets' mode (octal) and group, for QEMU's user\n"
            "  -o OUT.xml         write there (default: standard output)\n"
            "Bad input is one line naming the file, the line and the element (exit 1).\n"
            "See scuse-domain(5) for the elements and scuse's <metadata>.\n");
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
    if (k->source)
        fprintf(f, " '%s'", k->source);
    else
        fprintf(f, " (empty drive)");
    if (k->cfg.device == SCSI_DEVICE_CDROM)
        fprintf(f, " cdrom");
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

/* OUT written whole or not at all (a temporary file renamed). */
static int write_out(const char *path, const char *buf, size_t len)
{
    if (!path)
        return fwrite(buf, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : -EIO;
    char tmp[4200];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, buf + done, len - done);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    int r = done == len && fsync(fd) == 0 ? 0 : -EIO;
    close(fd);
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

int cmd_domain(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "transport", required_argument, NULL, 't' },
        { "socket-dir", required_argument, NULL, 's' },
        { "socket-mode", required_argument, NULL, 'm' },
        { "socket-group", required_argument, NULL, 'g' },
        { "output", required_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *transport = NULL, *socket_dir = NULL, *out = NULL, *group = NULL;
    int mode = -1;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 't': transport = optarg; break;
        case 's': socket_dir = optarg; break;
        case 'm': {
            char *end;
            long m = strtol(optarg, &end, 8);
            if (!*optarg || *end || m < 0 || m > 0777)
                return cli_fail(EXIT_USAGE, "domain", "--socket-mode '%s': octal, 0 to 0777",
                                optarg);
            mode = (int)m;
            break;
        }
        case 'g':
            if (!*optarg || strchr(optarg, '\'') || strchr(optarg, '<'))
                return cli_fail(EXIT_USAGE, "domain", "--socket-group '%s': a group name or "
                                "number", optarg);
            group = optarg;
            break;
        case 'o': out = optarg; break;
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
    enum dom_transport t = DOM_VHOST_USER_SCSI;
    if (transport && strcmp(transport, "vhost-scsi") == 0)
        t = DOM_VHOST_SCSI;
    else if (transport && strcmp(transport, "vhost-user-scsi") != 0)
        return cli_fail(EXIT_USAGE, "domain", "--transport '%s': vhost-user-scsi or vhost-scsi",
                        transport);
    if ((socket_dir || out || mode >= 0 || group) && !transport)
        return cli_fail(EXIT_USAGE, "domain", "%s goes with --transport",
                        socket_dir ? "--socket-dir" : out ? "-o" : "--socket-mode/-group");
    if (socket_dir && (socket_dir[0] != '/' || strchr(socket_dir, '\'')))
        return cli_fail(EXIT_USAGE, "domain", "--socket-dir '%s': an absolute path (QEMU runs "
                        "elsewhere)", socket_dir);
    struct domain *d;
    struct scuse_err err = { 0 };
    if (dom_load(argv[optind], &d, &err) < 0) {
        fprintf(stderr, "scuse domain: %s\n", err.msg);
        return EXIT_USAGE;
    }
    if (!transport) {
        list_domain(stdout, d);
        dom_free(d);
        return EXIT_OK;
    }
    char *xml;
    size_t len;
    int rc = EXIT_OK;
    if (dom_convert(d, t, socket_dir, mode, group, &xml, &len, &err) < 0) {
        fprintf(stderr, "scuse domain: %s\n", err.msg);
        rc = EXIT_USAGE;
    } else {
        int r = write_out(out, xml, len);
        if (r < 0)
            rc = cli_fail(EXIT_IMAGE, "domain", "%s: %s", out ? out : "standard output",
                          strerror(-r));
        free(xml);
    }
    dom_free(d);
    return rc;
}
