/* scuse serve: images as the LUNs of a vhost-user-scsi device. QEMU
 * connects to the socket; one VM is served at a time, connections one
 * after another (or only one, with --once). SIGTERM/SIGINT stop it with
 * every image flushed and closed; SIGHUP re-reads the images' sizes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk/format.h"
#include "cli/cli.h"
#include "scsi/dispatch.h"
#include "scsi/scsi.h"
#include "util/daemon_sig.h"
#include "util/log.h"
#include "vhost/server.h"
#include "virtio_scsi/vscsi.h"
#include "cli/serve_int.h"
#include "ctl/ctl.h"

/* A start-up failure that is not a usage error (an image, the socket):
 * one line, exit status 1 all the same. */
static __attribute__((format(printf, 1, 2))) int start_fail(const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "scuse serve: %s\n", msg);
    return EXIT_USAGE;
}

static void serve_usage(FILE *f)
{
    fprintf(f,
            "usage: scuse serve --vhost-user-scsi SOCKET --lun N=IMG[,OPT...] [--lun ...]\n"
"                   [--pidfile FILE] [--once] [--workers N] [-v]\n"
"                   [--control SOCKET [--control-group G]]\n"
            "       scuse serve --tcmu [--configfs DIR] [--sysfs DIR] [--workers N] [-v]\n"
            "  --tcmu                    serve the TCMU backstores made by `scuse tcmu create`\n"
            "                            (LIO in the kernel; see `scuse tcmu --help`)\n"
            "  --vhost-user-scsi SOCKET  listen there for QEMU's vhost-user-scsi-pci\n"
            "  --lun N=IMG[,OPT...]      serve IMG as LUN N (0..16383) of target 0; options:\n"
            "      format=FMT            the image format (default: probed; see `scuse --help`)\n"
            "      readonly              serve it write-protected (opened read-only)\n"
            "      device=disk|cdrom     a disk (default) or a CD/DVD-ROM drive: IMG an ISO\n"
            "                            or a CUE sheet, read-only; N=,device=cdrom: empty\n"
            "      serial=S              unit serial number (VPD 80)\n"
            "      wwn=HEX               NAA 5 or 6 designator (VPD 83), 16 hex digits\n"
            "      vendor=V product=P    INQUIRY identification (8 and 16 characters)\n"
            "      block-size=512|4096   logical block size\n"
            "      physical-block-size=N physical block size: the block size times a power\n"
            "                            of two, at most 1 MiB (READ CAPACITY(16) LBPPBE)\n"
            "      discard=unmap|ignore  serve UNMAP and WRITE SAME with UNMAP, or not\n"
            "      cache=writeback|writethrough  write cache reported and honoured\n"
            "      deny=CMD[:CMD...]     refuse these commands (INVALID COMMAND OPERATION\n"
            "                            CODE, absent from REPORT SUPPORTED OPERATION CODES)\n"
            "      allow=CMD[:CMD...]    serve only these commands\n"
            "      policy-file=FILE      allow or deny, then the commands, one a line\n"
            "    CMD: a name (UNMAP, WRITE_SAME_16, READ_CAPACITY_16...; see scuse(1)), a hex\n"
            "    opcode (42 or 0x42) or opcode/service action (9e/12)\n"
            "      KEY=VAL               the format's own open options (qcow2: l2-cache-size,\n"
            "                            compressed-cache-size)\n"
            "    a comma inside a value is written twice (,,)\n"
            "  --pidfile FILE            write the pid there once the socket listens\n"
            "  --once                    exit when the first VM disconnects\n"
            "  --control SOCKET          a control socket (QMP-style JSON; `scuse ctl`): add,\n"
            "                            remove and resize LUNs, change media (mode 0600)\n"
            "  --control-group G         and let group G (name or number) use it (mode 0660)\n"
            "  --workers N               dispatcher threads (default: chosen by the dispatcher)\n"
            "  -v, -vv                   log more (info, debug)\n"
            "  --log=stderr|syslog|journal  where the log goes (default stderr; every form)\n"
            "SIGTERM or SIGINT stops it (images flushed and closed); SIGHUP re-reads\n"
            "the images' sizes (raw images grown or shrunk) and tells the guest.\n");
}

/* The next comma-separated item of *p (",," is a literal comma), in
 * place; NULL at the end. */
static char *next_item(char **p)
{
    char *s = *p;
    if (!s)
        return NULL;
    char *w = s, *r = s;
    for (;;) {
        if (*r == ',' && r[1] == ',') {
            *w++ = ',';
            r += 2;
        } else if (*r == ',' || *r == '\0') {
            *p = *r ? r + 1 : NULL;
            *w = '\0';
            return s;
        } else {
            *w++ = *r++;
        }
    }
}

static __attribute__((format(printf, 2, 3))) int lun_fail(const struct serve_lun *l,
                                                         const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return cli_fail(EXIT_USAGE, "serve", "--lun %s: %s", l->spec, msg);
}

static int copy_text(struct serve_lun *l, const char *key, const char *val, char *dst, size_t cap)
{
    if (strlen(val) >= cap)
        return lun_fail(l, "%s is longer than %zu characters", key, cap - 1);
    memcpy(dst, val, strlen(val) + 1);
    return 0;
}

static int parse_wwn(struct serve_lun *l, const char *val)
{
    const char *h = strncmp(val, "0x", 2) == 0 || strncmp(val, "0X", 2) == 0 ? val + 2 : val;
    char *end;
    errno = 0;
    unsigned long long w = strtoull(h, &end, 16);
    if (!*h || *end || errno || strlen(h) != 16 || ((w >> 60) != 5 && (w >> 60) != 6))
        return lun_fail(l, "wwn '%s': 16 hex digits starting with 5 or 6 (NAA 5 or 6)", val);
    l->cfg.wwn = w;
    return 0;
}

/* The LUN's command policy: allow=LIST, deny=LIST or policy-file=PATH,
 * one of them (core/scsi/policy.c reads the text). */
static int parse_policy(struct serve_lun *l, const char *key, const char *val)
{
    if (l->policy_key)
        return lun_fail(l, "%s= after %s=: a LUN has one command policy", key, l->policy_key);
    struct scuse_err err = { 0 };
    int r;
    if (strcmp(key, "policy-file") == 0) {
        r = scsi_policy_load(val, &l->cfg, &err);
        l->policy_key = "policy-file";
    } else {
        char *spec = malloc(strlen(key) + strlen(val) + 2);
        if (!spec)
            return lun_fail(l, "out of memory");
        sprintf(spec, "%s=%s", key, val);
        r = scsi_policy_parse(spec, &l->cfg, &err);
        free(spec);
        l->policy_key = strcmp(key, "allow") == 0 ? "allow" : "deny";
    }
    return r < 0 ? lun_fail(l, "%s: %s", key, err.msg) : 0;
}

static int parse_option(struct serve_lun *l, char *item)
{
    char *eq = strchr(item, '=');
    char *val = eq ? eq + 1 : NULL;
    if (eq)
        *eq = '\0';
    const char *key = item;
    if (strcmp(key, "readonly") == 0) {
        if (val && strcmp(val, "on") != 0 && strcmp(val, "off") != 0)
            return lun_fail(l, "readonly takes no value (or on/off), not '%s'", val);
        l->readonly = !val || strcmp(val, "on") == 0;
        return 0;
    }
    if (!val)
        return lun_fail(l, "option '%s' needs a value", key);
    if (strcmp(key, "format") == 0) {
        if (!blk_format_has(val, BLK_FMT_KNOWN)) {
            char list[256];
            blk_format_list(BLK_FMT_OPEN, list, sizeof(list));
            return lun_fail(l, "unknown format '%s' (scuse serves: %s)", val, list);
        }
        free(l->fmt);
        l->fmt = strdup(val);
        return 0;
    }
    if (strcmp(key, "device") == 0) {
        if (strcmp(val, "disk") != 0 && strcmp(val, "cdrom") != 0)
            return lun_fail(l, "device '%s': disk or cdrom", val);
        l->cfg.device = strcmp(val, "cdrom") == 0 ? SCSI_DEVICE_CDROM : SCSI_DEVICE_DISK;
        return 0;
    }
    if (strcmp(key, "serial") == 0)
        return copy_text(l, key, val, l->cfg.serial, sizeof(l->cfg.serial));
    if (strcmp(key, "vendor") == 0)
        return copy_text(l, key, val, l->cfg.vendor, sizeof(l->cfg.vendor));
    if (strcmp(key, "product") == 0)
        return copy_text(l, key, val, l->cfg.product, sizeof(l->cfg.product));
    if (strcmp(key, "wwn") == 0)
        return parse_wwn(l, val);
    if (strcmp(key, "block-size") == 0) {
        if (strcmp(val, "512") != 0 && strcmp(val, "4096") != 0)
            return lun_fail(l, "block-size '%s': 512 or 4096", val);
        l->cfg.block_size = (uint32_t)atoi(val);
        return 0;
    }
    if (strcmp(key, "physical-block-size") == 0) {
        char *end;
        unsigned long v = strtoul(val, &end, 10);
        if (!*val || *end || !scsi_phys_size_ok(v))
            return lun_fail(l, "physical-block-size '%s': a power of two, 512 to 1048576", val);
        l->phys_size = (uint32_t)v;
        return 0;
    }
    if (strcmp(key, "discard") == 0) {
        if (strcmp(val, "unmap") != 0 && strcmp(val, "ignore") != 0)
            return lun_fail(l, "discard '%s': unmap or ignore", val);
        l->cfg.discard = strcmp(val, "unmap") == 0;
        return 0;
    }
    if (strcmp(key, "cache") == 0) {
        if (strcmp(val, "writeback") != 0 && strcmp(val, "writethrough") != 0)
            return lun_fail(l, "cache '%s': writeback or writethrough", val);
        l->cfg.write_cache = strcmp(val, "writeback") == 0;
        return 0;
    }
    if (strcmp(key, "allow") == 0 || strcmp(key, "deny") == 0 || strcmp(key, "policy-file") == 0)
        return parse_policy(l, key, val);
    /* Anything else is the format's own open option, checked by the
     * format when the image is opened (an unknown key is refused there). */
    if (l->opts.fmt.n == BLK_MAX_KV)
        return lun_fail(l, "too many options");
    l->opts.fmt.kv[l->opts.fmt.n].key = key;
    l->opts.fmt.kv[l->opts.fmt.n].val = val;
    l->opts.fmt.n++;
    return 0;
}

static int parse_lun(struct serve *s, const char *arg)
{
    if (s->nluns == SERVE_MAX_LUNS)
        return cli_fail(EXIT_USAGE, "serve", "more than %d --lun options", SERVE_MAX_LUNS);
    struct serve_lun *l = &s->luns[s->nluns++];
    l->spec = strdup(arg);
    char *copy = strdup(arg);
    if (!l->spec || !copy) {
        free(copy);
        return cli_fail(EXIT_USAGE, "serve", "out of memory");
    }
    scsi_lun_config_default(&l->cfg);
    int rc = 0;
    char *p = copy;
    char *first = next_item(&p);
    char *eq = strchr(first, '=');
    char *end;
    unsigned long id = eq ? strtoul(first, &end, 10) : 0;
    if (!eq || eq == first || end != eq || id > 16383) {
        rc = lun_fail(l, "expected N=IMAGE with N from 0 to 16383");
        goto out;
    }
    l->id = (uint16_t)id;
    l->file = eq[1] ? strdup(eq + 1) : NULL;    /* none: an empty cdrom drive */
    for (unsigned i = 0; i + 1 < s->nluns; i++)
        if (s->luns[i].id == l->id) {
            rc = lun_fail(l, "LUN %u is given twice", l->id);
            goto out;
        }
    for (char *item; !rc && (item = next_item(&p));)
        rc = item[0] ? parse_option(l, item) : lun_fail(l, "an empty option");
    if (!rc && !l->file && l->cfg.device != SCSI_DEVICE_CDROM)
        rc = lun_fail(l, "no image file (only a cdrom drive may be empty)");
    if (!rc && l->phys_size) {
        /* Known once every option is read: block-size may come after it. */
        struct scuse_err e = { 0 };
        if (scsi_phys_exp(l->cfg.block_size, l->phys_size, &l->cfg.phys_exp, &e) < 0)
            rc = lun_fail(l, "physical-block-size: %s", e.msg);
    }
out:
    l->items = copy; /* format options point into it */
    return rc;
}

static int parse_args(struct serve *s, int argc, char **argv)
{
    static const struct option longopts[] = {
        { "vhost-user-scsi", required_argument, NULL, 's' },
        { "lun", required_argument, NULL, 'l' },
        { "pidfile", required_argument, NULL, 'p' },
        { "once", no_argument, NULL, 'o' },
        { "workers", required_argument, NULL, 'w' },
        { "control", required_argument, NULL, 'c' },
        { "control-group", required_argument, NULL, 'g' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c, rc;
    uint64_t v;
    optind = 1;
    opterr = 0;                     /* one line of our own instead of getopt's and the usage */
    while ((c = getopt_long(argc, argv, ":vh", longopts, NULL)) != -1) {
        switch (c) {
        case 's': s->socket = optarg; break;
        case 'l':
            if ((rc = parse_lun(s, optarg)) != 0)
                return rc;
            break;
        case 'p': s->pidfile = optarg; break;
        case 'o': s->once = true; break;
        case 'w':
            if (cli_parse_size(optarg, &v) < 0 || v == 0 || v > DISP_MAX_WORKERS)
                return cli_fail(EXIT_USAGE, "serve", "bad --workers '%s' (1..%d)", optarg,
                                DISP_MAX_WORKERS);
            s->workers = (unsigned)v;
            break;
        case 'c': s->control = optarg; break;
        case 'g':
            if (cli_parse_group(optarg, &s->control_gid) < 0)
                return cli_fail(EXIT_USAGE, "serve", "--control-group '%s': no such group",
                                optarg);
            s->control_have_gid = true;
            break;
        case 'v': s->verbose++; break;
        case 'h': serve_usage(stdout); return -1;
        case ':':
            return cli_fail(EXIT_USAGE, "serve", "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_fail(EXIT_USAGE, "serve", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "serve", "unexpected argument '%s'", argv[optind]);
    if (!s->socket)
        return cli_fail(EXIT_USAGE, "serve", "--vhost-user-scsi SOCKET is required");
    if (!s->nluns && !s->control)
        return cli_fail(EXIT_USAGE, "serve", "at least one --lun (or --control) is required");
    if (s->control_have_gid && !s->control)
        return cli_fail(EXIT_USAGE, "serve", "--control-group without --control");
    return 0;
}

static int open_luns(struct serve *s)
{
    struct scuse_err err = { 0 };
    if (scsi_target_create(&s->target, &err) < 0)
        return start_fail("%s", err.msg);
    for (unsigned i = 0; i < s->nluns; i++) {
        struct serve_lun *l = &s->luns[i];
        l->readonly |= l->cfg.device == SCSI_DEVICE_CDROM;      /* a CD-ROM is read-only */
        l->cfg.read_only = l->readonly;
        err_clear(&err);
        if (l->file && blk_open(l->file, l->fmt, (l->readonly ? 0 : BLK_OPEN_RW) | l->open_flags,
                                &l->opts, &l->bs, &err) < 0)
            return start_fail("--lun %s: %s", l->spec,
                            err.msg[0] ? err.msg : "cannot open the image");
        if (scsi_lun_create(&l->cfg, l->bs, l->id, &l->lun, &err) < 0 ||
            scsi_target_add_lun(s->target, l->lun, &err) < 0)
            return start_fail("--lun %s: %s", l->spec, err.msg);
        char policy[SCSI_POLICY_TEXT_MAX + 16];
        scsi_policy_format(&l->cfg, ':', policy, sizeof(policy));
        if (!l->bs) {
            log_info("LUN %u: an empty cdrom drive", l->id);
            continue;
        }
        log_info("LUN %u: '%s' (%s%s, %llu bytes%s%s%s)", l->id, l->file,
                 l->cfg.device == SCSI_DEVICE_CDROM ? "cdrom, " : "", blk_format_name(l->bs),
                 (unsigned long long)l->bs->size, l->readonly ? ", read-only" : "",
                 policy[0] ? ", commands " : "", policy);
    }
    return 0;
}

/* SIGHUP: the images' sizes again; a change raises the capacity unit
 * attention and, with a VM connected, a PARAM_CHANGE event. */
static void rescan(struct serve *s)
{
    struct vscsi *v = vhost_server_dev_state(s->server);
    for (unsigned i = 0; i < s->nluns; i++) {
        struct serve_lun *l = &s->luns[i];
        struct scuse_err err = { 0 };
        bool changed;
        if (!l->bs || scsi_lun_device(l->lun) == SCSI_DEVICE_CDROM)
            continue;               /* a disc does not change size: it is changed */
        int r = blk_refresh_size(l->bs, &changed, &err);
        if (r == -ENOTSUP) {
            if (!l->resize_unsupported)
                log_info("LUN %u: %s", l->id, err.msg);
            l->resize_unsupported = true;
            continue;
        }
        if (r < 0) {
            log_error("LUN %u: %s", l->id, err.msg);
            continue;
        }
        if (scsi_lun_refresh_capacity(l->lun) && v)
            vscsi_capacity_changed(v, l->id);
    }
}

static void on_signal(void *arg)
{
    struct serve *s = arg;
    const char *name;
    enum daemon_sig sig;
    while ((sig = daemon_sig_next(s->sigfd, &name)) != DAEMON_SIG_NONE) {
        if (sig == DAEMON_SIG_HUP) {
            log_info("%s: re-reading image sizes", name);
            rescan(s);
        } else {
            log_info("%s: stopping", name);
            vhost_server_stop(s->server);
        }
    }
}

static void *on_connect(void *opaque, struct vhost_dev *dev)
{
    struct serve *s = opaque;
    return vscsi_new(&s->shared, dev);
}

/* The VM left (its requests are drained): what it wrote is made durable
 * now, whatever it flushed itself. */
static void on_disconnect(void *opaque, void *dev_state)
{
    struct serve *s = opaque;
    vscsi_free(dev_state);
    for (unsigned i = 0; i < s->nluns; i++) {
        struct serve_lun *l = &s->luns[i];
        struct scuse_err err = { 0 };
        /* A cdrom is never written (and its node may have been changed). */
        bool cd = l->cfg.device == SCSI_DEVICE_CDROM;
        int r = cd || l->bs->read_only ? 0 : blk_flush(l->bs, &err);
        if (r < 0)
            log_error("LUN %u: flush failed: %s", l->id, cli_reason(&err, r));
    }
}

static int write_pidfile(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    int r = write(fd, buf, (size_t)n) == n ? 0 : -EIO;
    close(fd);
    return r;
}

static int start(struct serve *s)
{
    int rc = open_luns(s);
    if (rc)
        return rc;
    /* Signals go to the signalfd: blocked in every thread, so block them
     * before the dispatcher starts its workers. */
    s->sigfd = daemon_sig_open();
    if (s->sigfd < 0)
        return start_fail("signalfd: %s", strerror(-s->sigfd));

    struct scuse_err err = { 0 };
    struct scsi_disp_config dc = { .workers = s->workers };
    if (scsi_disp_create(&dc, &s->disp, &err) < 0)
        return start_fail("%s", err.msg);
    for (unsigned i = 0; i < s->nluns; i++)
        if (scsi_disp_attach(s->disp, s->luns[i].lun, &err) < 0)
            return start_fail("%s", err.msg);
    s->shared.target = s->target;
    s->shared.disp = s->disp;

    static const struct vhost_server_hooks base = {
        .ops = &vscsi_dev_ops,
        .connected = on_connect,
        .disconnected = on_disconnect,
    };
    struct vhost_server_hooks hooks = base;
    hooks.opaque = s;
    if (vhost_server_create(s->socket, &hooks, s->once, &s->server, &err) < 0)
        return start_fail("--vhost-user-scsi %s", err.msg);
    if (vhost_server_watch(s->server, s->sigfd, on_signal, s) < 0)
        return start_fail("cannot watch signals");
    if (s->control && serve_ctl_start(s, &err) < 0)
        return start_fail("--control %s", err.msg);
    int r = s->pidfile ? write_pidfile(s->pidfile) : 0;
    if (r < 0)
        return start_fail("--pidfile '%s': %s", s->pidfile, strerror(-r));
    log_info("serving %u LUN%s on %s with %u dispatcher threads", s->nluns,
             s->nluns == 1 ? "" : "s", s->socket, scsi_disp_workers(s->disp));
    return 0;
}

/* Everything in reverse; every image flushed before it is closed. */
static int stop(struct serve *s, bool started)
{
    int rc = 0;
    vhost_server_destroy(s->server);    /* the VM's requests drain first */
    scsi_disp_destroy(s->disp);
    ctl_server_destroy(s->ctl);         /* no LUN event can come now; quit's answer goes */
    for (unsigned i = 0; i < s->nluns; i++) {
        struct serve_lun *l = &s->luns[i];
        if (started && l->bs && l->cfg.device != SCSI_DEVICE_CDROM && !l->bs->read_only) {
            struct scuse_err err = { 0 };
            int r = blk_flush(l->bs, &err);
            if (r < 0) {
                fprintf(stderr, "scuse serve: LUN %u: flush failed: %s\n", l->id,
                        cli_reason(&err, r));
                rc = EXIT_IMAGE;
            }
        }
    }
    scsi_target_destroy(s->target);
    for (unsigned i = 0; i < s->nluns; i++) {
        struct serve_lun *l = &s->luns[i];
        /* A cdrom's medium may have changed while served: the node in the
         * drive is closed (one ejected belongs to whoever ejected it). */
        if (l->lun && l->cfg.device == SCSI_DEVICE_CDROM)
            l->bs = scsi_lun_medium(l->lun);
        scsi_lun_destroy(l->lun);
        blk_close(l->bs);
        free(l->spec);
        free(l->file);
        free(l->fmt);
        free(l->items);
    }
    if (s->sigfd >= 0)
        close(s->sigfd);
    if (started && s->pidfile)
        unlink(s->pidfile);
    return rc;
}

/* `scuse serve --tcmu [--configfs DIR] [--sysfs DIR] [--workers N] [-v]`:
 * the kernel path, the same daemon as `scuse tcmu serve`. */
static int serve_tcmu(int argc, char **argv, int at)
{
    char **rest = calloc((size_t)argc, sizeof(*rest));
    if (!rest)
        return cli_fail(EXIT_USAGE, "serve", "out of memory");
    int n = 0;
    for (int i = 0; i < argc; i++)
        if (i != at)
            rest[n++] = argv[i];
    int rc = cmd_tcmu_serve(n, rest);
    free(rest);
    return rc;
}

/* One vhost-user-scsi daemon over LUNs described by the caller (serve
 * --domain, cmd_serve_domain.c) instead of --lun options; ready_fd gets a
 * byte once the socket listens. */
int serve_luns(const struct serve_daemon_opts *o, const struct serve_lun_spec *specs,
               unsigned n)
{
    struct serve *s = calloc(1, sizeof(*s));
    if (!s)
        return cli_fail(EXIT_USAGE, "serve", "out of memory");
    s->sigfd = -1;
    s->socket = o->socket;
    s->pidfile = o->pidfile;
    s->once = o->once;
    s->workers = o->workers;
    int rc = 0;
    for (unsigned i = 0; i < n && !rc; i++) {
        struct serve_lun *l = &s->luns[s->nluns++];
        l->id = specs[i].id;
        l->spec = strdup(specs[i].what);
        l->file = specs[i].file ? strdup(specs[i].file) : NULL;   /* NULL: empty drive */
        l->fmt = specs[i].fmt ? strdup(specs[i].fmt) : NULL;
        l->opts = specs[i].opts;
        l->cfg = specs[i].cfg;
        l->readonly = !(specs[i].flags & BLK_OPEN_RW);
        l->open_flags = specs[i].flags & ~BLK_OPEN_RW;
        if (!l->spec || (specs[i].file && !l->file) || (specs[i].fmt && !l->fmt))
            rc = cli_fail(EXIT_USAGE, "serve", "out of memory");
    }
    if (n > SERVE_MAX_LUNS)
        rc = cli_fail(EXIT_USAGE, "serve", "more than %d LUNs on one socket", SERVE_MAX_LUNS);
    if (rc == 0 && !(rc = start(s))) {
        if (o->ready_fd >= 0) {
            ssize_t w = write(o->ready_fd, "1", 1);
            (void)w;
            close(o->ready_fd);
        }
        rc = vhost_server_run(s->server) < 0 ? EXIT_IMAGE : EXIT_OK;
        int r = stop(s, true);
        rc = rc ? rc : r;
    } else {
        stop(s, false);
    }
    free(s);
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    if (cli_log_option(&argc, argv, "serve") != EXIT_OK)
        return EXIT_USAGE;
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "--tcmu"))
            return serve_tcmu(argc, argv, i);
        if (!strcmp(argv[i], "--domain") || !strncmp(argv[i], "--domain=", 9))
            return cmd_serve_domain(argc, argv);
    }
    struct serve *s = calloc(1, sizeof(*s));
    if (!s)
        return cli_fail(EXIT_USAGE, "serve", "out of memory");
    s->sigfd = -1;
    int rc = parse_args(s, argc, argv);
    if (rc == 0) {
        /* A daemon logs: warnings by default, -v info, -vv debug (SCUSE_LOG
         * wins when set). */
        if (!getenv("SCUSE_LOG"))
            log_set_level(s->verbose >= 2 ? LOG_LVL_DEBUG
                          : s->verbose == 1 ? LOG_LVL_INFO : LOG_LVL_WARN);
        rc = start(s);
        if (rc == 0) {
            rc = vhost_server_run(s->server) < 0 ? EXIT_IMAGE : EXIT_OK;
            int r = stop(s, true);
            rc = rc ? rc : r;
        } else {
            stop(s, false);
        }
    } else {
        stop(s, false);
    }
    free(s);
    return rc < 0 ? EXIT_OK : rc;
}
