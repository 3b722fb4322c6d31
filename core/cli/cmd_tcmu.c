/* scuse tcmu create|delete|list|serve: images as LIO TCMU backstores,
 * exported through vhost-scsi or tcm_loop, served by the TCMU daemon. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blk/format.h"
#include "cli/cli.h"
#include "cli/tcmu_domain.h"
#include "scsi/scsi.h"
#include "tcmu/config.h"
#include "tcmu/configfs.h"
#include "tcmu/daemon.h"
#include "util/daemon_sig.h"
#include "util/log.h"

#define DEFAULT_CONFIGFS "/sys/kernel/config"
#define DEFAULT_DATA_AREA_MB 1024u
#define MAX_XFER_BYTES (32u << 20)  /* what the SCSI core's LUNs take in one command */

static void tcmu_usage(FILE *f)
{
    fprintf(f,
        "usage: scuse tcmu create NAME IMG [-f FMT] [--fabric vhost|loopback|iscsi|none]\n"
        "                         [--wwpn naa.X] [--block-size 512|4096] [--max-sectors N]\n"
        "                         [--physical-block-size N]\n"
        "                         [--data-area-mb N] [--serial S] [--configfs DIR]\n"
        "                         [--iqn IQN] [--portal IP:PORT] [--initiator IQN | --demo-mode]\n"
        "                         [--policy allow=CMD:...|deny=CMD:... | --policy-file FILE]\n"
        "                         [--device disk|cdrom]\n"
        "       scuse tcmu delete NAME [--configfs DIR]\n"
        "       scuse tcmu list [--configfs DIR]\n"
        "       scuse tcmu up|down DOMAIN.xml [--configfs DIR] [--state-dir DIR]\n"
        "       scuse tcmu serve [--configfs DIR] [--sysfs DIR] [--workers N] [-v]\n"
        "                        [--log=stderr|syslog|journal]\n"
        "                        [--control SOCKET [--control-group G]]\n"
        "\n"
        "create     make a TCMU backstore for IMG (dev_config scuse/FMT@PATH) and export it:\n"
        "           vhost (default; prints the QEMU and libvirt lines) or loopback (a local\n"
        "           SCSI disk) or iscsi (LIO's iSCSI target: a portal, TPG 1, LUN 0); running\n"
        "           it again finishes or confirms what is there\n"
        "delete     remove the exports and the backstore, in reverse order\n"
        "list       show scuse's backstores and their exports\n"
        "up, down   a libvirt domain's vhost-scsi targets, a LUN per disk (scuse tcmu up --help)\n"
        "serve      serve every TCMU device whose dev_config names scuse, until SIGINT/SIGTERM\n"
        "           (images flushed, exit 0); SIGHUP looks for devices again\n"
        "\n"
        "  -f, --format FMT     image format (default: probed once, then recorded)\n"
        "  --wwpn naa.X         vhost/loopback target port, 16 hex digits (default: derived\n"
        "                       from NAME)\n"
        "  --iqn IQN            iscsi: the target name (default iqn.2026-12.org.scuse:NAME)\n"
        "  --portal IP:PORT     iscsi: where the target listens (default 0.0.0.0:3260; IPv6 as\n"
        "                       [ADDR]:PORT)\n"
        "  --initiator IQN      iscsi: an initiator let in (an ACL mapping LUN 0); repeatable\n"
        "  --demo-mode          iscsi: any initiator may log in (no ACL; no CHAP either way)\n"
        "  --block-size N       logical block size (default 512)\n"
        "  --physical-block-size N  physical block size, a power of two times the logical\n"
        "                       one (kept in dev_config; READ CAPACITY(16) reports it)\n"
        "  --max-sectors N      hw_max_sectors, blocks per command (default: 32 MiB of blocks)\n"
        "  --data-area-mb N     the ring's data area (default %u; must hold max-sectors)\n"
        "  --serial S           unit serial (default: the one scuse derives from the image)\n"
        "  --policy P           command policy: deny=CMD:... refuses those commands, allow=CMD:...\n"
        "                       serves only those; CMD a name (UNMAP, WRITE_SAME_16; see scuse(1)),\n"
        "                       a hex opcode or opcode/service action (9e/12); kept in dev_config\n"
        "  --policy-file FILE   the same from a file: allow or deny, then one command a line\n"
        "  --device cdrom       a CD/DVD-ROM drive (MMC) over an ISO or CUE sheet, read-only,\n"
        "                       2048-byte blocks (hw_block_size 2048 tells the daemon)\n"
        "  --configfs DIR       configfs root (default " DEFAULT_CONFIGFS ")\n"
        "  --sysfs DIR          sysfs root (default /sys)\n"
        "  --workers N          SCSI dispatcher threads (default: chosen from the CPUs)\n"
        "  --control SOCKET     serve: a control socket (QMP-style JSON, `scuse ctl`; mode 0600)\n"
        "  --control-group G    serve: and let group G use it (mode 0660)\n"
        "  -v                   log every device change and command error (twice: debug)\n",
        DEFAULT_DATA_AREA_MB);
}

/* A failure that is not a usage error: one line, no help hint. */
static int fail(int code, const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(int code, const char *sub, const char *fmt, ...)
{
    char msg[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "scuse tcmu %s: %s\n", sub, msg);
    return code;
}

enum { O_FABRIC = 256, O_WWPN, O_BS, O_MAXSEC, O_DATA, O_SERIAL, O_CONFIGFS, O_SYSFS, O_WORKERS,
       O_POLICY, O_POLICY_FILE,
       O_DEVICE, O_IQN, O_PORTAL, O_INITIATOR, O_DEMO, O_PBS };
enum { O_CONTROL = 400, O_CONTROL_GROUP };     /* serve --control (cmd_tcmu_ctl.c) */

static const struct option longopts[] = {
    { "format", required_argument, NULL, 'f' },
    { "fabric", required_argument, NULL, O_FABRIC },
    { "wwpn", required_argument, NULL, O_WWPN },
    { "block-size", required_argument, NULL, O_BS },
    { "max-sectors", required_argument, NULL, O_MAXSEC },
    { "data-area-mb", required_argument, NULL, O_DATA },
    { "serial", required_argument, NULL, O_SERIAL },
    { "configfs", required_argument, NULL, O_CONFIGFS },
    { "sysfs", required_argument, NULL, O_SYSFS },
    { "workers", required_argument, NULL, O_WORKERS },
    { "policy", required_argument, NULL, O_POLICY },
    { "policy-file", required_argument, NULL, O_POLICY_FILE },
    { "device", required_argument, NULL, O_DEVICE },
    { "control", required_argument, NULL, O_CONTROL },
    { "control-group", required_argument, NULL, O_CONTROL_GROUP },
    { "iqn", required_argument, NULL, O_IQN },
    { "portal", required_argument, NULL, O_PORTAL },
    { "initiator", required_argument, NULL, O_INITIATOR },
    { "demo-mode", no_argument, NULL, O_DEMO },
    { "physical-block-size", required_argument, NULL, O_PBS },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

struct opts {
    const char *fmt, *wwpn, *serial, *configfs, *sysfs;
    const char *iqn, *portal;               /* --fabric iscsi */
    const char *initiators[TCMU_ACL_MAX];
    unsigned n_initiators;
    bool demo_mode;
    const char *policy_opt;         /* --policy or --policy-file, once given */
    struct scsi_lun_config policy;  /* its commands */
    enum tcmu_fabric fabric;
    uint64_t block_size, max_sectors, data_area_mb, workers, phys_size;
    bool have_max_sectors;
    int verbose;
    bool cdrom;                     /* --device cdrom */
    const char *control;            /* serve --control SOCKET */
    gid_t control_gid;
    bool control_have_gid;
};

static int number(const char *sub, const char *opt, const char *arg, uint64_t min, uint64_t max,
                  uint64_t *out)
{
    if (cli_parse_size(arg, out) < 0 || *out < min || *out > max)
        return cli_fail(EXIT_USAGE, "tcmu", "%s: %s '%s': expected %" PRIu64 "..%" PRIu64, sub,
                        opt, arg, min, max);
    return 0;
}

/* --policy TEXT or --policy-file PATH, one of them, once; a bad one is a
 * usage error naming the option and the token. */
static int policy_opt(const char *sub, const char *opt, const char *arg, struct opts *o)
{
    if (strcmp(sub, "create") != 0)
        return cli_fail(EXIT_USAGE, "tcmu", "%s: %s is an option of create (the policy is kept "
                        "in the backstore's dev_config)", sub, opt);
    if (o->policy_opt)
        return cli_fail(EXIT_USAGE, "tcmu", "%s: %s after %s: a LUN has one command policy", sub,
                        opt, o->policy_opt);
    struct scuse_err err = { 0 };
    int r = strcmp(opt, "--policy") == 0 ? scsi_policy_parse(arg, &o->policy, &err)
                                         : scsi_policy_load(arg, &o->policy, &err);
    if (r < 0)
        return cli_fail(EXIT_USAGE, "tcmu", "%s: %s: %s", sub, opt, err.msg);
    o->policy_opt = opt;
    return 0;
}

/* Parse options (any order with the positional arguments); returns
 * CLI_OPT_NEXT to go on, or an exit code. */
static int parse(int argc, char **argv, const char *sub, struct opts *o)
{
    *o = (struct opts){ .configfs = DEFAULT_CONFIGFS, .fabric = TCMU_FABRIC_VHOST,
                        .block_size = 512, .data_area_mb = DEFAULT_DATA_AREA_MB };
    scsi_lun_config_default(&o->policy);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o->fmt = optarg; break;
        case 'v': o->verbose++; break;
        case O_FABRIC:
            if (!strcmp(optarg, "vhost"))
                o->fabric = TCMU_FABRIC_VHOST;
            else if (!strcmp(optarg, "loopback"))
                o->fabric = TCMU_FABRIC_LOOPBACK;
            else if (!strcmp(optarg, "iscsi"))
                o->fabric = TCMU_FABRIC_ISCSI;
            else if (!strcmp(optarg, "none"))
                o->fabric = TCMU_FABRIC_NONE;
            else
                return cli_fail(EXIT_USAGE, "tcmu", "%s: --fabric '%s': expected vhost, loopback, "
                                "iscsi or none", sub, optarg);
            break;
        case O_IQN:
        case O_INITIATOR:
            if (!tcmu_iscsi_name_valid(optarg))
                return cli_fail(EXIT_USAGE, "tcmu", "%s: %s '%s': expected an iSCSI name "
                                "(iqn.YYYY-MM.reversed.domain[:id], eui.<16 hex>, naa.<hex>), "
                                "lower case, at most 223 bytes", sub,
                                c == O_IQN ? "--iqn" : "--initiator", optarg);
            if (c == O_IQN) {
                o->iqn = optarg;
            } else if (o->n_initiators == TCMU_ACL_MAX) {
                return cli_fail(EXIT_USAGE, "tcmu", "%s: --initiator: at most %u", sub,
                                TCMU_ACL_MAX);
            } else {
                o->initiators[o->n_initiators++] = optarg;
            }
            break;
        case O_PORTAL:
            if (!tcmu_iscsi_portal_valid(optarg))
                return cli_fail(EXIT_USAGE, "tcmu", "%s: --portal '%s': expected IPv4:PORT or "
                                "[IPv6]:PORT", sub, optarg);
            o->portal = optarg;
            break;
        case O_DEMO: o->demo_mode = true; break;
        case O_PBS:
            if (cli_parse_size(optarg, &o->phys_size) < 0 || !scsi_phys_size_ok(o->phys_size))
                return cli_fail(EXIT_USAGE, "tcmu", "%s: --physical-block-size '%s': a power of "
                                "two, 512 to 1M", sub, optarg);
            break;
        case O_WWPN:
            if (!tcmu_wwn_valid(optarg))
                return cli_fail(EXIT_USAGE, "tcmu", "%s: --wwpn '%s': expected naa. and 16 hex "
                                "digits (NAA 5, 6 or 3)", sub, optarg);
            o->wwpn = optarg;
            break;
        case O_BS:
            if (cli_parse_size(optarg, &o->block_size) < 0 ||
                (o->block_size != 512 && o->block_size != 4096))
                return cli_fail(EXIT_USAGE, "tcmu", "%s: --block-size '%s': expected 512 or 4096",
                                sub, optarg);
            break;
        case O_MAXSEC:
            if (number(sub, "--max-sectors", optarg, 1, 1u << 20, &o->max_sectors))
                return EXIT_USAGE;
            o->have_max_sectors = true;
            break;
        case O_DATA:
            if (number(sub, "--data-area-mb", optarg, 1, 1u << 20, &o->data_area_mb))
                return EXIT_USAGE;
            break;
        case O_SERIAL: o->serial = optarg; break;
        case O_POLICY:
        case O_POLICY_FILE:
            if (policy_opt(sub, c == O_POLICY ? "--policy" : "--policy-file", optarg, o))
                return EXIT_USAGE;
            break;
        case O_DEVICE:
            if (strcmp(optarg, "disk") != 0 && strcmp(optarg, "cdrom") != 0)
                return cli_fail(EXIT_USAGE, "tcmu", "%s: --device '%s': expected disk or cdrom",
                                sub, optarg);
            o->cdrom = strcmp(optarg, "cdrom") == 0;
            break;
        case O_CONFIGFS: o->configfs = optarg; break;
        case O_SYSFS: o->sysfs = optarg; break;
        case O_CONTROL:
        case O_CONTROL_GROUP:
            if (strcmp(sub, "serve") != 0)
                return cli_fail(EXIT_USAGE, "tcmu", "%s: --control is an option of serve", sub);
            if (c == O_CONTROL)
                o->control = optarg;
            else if (cli_parse_group(optarg, &o->control_gid) < 0)
                return cli_fail(EXIT_USAGE, "tcmu", "serve: --control-group '%s': no such "
                                "group", optarg);
            o->control_have_gid |= c == O_CONTROL_GROUP;
            break;
        case O_WORKERS:
            if (number(sub, "--workers", optarg, 1, 64, &o->workers))
                return EXIT_USAGE;
            break;
        case 'h': tcmu_usage(stdout); return EXIT_OK;
        default: tcmu_usage(stderr); return EXIT_USAGE;
        }
    }
    return CLI_OPT_NEXT;
}

/* The unit serial the SCSI core gives this image (INQUIRY page 80h), so
 * configfs and the daemon's LUN agree. */
static void derived_serial(struct blk_node *bs, uint32_t block_size, char *out, size_t len)
{
    struct scsi_lun_config cfg;
    scsi_lun_config_default(&cfg);
    cfg.block_size = block_size;
    if (block_size == TCMU_CDROM_BLOCK_SIZE)
        cfg.device = SCSI_DEVICE_CDROM;
    tcmu_lun_serial(bs, &cfg, out, len);
}

/* Whether scuse's backstore name already serves the image at path. */
static bool exists_for(const char *configfs, const char *name, const char *path)
{
    char cur[TCMU_CONFIG_MAX];
    struct tcmu_image_cfg ic;
    return tcmu_cfs_dev_read(configfs, TCMU_SCUSE_HBA, name, "attrib/dev_config", cur,
                             sizeof(cur)) > 0 &&
           tcmu_config_parse(cur, &ic, NULL) > 0 && strcmp(ic.path, path) == 0;
}

static int do_create(int argc, char **argv)
{
    struct opts o;
    int r = parse(argc, argv, "create", &o);
    if (r != CLI_OPT_NEXT)
        return r;
    if (optind != argc - 2)
        return cli_fail(EXIT_USAGE, "tcmu", "create: expected NAME and IMG");
    const char *name = argv[optind], *img = argv[optind + 1];
    if (o.cdrom)
        o.block_size = TCMU_CDROM_BLOCK_SIZE;   /* what tells the daemon it is a cdrom */
    if (!tcmu_name_valid(name))
        return cli_fail(EXIT_USAGE, "tcmu", "create: NAME '%s': letters, digits, '_', '-' and "
                        "'.', at most 64, not starting with '.'", name);
    uint64_t max_sectors = o.have_max_sectors ? o.max_sectors : MAX_XFER_BYTES / o.block_size;
    uint64_t need_mb = (max_sectors * o.block_size + (1u << 20) - 1) >> 20;
    if (need_mb > o.data_area_mb)
        return cli_fail(EXIT_USAGE, "tcmu", "create: --max-sectors %" PRIu64 " of %" PRIu64
                        " bytes needs --data-area-mb %" PRIu64 " or more (have %" PRIu64 ")",
                        max_sectors, o.block_size, need_mb, o.data_area_mb);
    if (o.fabric == TCMU_FABRIC_ISCSI && !o.demo_mode == !o.n_initiators)
        return cli_fail(EXIT_USAGE, "tcmu", "create: --fabric iscsi needs --initiator IQN (who "
                        "may log in; repeatable) or --demo-mode (anyone), not both");
    if (o.fabric != TCMU_FABRIC_ISCSI && (o.iqn || o.portal || o.n_initiators || o.demo_mode))
        return cli_fail(EXIT_USAGE, "tcmu", "create: --iqn, --portal, --initiator and "
                        "--demo-mode are options of --fabric iscsi");
    if (o.fabric == TCMU_FABRIC_ISCSI && o.wwpn)
        return cli_fail(EXIT_USAGE, "tcmu", "create: --fabric iscsi names its target with --iqn, "
                        "not --wwpn");
    if (o.serial && (strlen(o.serial) == 0 || strlen(o.serial) > 63 || strchr(o.serial, ',') ||
                     strchr(o.serial, '\n')))
        return cli_fail(EXIT_USAGE, "tcmu", "create: --serial: 1 to 63 characters, no comma");

    char abs[PATH_MAX];
    if (!realpath(img, abs))
        return fail(EXIT_IMAGE, "create", "'%s': %s", img, strerror(errno));
    struct tcmu_backstore b;
    memset(&b, 0, sizeof(b));
    snprintf(b.name, sizeof(b.name), "%s", name);
    /* Opened as the daemon will open it, so what fails there fails here;
     * unless the backstore exists for this image already (create run
     * again): the daemon then holds the image's write lock, and the image
     * is only looked at. */
    struct blk_node *bs;
    unsigned flags = exists_for(o.configfs, name, abs) ? BLK_OPEN_SHARE : BLK_OPEN_RW;
    if (o.cdrom && flags == BLK_OPEN_RW)
        flags = 0;                  /* a disc is read, never written */
    if (cli_open("tcmu create", abs, o.fmt, flags, NULL, &bs) < 0)
        return EXIT_IMAGE;
    struct scuse_err err = { 0 };
    if (bs->size < o.block_size) {
        blk_close(bs);
        return fail(EXIT_IMAGE, "create", "'%s': %" PRIu64 " bytes is less than one block", abs,
                    bs->size);
    }
    uint8_t exp;
    if (scsi_phys_exp((uint32_t)o.block_size, o.phys_size, &exp, &err) < 0) {
        blk_close(bs);
        return cli_fail(EXIT_USAGE, "tcmu", "create: --physical-block-size: %s", err.msg);
    }
    r = tcmu_config_format_lun(blk_format_name(bs), &o.policy, (uint32_t)o.phys_size, abs,
                               b.config, sizeof(b.config), &err);
    b.size = bs->size;
    if (o.serial)
        snprintf(b.serial, sizeof(b.serial), "%s", o.serial);
    else
        derived_serial(bs, (uint32_t)o.block_size, b.serial, sizeof(b.serial));
    char fmt[TCMU_FMT_MAX];
    snprintf(fmt, sizeof(fmt), "%s", blk_format_name(bs));
    blk_close(bs);
    if (r < 0)
        return fail(EXIT_IMAGE, "create", "%s", err.msg);
    b.block_size = (uint32_t)o.block_size;
    b.max_sectors = (uint32_t)max_sectors;
    b.data_area_mb = (uint32_t)o.data_area_mb;
    b.fabric = o.fabric;
    if (o.wwpn)
        snprintf(b.wwpn, sizeof(b.wwpn), "%s", o.wwpn);
    else
        tcmu_wwn_derive(name, 0, b.wwpn, sizeof(b.wwpn));
    tcmu_wwn_derive(b.wwpn, 1, b.initiator, sizeof(b.initiator));
    if (b.fabric == TCMU_FABRIC_ISCSI) {
        /* Backstore names allow upper case and '_', IQNs do not. */
        char lower[65];                 /* tcmu_name_valid: at most 64 */
        size_t i = 0;
        for (; name[i] && i + 1 < sizeof(lower); i++)
            lower[i] = name[i] == '_' ? '-' : (char)tolower((unsigned char)name[i]);
        lower[i] = '\0';
        if (o.iqn)
            snprintf(b.wwpn, sizeof(b.wwpn), "%s", o.iqn);
        else
            snprintf(b.wwpn, sizeof(b.wwpn), "iqn.2026-12.org.scuse:%s", lower);
        for (unsigned i = 0; i < o.n_initiators; i++)
            snprintf(b.acls[i], sizeof(b.acls[i]), "%s", o.initiators[i]);
        b.n_acls = o.n_initiators;
        snprintf(b.portal, sizeof(b.portal), "%s", o.portal ? o.portal : "0.0.0.0:3260");
        b.demo_mode = o.demo_mode;
    }
    if (tcmu_cfs_create(o.configfs, &b, &err) < 0)
        return fail(EXIT_USAGE, "create", "%s", err.msg);
    char human[32];
    cli_human_size(b.size, human, sizeof(human));
    printf("backstore user_%u/%s: %s (%s, %s)\n", TCMU_SCUSE_HBA, name, abs, fmt, human);
    if (scsi_policy_set(&o.policy)) {
        char policy[SCSI_POLICY_TEXT_MAX + 16];
        scsi_policy_format(&o.policy, ':', policy, sizeof(policy));
        printf("commands: %s\n", policy);
    }
    if (b.fabric == TCMU_FABRIC_VHOST) {
        printf("vhost-scsi target %s, TPG 1, LUN 0\n", b.wwpn);
        printf("QEMU:    -device vhost-scsi-pci,wwpn=%s\n", b.wwpn);
        printf("libvirt: <hostdev mode='subsystem' type='scsi_host'><source protocol='vhost' "
               "wwpn='%s'/></hostdev>\n", b.wwpn);
    } else if (b.fabric == TCMU_FABRIC_LOOPBACK) {
        printf("loopback target %s, TPG 1, LUN 0: a local SCSI disk (see lsscsi)\n", b.wwpn);
    } else if (b.fabric == TCMU_FABRIC_ISCSI) {
        printf("iSCSI target %s, TPG 1, LUN 0 on %s, %s\n", b.wwpn, b.portal,
               b.demo_mode ? "demo mode (any initiator)" : "initiators:");
        for (unsigned i = 0; i < b.n_acls; i++)
            printf("  ACL %s\n", b.acls[i]);
        printf("URL:     iscsi://%s/%s/0\n", b.portal, b.wwpn);
    }
    printf("commands are answered while 'scuse serve --tcmu' runs\n");
    return EXIT_OK;
}

static int do_delete(int argc, char **argv)
{
    struct opts o;
    int r = parse(argc, argv, "delete", &o);
    if (r != CLI_OPT_NEXT)
        return r;
    if (optind != argc - 1)
        return cli_fail(EXIT_USAGE, "tcmu", "delete: expected NAME");
    const char *name = argv[optind];
    if (!tcmu_name_valid(name))
        return cli_fail(EXIT_USAGE, "tcmu", "delete: NAME '%s' is not a backstore name", name);
    struct scuse_err err = { 0 };
    bool found;
    if (tcmu_cfs_delete(o.configfs, name, &found, &err) < 0)
        return fail(EXIT_USAGE, "delete", "%s", err.msg);
    printf(found ? "deleted %s\n" : "no backstore %s: nothing to delete\n", name);
    return EXIT_OK;
}

static int do_list(int argc, char **argv)
{
    struct opts o;
    int r = parse(argc, argv, "list", &o);
    if (r != CLI_OPT_NEXT)
        return r;
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "tcmu", "list: no arguments expected");
    struct scuse_err err = { 0 };
    struct tcmu_cfs_dev *d;
    size_t n;
    if (tcmu_cfs_list(o.configfs, &d, &n, &err) < 0)
        return fail(EXIT_USAGE, "list", "%s", err.msg);
    if (n)
        printf("%-20s %-6s %-10s %-9s %-21s %-12s %s\n", "NAME", "FORMAT", "SIZE", "FABRIC",
               "WWPN", "COMMANDS", "IMAGE");
    for (size_t i = 0; i < n; i++) {
        struct tcmu_image_cfg img;
        if (tcmu_config_parse(d[i].config, &img, NULL) <= 0)
            snprintf(img.path, sizeof(img.path), "(no dev_config)");
        char human[32];
        cli_human_size(d[i].size, human, sizeof(human));
        /* A domain's disk (tcmu up): the XML copy and the disk's place. */
        char where[32] = "";
        if (img.domain)
            snprintf(where, sizeof(where), " (controller %u, unit %u)", img.ctrl, img.unit);
        printf("%-20s %-6s %-10s %-9s %-21s %-12s %s%s%s\n", d[i].name,
               img.domain ? "domain" : img.fmt[0] ? img.fmt : "probe", human,
               tcmu_fabric_name(d[i].fabric), d[i].fabric ? d[i].wwpn : "-",
               img.policy[0] ? img.policy : "all", img.path, where,
               d[i].enabled ? "" : " (not enabled)");
    }
    free(d);
    return EXIT_OK;
}

int cmd_tcmu_serve(int argc, char **argv)
{
    if (cli_log_option(&argc, argv, "tcmu serve") != EXIT_OK)
        return EXIT_USAGE;
    struct opts o;
    int r = parse(argc, argv, "serve", &o);
    if (r != CLI_OPT_NEXT)
        return r;
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "tcmu", "serve: no arguments expected");
    if (!getenv("SCUSE_LOG"))
        log_set_level(o.verbose >= 2 ? LOG_LVL_DEBUG : o.verbose ? LOG_LVL_INFO : LOG_LVL_WARN);
    /* Before the dispatcher's workers start: they must not take them. */
    int sig_fd = daemon_sig_open();
    if (sig_fd < 0)
        return fail(EXIT_USAGE, "serve", "signalfd: %s", strerror(-sig_fd));
    struct tcmu_daemon_config cfg = { .configfs = o.configfs, .sysfs = o.sysfs,
                                      .workers = (unsigned)o.workers, .sig_fd = sig_fd,
                                      .domain_disk = tcmu_domain_disk };
    struct scuse_err err = { 0 };
    struct tcmu_daemon *dm;
    if (tcmu_daemon_create(&cfg, &dm, &err) < 0) {
        close(sig_fd);
        return fail(EXIT_USAGE, "serve", "%s", err.msg);
    }
    struct tcmu_ctl *ctl = NULL;
    r = 0;
    if (o.control_have_gid && !o.control)
        r = fail(EXIT_USAGE, "serve", "--control-group without --control");
    else if (o.control && tcmu_ctl_start(dm, o.control, o.control_gid, o.control_have_gid,
                                         &ctl, &err) < 0)
        r = fail(EXIT_USAGE, "serve", "--control %s", err.msg);
    if (r != 0) {
        tcmu_daemon_destroy(dm);
        close(sig_fd);
        return r;
    }
    r = tcmu_daemon_run(dm, &err);
    /* Every device drained, every image flushed and closed. */
    int f = tcmu_daemon_destroy(dm);
    tcmu_ctl_stop(ctl);
    close(sig_fd);
    if (r < 0)
        return fail(EXIT_USAGE, "serve", "%s", err.msg);
    return f < 0 ? EXIT_IMAGE : EXIT_OK;
}

int cmd_tcmu(int argc, char **argv)
{
    if (argc < 2) {
        tcmu_usage(stderr);
        return EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        tcmu_usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(sub, "create"))
        return do_create(argc - 1, argv + 1);
    if (!strcmp(sub, "delete"))
        return do_delete(argc - 1, argv + 1);
    if (!strcmp(sub, "list"))
        return do_list(argc - 1, argv + 1);
    if (!strcmp(sub, "serve"))
        return cmd_tcmu_serve(argc - 1, argv + 1);
    if (!strcmp(sub, "up") || !strcmp(sub, "down"))
        return cmd_tcmu_updown(argc - 1, argv + 1);
    return cli_fail(EXIT_USAGE, "tcmu", "unknown subcommand '%s'", sub);
}
